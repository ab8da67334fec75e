import type { Argv } from 'yargs';
import { ConfigError, configFileOf, configHelp, configToYaml, diffConfig, loadConfig, yargsOptions, type CommandConfig, type ConfigChange, type ConfigOf, type LoadedConfig, type OptionTable } from './config.js';
import type { Logger } from './logger.js';
import { parseCommandLine, usageError } from './cli-runner.js';

/** What a CLI's parser adds beyond the option table: usage, positionals, examples. */
export type DescribeCommand = (parser: Argv) => Argv;

/**
 * Parses the command line against the command's option table, then resolves the configuration
 * (flags over environment over file). Returns it with the flags given (a SIGHUP reload keeps them),
 * or the exit code to leave with: 0 after --help or --print-config, 2 for anything that makes no sense.
 */
export async function parseConfig<T extends OptionTable>(
  command: CommandConfig<T>,
  parser: Argv,
  /** Checks across options (read-ahead of at least two chunks…); returns the first problem. */
  check: (config: LoadedConfig<T>['config']) => string | undefined = () => undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<({ flags: Record<string, unknown>; args: Record<string, unknown> } & LoadedConfig<T>) | { exitCode: number }> {
  const full = parser
    .options(yargsOptions(command.options))
    .option('config', { type: 'string', describe: 'YAML file of options (keys: the long option names)' })
    .option('print-config', { type: 'boolean', describe: 'print the resolved configuration as YAML and exit' })
    .epilogue(configHelp(command))
    .strict()
    .help()
    .version(false);
  const parsed = await parseCommandLine(command.name, full);
  if ('exitCode' in parsed) return parsed;
  const flags: Record<string, unknown> = {};
  for (const key of [...Object.keys(command.options), 'config']) {
    const value = (parsed.args as Record<string, unknown>)[key];
    if (value !== undefined) flags[key] = value;
  }
  try {
    const loaded = await loadConfig(command, flags, env);
    const problem = check(loaded.config);
    if (problem) return { exitCode: usageError(command.name, problem) };
    if ((parsed.args as Record<string, unknown>)['print-config']) {
      process.stdout.write(configToYaml(command.options, loaded.config));
      return { exitCode: 0 };
    }
    return { flags, args: parsed.args as Record<string, unknown>, ...loaded };
  } catch (error) {
    if (error instanceof ConfigError) return { exitCode: usageError(command.name, error.message) };
    throw error;
  }
}

/**
 * SIGHUP: resolves the configuration again (the file and the environment; the flags given at start
 * still win), hands what may change while running to `apply`, and logs each change. Options that
 * need a restart keep their running values and are logged as such. A file that no longer parses or
 * checks changes nothing. Returns the configuration now in force.
 */
export async function reloadConfig<T extends OptionTable>(
  command: CommandConfig<T>,
  flags: Record<string, unknown>,
  current: ConfigOf<T>,
  logger: Logger,
  check: (config: ConfigOf<T>) => string | undefined,
  apply: (next: ConfigOf<T>, changes: ConfigChange[]) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ConfigOf<T>> {
  logger.info('reloading the configuration', { file: configFileOf(command, flags, env) });
  try {
    const { config: loaded } = await loadConfig(command, flags, env);
    const problem = check(loaded);
    if (problem) throw new ConfigError(problem);
    const { apply: changes, restart } = diffConfig(command.options, current, loaded);
    const next = { ...loaded };
    for (const change of restart) next[change.key as keyof T] = change.from as ConfigOf<T>[keyof T];
    if (changes.length > 0) apply(next, changes);
    for (const change of changes) logger.info('configuration changed', { option: change.key, from: shown(change.from), to: shown(change.to) });
    for (const change of restart) logger.warn('configuration change needs a restart: left as it is', { option: change.key, running: shown(change.from), configured: shown(change.to) });
    if (changes.length === 0 && restart.length === 0) logger.info('configuration reloaded: nothing changed');
    return next;
  } catch (error) {
    logger.error('configuration reload failed: the running configuration stays', { error: error instanceof Error ? error.message : String(error) });
    return current;
  }
}

function shown(value: unknown): string {
  return value === undefined ? '(default)' : typeof value === 'string' ? value : JSON.stringify(value);
}
