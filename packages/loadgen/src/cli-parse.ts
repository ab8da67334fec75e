/** yargs failures as one usage line and exit code 2 (the convention of httpgw's other commands). */
import { pathToFileURL } from 'node:url';
import type { Argv } from 'yargs';

export const EXIT_USAGE = 2;

/** Prints `name: message` and where to look; returns EXIT_USAGE. */
export function usageError(name: string, message: string): number {
  process.stderr.write(`${name}: ${message.split('\n')[0]}\nTry '${name} --help'.\n`);
  return EXIT_USAGE;
}

/** The parsed arguments, or the exit code to leave with (0 after --help). */
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

/** Runs `main` with the process's arguments when `moduleUrl` is the script node was started with. */
export async function runIfMain(moduleUrl: string, main: (argv: string[]) => Promise<number>): Promise<void> {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  process.exitCode = await main(process.argv.slice(2));
}
