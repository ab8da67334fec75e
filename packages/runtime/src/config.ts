import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { z } from 'zod';
import { parseByteSize } from './byte-size.js';

/**
 * One declarative table per command describes every option once; the command-line flags, the
 * environment variables, the config file keys, the validation and `--help` all come from it. An
 * option's name is its long flag (`chunk-size`), its file key (`chunk-size: 1200`) and, in upper
 * snake case after the command's prefix, its environment variable (`HTTPGW_CHUNK_SIZE`).
 */
export interface OptionSpec<S extends z.ZodType = z.ZodType, D = unknown> {
  /** How yargs reads the flag and how an environment string is turned into a value. */
  type: 'number' | 'string' | 'boolean' | 'strings';
  /** Checks one value (no default: see `default`); messages read after the option's name ("must be…"). */
  schema: S;
  default?: D;
  /** What --help shows as the default when it is computed (a share of memory, say). */
  defaultDescription?: string;
  describe: string;
  choices?: readonly string[];
  /** Applied on SIGHUP while running; any other option needs a restart to change. */
  reloadable?: boolean;
  /** Also (or only) a positional argument; its name in messages (`PORT`). */
  positional?: string;
  /** Further environment variables accepted, the first name winning over them (HTTPGW_SECRET_FILE for both commands). */
  envAliases?: readonly string[];
}

export type OptionTable = Record<string, OptionSpec>;

/** The resolved configuration of a table: every option with a default is present. */
export type ConfigOf<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K] extends OptionSpec<infer S, infer D> ? (undefined extends D ? z.output<S> | undefined : z.output<S>) : never;
};

/** Declares one option; its type is inferred from the schema and whether a default is given. */
export function option<S extends z.ZodType, const D extends z.output<S> | undefined = undefined>(spec: OptionSpec<S, D>): OptionSpec<S, D> {
  return spec;
}

/** An integer in min..max, with the message the CLIs always gave. */
export function integerIn(min: number, max: number, message = `must be an integer in ${min}..${max}`) {
  return z.number({ error: message }).int({ error: message }).min(min, { error: message }).max(max, { error: message });
}

export const positiveInteger = () => integerIn(1, Number.MAX_SAFE_INTEGER, 'must be a positive integer');

/** A size in bytes, as a number or with a unit (`512MiB`, `2GiB`): the number of bytes. */
export function byteSize(example: string) {
  const message = `must be a size in bytes, e.g. ${example}`;
  return z
    .union([z.number(), z.string()], { error: message })
    .refine((value) => parseByteSize(value) !== undefined, { error: message })
    .transform((value) => parseByteSize(value)!);
}

/** Where an option's value came from, as the user wrote it: `--chunk-size`, `HTTPGW_CHUNK_SIZE`, a file key. */
export type ValueSource = { kind: 'default' } | { kind: 'file'; path: string } | { kind: 'env'; variable: string } | { kind: 'flag'; flag: string };

/** A value the user gave that makes no sense: the CLIs print its message on one line and exit 2. */
export class ConfigError extends Error {}

export interface CommandConfig<T extends OptionTable> {
  /** Command name (messages). */
  name: string;
  /** `HTTPGW` → HTTPGW_CHUNK_SIZE. */
  envPrefix: string;
  options: T;
}

export interface LoadedConfig<T extends OptionTable> {
  config: ConfigOf<T>;
  sources: Record<keyof T, ValueSource>;
}

/** The environment variable of an option. */
export function envName(prefix: string, key: string): string {
  return `${prefix}_${key.toUpperCase().replace(/-/g, '_')}`;
}

/** `--config FILE` itself: from the flags, else from the environment. */
export function configFileOf(command: { envPrefix: string }, flags: Record<string, unknown>, env: NodeJS.ProcessEnv): string | undefined {
  const flag = flags.config;
  if (typeof flag === 'string' && flag !== '') return flag;
  return env[envName(command.envPrefix, 'config')] || undefined;
}

/**
 * Resolves every option: flags over environment over file over default, each value checked by its
 * schema. `flags` holds only what the command line gave (yargs declares no defaults). Throws a
 * ConfigError naming the option as it was written where it came from.
 */
