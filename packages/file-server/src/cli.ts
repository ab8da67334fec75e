import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import yargs from 'yargs';
import { DEFAULT_MAX_DATAGRAM_RATE, LOG_LEVELS, createLogger, keyFromSecret, type FrameKey, type LogLevel } from '@httpgw/protocol';
import { createFileServer } from './file-server.js';
import type { GatewayAddress } from './link/gateway-link.js';

const EXIT_USAGE = 2;

export function parseHostPort(text: string): GatewayAddress {
  const match = /^(.+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65_535) throw new Error(`"${text}" is not HOST:PORT`);
  return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** Reads a shared secret file: its bytes, less surrounding whitespace. */
export async function readSecretKey(path: string): Promise<FrameKey> {
  const secret = Buffer.from((await readFile(path, 'utf8')).trim(), 'utf8');
  return keyFromSecret(secret);
}

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('fastfilesrv')
    .usage('$0 [GATEWAY_HOST GATEWAY_PORT] [options]\n\nServes the files under --root to httpgw gateways over UDP: registers with each gateway, then answers its metadata, listing and chunk requests.')
    .command('$0 [gatewayHost] [gatewayPort]', false)
    .positional('gatewayHost', { type: 'string', describe: 'gateway host to register with' })
    .positional('gatewayPort', { type: 'number', describe: 'gateway UDP port' })
    .option('gateway', { type: 'string', array: true, describe: 'another gateway to serve, as HOST:PORT (repeatable)' })
    .option('root', { type: 'string', default: '.', describe: 'directory to serve; nothing outside it is ever read' })
    .option('bind', { type: 'string', default: '0.0.0.0', describe: 'local UDP address' })
    .option('port', { type: 'number', default: 0, describe: 'local UDP port (0: any free port)' })
    .option('name', { type: 'string', describe: 'server name shown in the gateway logs (default HOST:PORT)' })
    .option('allow-dotfiles', { type: 'boolean', default: false, describe: 'serve names starting with "."' })
    .option('secret-file', { type: 'string', describe: 'file holding the shared secret (env HTTPGW_SECRET_FILE); every datagram is then signed with HMAC-SHA256' })
    .option('max-datagram-rate', { type: 'number', default: DEFAULT_MAX_DATAGRAM_RATE, describe: 'UDP datagrams per second accepted from a gateway; the excess is dropped' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'log verbosity' })
    .env('HTTPGW')
    .example('$0 127.0.0.1 8080 --root ./files', 'serve ./files to the gateway on 127.0.0.1:8080')
    .example('$0 --gateway gw1:8080 --gateway gw2:8080', 'serve the current directory to two gateways')
    .example('HTTPGW_SECRET_FILE=/etc/httpgw.key $0 gw 8080', 'authenticated: the gateway must use the same secret')
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100));
}

/** Runs the CLI; resolves with the exit code once the server stops (SIGINT/SIGTERM). */
export async function main(argv: string[]): Promise<number> {
  let failure: string | undefined;
  const args = await parser(argv)
    .fail((message, error) => {
      failure = message || error?.message || 'invalid arguments';
    })
    .parseAsync();
  if (failure) {
    process.stderr.write(`fastfilesrv: ${failure.split('\n')[0]}\nTry 'fastfilesrv --help'.\n`);
    return EXIT_USAGE;
  }
  if (args.help) return 0;

  if (!Number.isInteger(args.maxDatagramRate) || args.maxDatagramRate < 1) {
    process.stderr.write(`fastfilesrv: --max-datagram-rate must be a positive integer\nTry 'fastfilesrv --help'.\n`);
    return EXIT_USAGE;
  }
  const gateways: GatewayAddress[] = [];
  try {
    if (args.gatewayHost !== undefined || args.gatewayPort !== undefined) {
      if (args.gatewayHost === undefined || args.gatewayPort === undefined) throw new Error('give both GATEWAY_HOST and GATEWAY_PORT');
      gateways.push(parseHostPort(`${args.gatewayHost}:${args.gatewayPort}`));
    }
    for (const text of args.gateway ?? []) gateways.push(parseHostPort(text));
    if (gateways.length === 0) throw new Error('no gateway given: pass GATEWAY_HOST GATEWAY_PORT or --gateway HOST:PORT');
  } catch (error) {
    process.stderr.write(`fastfilesrv: ${error instanceof Error ? error.message : String(error)}\nTry 'fastfilesrv --help'.\n`);
    return EXIT_USAGE;
  }

  const logger = createLogger({ name: 'fastfilesrv', level: args.logLevel, write: (line) => process.stderr.write(line) });
  try {
    const key = args.secretFile ? await readSecretKey(args.secretFile) : undefined;
    const server = await createFileServer({
      gateways,
      root: args.root,
      bindAddress: args.bind,
      bindPort: args.port,
      allowDotfiles: args.allowDotfiles,
      maxDatagramRate: args.maxDatagramRate,
      logger,
      ...(args.name ? { name: args.name } : {}),
      ...(key ? { key } : {}),
    });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logger.info('stopping', { signal });
        void server.stop().then(resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    return 0;
  } catch (error) {
    logger.error(error instanceof Error ? error.message : String(error));
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
