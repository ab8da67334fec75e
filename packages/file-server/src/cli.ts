import yargs from 'yargs';
import { createStderrLogger, parseConfig, parseHostPort, readSecretKey, reloadConfig, resolveLogFormat, runIfMain, serveUntilSignal, usageError } from '@httpgw/runtime';
import { createFileServer } from './file-server.js';
import { startMetricsListener } from './metrics.js';
import type { GatewayAddress } from './link/gateway-link.js';
import { FILE_SERVER_COMMAND } from './config/options.js';

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
    .example('$0 127.0.0.1 8080 --root ./files', 'serve ./files to the gateway on 127.0.0.1:8080')
    .example('$0 --gateway gw1:8080 --gateway gw2:8080', 'serve the current directory to two gateways')
    .example('$0 --gateway [2001:db8::1]:8080', 'register with a gateway over IPv6 (the socket binds ::)')
    .example('$0 gw 8080 --metrics-port 9100', 'Prometheus metrics on http://127.0.0.1:9100/metrics')
    .example('$0 --config /etc/fastfilesrv.yaml', 'options from a YAML file (gateway: [gw1:8080], root: /srv/files)')
    .example('HTTPGW_SECRET_FILE=/etc/httpgw.key $0 gw 8080', 'authenticated: the gateway must use the same secret')
    .wrap(Math.min(110, process.stdout.columns ?? 100));
}

/** Runs the CLI; resolves with the exit code once the server stops (SIGINT/SIGTERM). */
export async function main(argv: string[]): Promise<number> {
  const parsed = await parseConfig(FILE_SERVER_COMMAND, parser(argv));
  if ('exitCode' in parsed) return parsed.exitCode;
  let { config } = parsed;
  const { gatewayHost, gatewayPort } = parsed.args as { gatewayHost?: string; gatewayPort?: number };
  const gateways: GatewayAddress[] = [];
  try {
    if (gatewayHost !== undefined || gatewayPort !== undefined) {
      if (gatewayHost === undefined || gatewayPort === undefined) throw new Error('give both GATEWAY_HOST and GATEWAY_PORT');
      gateways.push(positionalGateway(gatewayHost, gatewayPort));
    }
    for (const text of config.gateway ?? []) gateways.push(parseHostPort(text));
    if (gateways.length === 0) throw new Error('no gateway given: pass GATEWAY_HOST GATEWAY_PORT or --gateway HOST:PORT');
  } catch (error) {
    return usageError('fastfilesrv', error instanceof Error ? error.message : String(error));
  }

  const logger = createStderrLogger('fastfilesrv', config['log-level'], resolveLogFormat(config['log-format']));
  try {
    const key = config['secret-file'] ? await readSecretKey(config['secret-file']) : undefined;
    const server = await createFileServer({
      gateways,
      root: config.root,
      ...(config.bind !== undefined ? { bindAddress: config.bind } : {}),
      maxDatagramSize: config['max-datagram-size'],
      bindPort: config.port,
      allowDotfiles: config['allow-dotfiles'],
      maxDatagramRate: config['max-datagram-rate'],
      ...(config['max-rate'] !== undefined ? { maxRate: config['max-rate'] } : {}),
      logger,
      ...(config.name ? { name: config.name } : {}),
      ...(key ? { key } : {}),
    });
    const metrics =
      config['metrics-port'] === undefined
        ? undefined
        : await startMetricsListener({ address: config['metrics-address'], port: config['metrics-port'] }, () => server.stats, logger).catch(async (error: unknown) => {
            await server.stop();
            throw error;
          });
    // `kill -HUP PID`: the log level and drain timeout may change while running.
    const reload = () => {
      void reloadConfig(FILE_SERVER_COMMAND, parsed.flags, config, logger, () => undefined, (next) => logger.setLevel(next['log-level'])).then((next) => (config = next));
    };
    process.on('SIGHUP', reload);
    await serveUntilSignal(logger, async () => {
      await metrics?.close();
      await server.stop(config['drain-timeout']);
    });
    process.off('SIGHUP', reload);
    return 0;
  } catch (error) {
    logger.error(error instanceof Error ? error.message : String(error));
    logger.flush();
    return 1;
  }
}

await runIfMain(import.meta.url, main);
