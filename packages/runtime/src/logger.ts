/**
 * A small levelled, namespaced logger. It formats lines and hands them to a sink the caller chooses
 * (the CLIs pass stderr; tests pass an array), so libraries never write to the console themselves.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  isEnabled(level: LogLevel): boolean;
  child(name: string): Logger;
}

export interface LoggerInit {
  name: string;
  level?: LogLevel;
  /** Receives each line, with its level (a sink may flush errors at once). */
  write: (line: string, level: Exclude<LogLevel, 'silent'>) => void;
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function createLogger(init: LoggerInit): Logger {
  const threshold = RANK[init.level ?? 'info'];
  const now = init.now ?? (() => new Date());
  const emit = (level: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields) => {
    if (RANK[level] < threshold) return;
    init.write(`${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${init.name}: ${message}${formatFields(fields)}\n`, level);
  };
  return {
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    isEnabled: (level) => RANK[level] >= threshold,
    child: (name) => createLogger({ ...init, name: `${init.name}:${name}` }),
  };
}

/** A logger that drops everything: the default for library users who pass none. */
export const silentLogger: Logger = createLogger({ name: 'silent', level: 'silent', write: () => {} });

function formatFields(fields: LogFields | undefined): string {
  if (!fields) return '';
  let out = '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = String(value);
    out += ` ${key}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`;
  }
  return out;
}
