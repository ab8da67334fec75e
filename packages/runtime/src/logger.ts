import pino, { type DestinationStream, type Logger as PinoLogger } from 'pino';

/**
 * A levelled, namespaced logger backed by pino. Library code only sees this small interface
 * (message + fields, child loggers), so it never depends on pino or writes to the console itself:
 * the CLIs send JSON lines (or the readable one-line form on a TTY) to stderr, tests pass a sink.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** `json`: one JSON object a line (for collectors); `pretty`: `TIME LEVEL name: message key=value…`. */
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS = ['json', 'pretty', 'auto'] as const;

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  isEnabled(level: LogLevel): boolean;
  /** A logger named `parent:name`; `fields` (a request id, say) appear on each of its lines. */
  child(name: string, fields?: LogFields): Logger;
  /** The same logger with `fields` on each line (a request's id). */
  with(fields: LogFields): Logger;
  /** Changes the level of this logger and of every logger derived from the same root (SIGHUP). */
  setLevel(level: LogLevel): void;
  /** Writes out what is buffered (before exit). */
  flush(): void;
}

export interface LoggerInit {
  name: string;
  level?: LogLevel;
  /** Line format for `write` (default `pretty`); ignored with `destination`. */
  format?: LogFormat;
  /** Receives each line, with its level, synchronously (tests and embedders). */
  write?: (line: string, level: Exclude<LogLevel, 'silent'>) => void;
  /** Where JSON lines go instead (the CLIs: pino's asynchronous stderr destination). */
  destination?: DestinationStream & { flushSync?(): void };
}

const LEVEL_NAMES: Record<number, Exclude<LogLevel, 'silent'>> = { 10: 'debug', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'error' };
/** Keys pino writes itself; every other key of a line is a field. */
const OWN_KEYS = new Set(['level', 'time', 'name', 'msg', 'pid', 'hostname']);

export function createLogger(init: LoggerInit): Logger {
  const destination = init.destination ?? sinkStream(init.write ?? (() => {}), init.format ?? 'pretty');
  const root = pino(
    {
      level: init.level ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  const flush = () => {
    try {
      init.destination?.flushSync?.();
    } catch {
      // Not open yet, or stderr is gone: nothing more can be written anyway.
    }
  };
  const family: Family = { root, named: [], flush };
  return wrap(family, named(family, init.name), init.name, undefined);
}

/** The pino loggers of one root: the named (long-lived) ones follow a level change. */
interface Family {
  root: PinoLogger;
  named: PinoLogger[];
  flush: () => void;
}

function named(family: Family, name: string): PinoLogger {
  const logger = family.root.child({ name });
  family.named.push(logger);
  return logger;
}

/** A field named like a key pino writes itself would make a second, ambiguous key in the JSON line: it gets a `field_` prefix. */
function safe(fields: LogFields): LogFields {
  if (!('name' in fields || 'msg' in fields || 'level' in fields || 'time' in fields)) return fields;
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) out[OWN_KEYS.has(key) ? `field_${key}` : key] = value;
  return out;
}

function wrap(family: Family, logger: PinoLogger, name: string, bindings: LogFields | undefined): Logger {
  return {
    debug: (message, fields) => (fields ? logger.debug(safe(fields), message) : logger.debug(message)),
    info: (message, fields) => (fields ? logger.info(safe(fields), message) : logger.info(message)),
    warn: (message, fields) => (fields ? logger.warn(safe(fields), message) : logger.warn(message)),
    error: (message, fields) => {
      if (fields) logger.error(safe(fields), message);
      else logger.error(message);
      // Out at once, as the lines before it: an error often comes just before a cut connection or an exit.
      family.flush();
    },
    isEnabled: (level) => level !== 'silent' && logger.isLevelEnabled(level),
    child: (childName, fields) => {
      const full = `${name}:${childName}`;
      const all = fields || bindings ? { ...bindings, ...fields } : undefined;
      // From the root, not from `logger`: pino would repeat the `name` key of each ancestor. Loggers
      // with fields (one per request) are short-lived: they take the level current when made.
      return wrap(family, all ? family.root.child({ name: full, ...all }) : named(family, full), full, all);
    },
    // Made when first used: one per request (its id), and most requests log nothing but their access entry.
    with: (fields) => lazy(() => wrap(family, logger.child(fields), name, { ...bindings, ...fields }), (level) => level !== 'silent' && logger.isLevelEnabled(level)),
    setLevel: (level) => {
      // pino children copy their parent's level when made: set the root (for new ones) and each named one.
      family.root.level = level;
      for (const each of family.named) each.level = level;
    },
    flush: family.flush,
  };
}

/** A logger made on its first line (pino's child() costs microseconds; a request's logger mostly writes nothing). */
function lazy(make: () => Logger, isEnabled: Logger['isEnabled']): Logger {
  let made: Logger | undefined;
  const get = () => (made ??= make());
  return {
    debug: (message, fields) => (made || isEnabled('debug') ? get().debug(message, fields) : undefined),
    info: (message, fields) => get().info(message, fields),
    warn: (message, fields) => get().warn(message, fields),
    error: (message, fields) => get().error(message, fields),
    isEnabled: (level) => (made ? made.isEnabled(level) : isEnabled(level)),
    child: (name, fields) => get().child(name, fields),
    with: (fields) => get().with(fields),
    setLevel: (level) => get().setLevel(level),
    flush: () => get().flush(),
  };
}

/** A pino stream handing each line to `write`, as JSON or in the readable one-line form. */
function sinkStream(write: NonNullable<LoggerInit['write']>, format: LogFormat): DestinationStream {
  return {
    write(text: string) {
      const record = JSON.parse(text) as Record<string, unknown>;
      const level = LEVEL_NAMES[Number(record.level)] ?? (record.level as Exclude<LogLevel, 'silent'>);
      write(format === 'json' ? text : prettyLine(record), level);
    },
  };
}

/** The readable form of one JSON log record: `2026-12-01T19:00:00.000Z INFO  httpgw:pool: message key=value`. */
export function prettyLine(record: Record<string, unknown>): string {
  const level = String(record.level ?? 'info').toUpperCase().padEnd(5);
  let out = `${String(record.time)} ${level} ${String(record.name)}: ${String(record.msg ?? '')}`;
  for (const [key, value] of Object.entries(record)) {
    if (OWN_KEYS.has(key) || value === undefined) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    out += ` ${key}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`;
  }
  return `${out}\n`;
}

/**
 * The CLIs' stderr logger: JSON lines through pino's asynchronous destination (a write never blocks
 * the event loop; what is buffered is flushed on exit), or the readable form, written synchronously,
 * when `format` is pretty (a person at a terminal).
 */
export function createStderrLogger(name: string, level: LogLevel, format: LogFormat): Logger {
  if (format === 'pretty') return createLogger({ name, level, format, write: (line) => process.stderr.write(line) });
  const destination = pino.destination({ dest: 2, sync: false });
  const logger = createLogger({ name, level, destination });
  process.once('exit', () => logger.flush());
  return logger;
}

/** `auto`: JSON unless stderr is a terminal. */
export function resolveLogFormat(format: (typeof LOG_FORMATS)[number]): LogFormat {
  return format === 'auto' ? (process.stderr.isTTY ? 'pretty' : 'json') : format;
}

/** A logger that drops everything: the default for library users who pass none. */
export const silentLogger: Logger = createLogger({ name: 'silent', level: 'silent', write: () => {} });
