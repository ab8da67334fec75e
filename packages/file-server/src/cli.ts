import yargs from 'yargs';
import { MAX_DATAGRAM_BYTES, MIN_DATAGRAM_BYTES, isDatagramSize } from '@httpgw/protocol';
import { DEFAULT_MAX_DATAGRAM_RATE, LOG_LEVELS, batchedWriter, createLogger, parseCommandLine, parseHostPort, readSecretKey, runIfMain, serveUntilSignal, usageError, type LogLevel } from '@httpgw/runtime';
import { createFileServer } from './file-server.js';
import { startMetricsListener } from './metrics.js';
import type { GatewayAddress } from './link/gateway-link.js';

export { parseHostPort };

/** The positional GATEWAY_HOST GATEWAY_PORT: the host may be an IPv6 address, with or without brackets. */
function positionalGateway(host: string, port: number): GatewayAddress {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === '' || !(Number.isInteger(port) && port >= 1 && port <= 65_535)) throw new Error(`"${host} ${port}" is not GATEWAY_HOST GATEWAY_PORT`);
  return { host: bare, port };
}

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('fastfilesrv')
    .usage('$0 [GATEWAY_HOST GATEWAY_PORT] [options]\n\nServes the files under --root to httpgw gateways over UDP: registers with each gateway, then answers its metadata, listing and chunk requests.')
    .command('$0 [gatewayHost] [gatewayPort]', false)
    .positional('gatewayHost', { type: 'string', describe: 'gateway host to register with' })
    .positional('gatewayPort', { type: 'number', describe: 'gateway UDP port' })
    .option('gateway', { type: 'string', array: true, describe: 'another gateway to serve, as HOST:PORT (repeatable)' })
    .option('root', { type: 'string', default: '.', describe: 'directory to serve; no path leads outside it (hard links under it are served as the files they are)' })
    .option('bind', { type: 'string', defaultDescription: '0.0.0.0, or :: when a gateway is IPv6', describe: 'local UDP address (:: is dual-stack: IPv4 and IPv6)' })
    .option('port', { type: 'number', default: 0, describe: 'local UDP port (0: any free port)' })
    .option('name', { type: 'string', describe: 'server name shown in the gateway logs (default HOST:PORT)' })
    .option('allow-dotfiles', { type: 'boolean', default: false, describe: 'serve names starting with "."' })
    .option('secret-file', { type: 'string', describe: 'file holding the shared secret (env HTTPGW_SECRET_FILE); every datagram is then signed with HMAC-SHA256' })
    .option('max-datagram-size', { type: 'number', default: MAX_DATAGRAM_BYTES, describe: `largest UDP datagram sent, ${MIN_DATAGRAM_BYTES}..${MAX_DATAGRAM_BYTES}: listing pages are cut to fit it (and the size each gateway names)` })
    .option('max-datagram-rate', { type: 'number', default: DEFAULT_MAX_DATAGRAM_RATE, describe: 'UDP datagrams per second accepted from a gateway; the excess is dropped' })
    .option('metrics-port', { type: 'number', describe: 'serve Prometheus metrics on http://METRICS_ADDRESS:PORT/metrics (off when not set; 0 picks a port, logged)' })
    .option('metrics-address', { type: 'string', default: '127.0.0.1', describe: 'address of the metrics listener' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'log verbosity' })
    .env('HTTPGW')
    .example('$0 127.0.0.1 8080 --root ./files', 'serve ./files to the gateway on 127.0.0.1:8080')
    .example('$0 --gateway gw1:8080 --gateway gw2:8080', 'serve the current directory to two gateways')
    .example('$0 --gateway [2001:db8::1]:8080', 'register with a gateway over IPv6 (the socket binds ::)')
    .example('HTTPGW_SECRET_FILE=/etc/httpgw.key $0 gw 8080', 'authenticated: the gateway must use the same secret')
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100));
}

/** Runs the CLI; resolves with the exit code once the server stops (SIGINT/SIGTERM). */
export async function main(argv: string[]): Promise<number> {
  const parsed = await parseCommandLine('fastfilesrv', parser(argv));
  if ('exitCode' in parsed) return parsed.exitCode;
  const { args } = parsed;
  if (!Number.isInteger(args.maxDatagramRate) || args.maxDatagramRate < 1) return usageError('fastfilesrv', '--max-datagram-rate must be a positive integer');
  if (args.metricsPort !== undefined && !(Number.isInteger(args.metricsPort) && args.metricsPort >= 0 && args.metricsPort <= 65_535)) return usageError('fastfilesrv', '--metrics-port must be an integer in 0..65535');
  if (!isDatagramSize(args.maxDatagramSize)) return usageError('fastfilesrv', `--max-datagram-size must be an integer in ${MIN_DATAGRAM_BYTES}..${MAX_DATAGRAM_BYTES}`);
  const gateways: GatewayAddress[] = [];
  try {
    if (args.gatewayHost !== undefined || args.gatewayPort !== undefined) {
      if (args.gatewayHost === undefined || args.gatewayPort === undefined) throw new Error('give both GATEWAY_HOST and GATEWAY_PORT');
      gateways.push(positionalGateway(args.gatewayHost, args.gatewayPort));
    }
    for (const text of args.gateway ?? []) gateways.push(parseHostPort(text));
    if (gateways.length === 0) throw new Error('no gateway given: pass GATEWAY_HOST GATEWAY_PORT or --gateway HOST:PORT');
  } catch (error) {
    return usageError('fastfilesrv', error instanceof Error ? error.message : String(error));
  }

  const logger = createLogger({ name: 'fastfilesrv', level: args.logLevel, write: batchedWriter((text) => process.stderr.write(text)) });
  try {
    const key = args.secretFile ? await readSecretKey(args.secretFile) : undefined;
    const server = await createFileServer({
      gateways,
      root: args.root,
      ...(args.bind !== undefined ? { bindAddress: args.bind } : {}),
      maxDatagramSize: args.maxDatagramSize,
      bindPort: args.port,
      allowDotfiles: args.allowDotfiles,
      maxDatagramRate: args.maxDatagramRate,
      logger,
      ...(args.name ? { name: args.name } : {}),
      ...(key ? { key } : {}),
    });
    const metrics =
      args.metricsPort === undefined
        ? undefined
        : await startMetricsListener({ address: args.metricsAddress, port: args.metricsPort }, () => server.stats, logger).catch(async (error: unknown) => {
            await server.stop();
            throw error;
          });
    await serveUntilSignal(logger, async () => {
      await metrics?.close();
      await server.stop();
    });
    return 0;
  } catch (error) {
    logger.error(error instanceof Error ? error.message : String(error));
    return 1;
  }
}

await runIfMain(import.meta.url, main);