export async function loadConfig<T extends OptionTable>(command: CommandConfig<T>, flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig<T>> {
  const path = configFileOf(command, flags, env);
  const fromFile = path === undefined ? {} : await readConfigFile(command, path);
  const fromEnv = readEnv(command, env);
  const config: Record<string, unknown> = {};
  const sources: Record<string, ValueSource> = {};
  for (const [key, spec] of Object.entries(command.options)) {
    let value: unknown;
    let source: ValueSource = { kind: 'default' };
    if (flags[key] !== undefined) [value, source] = [flags[key], { kind: 'flag', flag: spec.positional ?? `--${key}` }];
    else if (fromEnv.has(key)) [value, source] = [parseEnvValue(spec, fromEnv.get(key)!.value), { kind: 'env', variable: fromEnv.get(key)!.variable }];
    else if (Object.hasOwn(fromFile, key)) [value, source] = [fromFile[key], { kind: 'file', path: path! }];
    sources[key] = source;
    if (source.kind === 'default') {
      if (spec.default !== undefined) config[key] = spec.default;
      continue;
    }
    if (spec.type === 'strings' && !Array.isArray(value)) value = [value];
    const checked = spec.schema.safeParse(value);
    if (!checked.success) throw new ConfigError(describeProblem(key, source, checked.error.issues[0]?.message ?? 'is not valid'));
    config[key] = checked.data;
  }
  return { config: config as ConfigOf<T>, sources: sources as Record<keyof T, ValueSource> };
}

/** `--chunk-size must be…`, `HTTPGW_CHUNK_SIZE must be… (environment)`, `chunk-size must be… (in FILE)`. */
export function describeProblem(key: string, source: ValueSource, problem: string): string {
  switch (source.kind) {
    case 'flag':
      return `${source.flag} ${problem}`;
    case 'env':
      return `${source.variable} ${problem} (environment)`;
    case 'file':
      return `${key} ${problem} (in ${source.path})`;
    default:
      return `${key} ${problem}`;
  }
}

async function readConfigFile(command: CommandConfig<OptionTable>, path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the config file ${path}: ${error instanceof Error && 'code' in error ? String(error.code) : String(error)}`);
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text, { maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(`${path} is not valid YAML: ${(error instanceof Error ? error.message : String(error)).split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${path} must be a mapping of option names to values`);
  const values = parsed as Record<string, unknown>;
  for (const key of Object.keys(values)) {
    if (!Object.hasOwn(command.options, key)) throw new ConfigError(`unknown key "${key}" in ${path}${suggestion(command.options, key)}`);
  }
  return values;
}

/** The environment variables of the command's prefix; an unknown one is an error (a typo must not go unnoticed). */
function readEnv(command: CommandConfig<OptionTable>, env: NodeJS.ProcessEnv): Map<string, { variable: string; value: string }> {
  const found = new Map<string, { variable: string; value: string }>();
  const prefix = `${command.envPrefix}_`;
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith(prefix) || value === undefined) continue;
    const key = variable.slice(prefix.length).toLowerCase().replace(/_/g, '-');
    // HTTPGW_CONFIG names the file; HTTPGW_CLUSTER_WORKER is set by a --workers primary for its workers.
    if (key === 'config' || key === 'cluster-worker') continue;
    if (!Object.hasOwn(command.options, key)) throw new ConfigError(`unknown environment variable ${variable}${suggestion(command.options, key)}`);
    found.set(key, { variable, value });
  }
  for (const [key, spec] of Object.entries(command.options)) {
    if (found.has(key)) continue;
    for (const alias of spec.envAliases ?? []) {
      const value = env[alias];
      if (value !== undefined) {
        found.set(key, { variable: alias, value });
        break;
      }
    }
  }
  return found;
}

/** Environment values are strings: numbers and booleans are read as such; lists are comma-separated. */
function parseEnvValue(spec: OptionSpec, text: string): unknown {
  const trimmed = text.trim();
  switch (spec.type) {
    case 'number':
      return /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(trimmed) ? Number(trimmed) : text;
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(trimmed)) return true;
      if (/^(false|0|no|off)$/i.test(trimmed)) return false;
      return text;
    case 'strings':
      return trimmed.split(/[\s,]+/).filter((item) => item !== '');
    default:
      return text;
  }
}

function suggestion(options: OptionTable, key: string): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const known of Object.keys(options)) {
    const distance = editDistance(known, key);
    if (distance < bestDistance) [best, bestDistance] = [known, distance];
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

/** Levenshtein distance, for "did you mean" (option names are short). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** The resolved configuration as YAML, in the table's order, options without a value left out. */
export function configToYaml<T extends OptionTable>(options: T, config: ConfigOf<T>): string {
  const ordered: Record<string, unknown> = {};
  for (const key of Object.keys(options)) if (config[key] !== undefined) ordered[key] = config[key];
  return YAML.stringify(ordered);
}

/** yargs option definitions from the table: no defaults (so the loader knows what was given), defaults in the help text. */
export function yargsOptions(options: OptionTable): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [key, spec] of Object.entries(options)) {
    if (spec.positional) continue;
    const shown = spec.defaultDescription ?? (spec.default === undefined ? undefined : typeof spec.default === 'string' ? spec.default : JSON.stringify(spec.default));
    out[key] = {
      type: spec.type === 'strings' ? 'string' : spec.type,
      ...(spec.type === 'strings' ? { array: true } : {}),
      ...(spec.choices ? { choices: spec.choices } : {}),
      describe: spec.reloadable ? `${spec.describe} [SIGHUP]` : spec.describe,
      ...(shown !== undefined ? { defaultDescription: shown } : {}),
    };
  }
  return out;
}

export interface ConfigChange {
  key: string;
  from: unknown;
  to: unknown;
}

/** What differs between two configurations, split into what may change while running and what needs a restart. */
export function diffConfig<T extends OptionTable>(options: T, before: ConfigOf<T>, after: ConfigOf<T>): { apply: ConfigChange[]; restart: ConfigChange[] } {
  const apply: ConfigChange[] = [];
  const restart: ConfigChange[] = [];
  for (const [key, spec] of Object.entries(options)) {
    const from = before[key];
    const to = after[key];
    if (JSON.stringify(from) === JSON.stringify(to)) continue;
    (spec.reloadable ? apply : restart).push({ key, from, to });
  }
  return { apply, restart };
}

/** The `Options:` epilogue every command's --help ends with: where else an option may be set. */
export function configHelp(command: { name: string; envPrefix: string }): string {
  return [
    `Every option can also be set in a YAML file given with --config FILE (or ${envName(command.envPrefix, 'config')}), its key the option's name`,
    `(chunk-size: 1200), or in the environment as ${command.envPrefix}_<NAME> (${envName(command.envPrefix, 'log-level')}=debug).`,
    'Flags win over the environment, the environment over the file. Options marked [SIGHUP] are re-read from the',
    `file and the environment on \`kill -HUP\`; the others need a restart. See docs/OPERATING.md.`,
  ].join('\n');
}
