import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { keyFromSecret, type FrameKey } from '@httpgw/protocol';
import type { Argv } from 'yargs';
import type { LogLevel, Logger } from './logger.js';

/** Exit code of a command line that makes no sense (as BSD sysexits' EX_USAGE family and GNU tools use 2). */
export const EXIT_USAGE = 2;

/** Prints `name: message` and where to look, on one line each; returns EXIT_USAGE. */
export function usageError(name: string, message: string): number {
  process.stderr.write(`${name}: ${message.split('\n')[0]}\nTry '${name} --help'.\n`);
  return EXIT_USAGE;
}

/**
 * Parses with yargs, turning its failures into one usage line and exit code 2. Returns the
 * arguments, or the exit code to leave with (0 after --help).
 */
export async function parseCommandLine<A extends object>(name: string, parser: Pick<Argv, 'fail'> & { parseAsync(): Promise<A> }): Promise<{ args: A } | { exitCode: number }> {
  let failure: string | undefined;
  parser.fail((message, error) => {
    failure = message || error?.message || 'invalid arguments';
  });
  const args = await parser.parseAsync();
  if (failure) return { exitCode: usageError(name, failure) };
  if ((args as { help?: unknown }).help) return { exitCode: 0 };
  return { args };
}

/** Reads a shared secret file: its bytes, less surrounding whitespace. */
export async function readSecretKey(path: string): Promise<FrameKey> {
  return keyFromSecret(Buffer.from((await readFile(path, 'utf8')).trim(), 'utf8'));
}

/** Exit status of a process ended by a second signal: 128 + the signal's number, as shells report it. */
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Resolves once SIGINT or SIGTERM arrived and `stop` (a graceful drain) finished. A second signal
 * during the drain exits at once (status 128 + signal), after writing out the buffered log lines.
 */
export function serveUntilSignal(logger: Logger, stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping: Promise<void> | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn('second signal: exiting now', { signal });
        logger.flush();
        process.exit(SIGNAL_EXIT[signal] ?? 1);
      }
      logger.info('stopping', { signal });
      stopping = stop().then(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('message', onMessage);
        resolve();
      });
    };
    // A process of a cluster is told by its primary (see STOP_MESSAGES): a terminal's Ctrl-C reaches
    // every process of the group as well, so a stop message after a signal is not a second signal.
    const onMessage = (message: unknown) => {
      if (message === STOP_MESSAGES.stop && !stopping) onSignal('SIGTERM');
      else if (message === STOP_MESSAGES.stopNow) {
        if (!stopping) stopping = Promise.resolve();
        onSignal('SIGTERM');
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    if (process.send) process.on('message', onMessage);
  });
}

/** What a cluster's primary sends its processes for the signals it gets: stop gracefully; then at once. */
export const STOP_MESSAGES = { stop: 'httpgw:stop', stopNow: 'httpgw:stop-now' } as const;

/** Runs `main` with the process's arguments when `moduleUrl` is the script node was started with. */
export async function runIfMain(moduleUrl: string, main: (argv: string[]) => Promise<number>): Promise<void> {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  process.exitCode = await main(process.argv.slice(2));
}

/**
 * A log sink that writes the lines of one event-loop turn at once: one write per turn instead of
 * one per line under load. Errors are written at once (the process may be about to exit).
 */
export function batchedWriter(write: (text: string) => void): (line: string, level: Exclude<LogLevel, 'silent'>) => void {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    write(text);
  };
  return (line, level) => {
    pending.push(line);
    if (level === 'error') return flush();
    if (pending.length === 1) setImmediate(flush);
  };
}
