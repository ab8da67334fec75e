import yargs from 'yargs';
import { createStderrLogger, parseConfig, readSecretKey, reloadConfig, resolveLogFormat, runIfMain, serveUntilSignal } from '@httpgw/runtime';
import { createGateway, defaultCacheBytes, type GatewayChanges, type GatewayInit } from './gateway.js';
import { configForWorker, leaveCluster, reportReady, runPrimary, workerIdentity } from './cluster.js';
import { parseAdminAddress, readAdminToken } from './ops/admin-auth.js';
import type { HttpLimitsInit } from './http/limits.js';
import { defaultReadAheadBudgetBytes } from './transfer/read-ahead-budget.js';
import { GATEWAY_COMMAND, GATEWAY_OPTIONS, checkGatewayConfig, type GatewayConfig } from './config/options.js';

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('httpgw')
    .usage('$0 [ADDRESS] [PORT] [options]\n\nHTTP gateway to a pool of UDP file servers (fastfilesrv): GET /<path> streams the file, fetched in chunks from every server that holds it.')
    .command('$0 [address] [port]', false)
    .positional('address', { type: 'string', describe: 'address for HTTP and UDP', defaultDescription: '0.0.0.0' })
    .positional('port', { type: 'number', describe: GATEWAY_OPTIONS.port.describe, defaultDescription: '8080' })
    .example('$0', 'HTTP and UDP on 0.0.0.0:8080')
    .example('$0 127.0.0.1 9000 --udp-port 9001', 'HTTP on 9000, file servers register on UDP 9001')
    .example('$0 --workers 2 --udp-port 9000', 'two gateway processes on HTTP 8080, UDP 9000 and 9001 (fastfilesrv --gateway HOST:9000 --gateway HOST:9001)')
    .example('$0 --chunk-size 1200', 'MTU-safe chunks (and listing pages) for networks that drop IP fragments')
    .example('$0 :: 8080', 'dual-stack: IPv6 and IPv4 clients and file servers')
    .example('$0 --cache-size 2GiB --cache-dir /var/cache/httpgw', 'hot files from memory, and a disk cache that survives restarts')
    .example('$0 --admin 127.0.0.1:9090 --admin-token-file /etc/httpgw-admin.token', 'metrics, admin API and dashboard on http://127.0.0.1:9090/')
    .example('$0 --config /etc/httpgw.yaml --print-config', 'show what a config file (plus environment and flags) resolves to')
    .example('HTTPGW_SECRET_FILE=/etc/httpgw.key $0', 'authenticated: only file servers with the same secret are admitted')
    .example('curl -O http://127.0.0.1:8080/dir/file.bin', 'download a file through the gateway')
    .wrap(Math.min(110, process.stdout.columns ?? 100));
}

/** The gateway's settings from the resolved configuration. */
export function gatewayInit(config: GatewayConfig): GatewayInit {
  return {
    // `[::1]` as in a URL is accepted too.
    address: config.address.replace(/^\[(.*)\]$/, '$1'),
    httpPort: config.port,
    chunkSize: config['chunk-size'],
    ...(config['max-datagram-size'] !== undefined ? { maxDatagramSize: config['max-datagram-size'] } : {}),
    window: config.window,
    readAheadBytes: config['read-ahead'],
    ...(config['read-ahead-budget'] !== undefined ? { readAheadBudgetBytes: config['read-ahead-budget'] } : {}),
    stallTimeoutMs: config['stall-timeout'],
    metaCacheMs: config['meta-cache'],
    indexFrom: config['index-from'],
    md5Worker: config['md5-worker'],
    md5Workers: config['md5-workers'],
    cache: {
      memoryBytes: config['cache-size'] ?? defaultCacheBytes(),
      ...(config['cache-dir'] !== undefined ? { dir: config['cache-dir'] } : {}),
      dirBytes: config['cache-dir-size'],
      serveStale: config['serve-stale'],
      staleMaxAgeMs: config['stale-max-age'] * 1_000,
    },
    pool: { maxServers: config['max-servers'] },
    maxDatagramRate: config['max-datagram-rate'],
    limits: httpLimits(config),
    accessLog: config['access-log'],
    ...(config['udp-port'] !== undefined ? { udpPort: config['udp-port'] } : {}),
  };
}

function httpLimits(config: GatewayConfig): HttpLimitsInit {
  return {
    maxTransfers: config['max-transfers'],
    maxTransfersPerClient: config['max-transfers-per-client'],
    maxConnections: config['max-connections'],
    maxConnectionsPerClient: config['max-connections-per-client'],
    headersTimeoutMs: config['headers-timeout'],
    requestTimeoutMs: config['request-timeout'],
    keepAliveTimeoutMs: config['keep-alive-timeout'],
    idleTimeoutMs: config['idle-timeout'],
    maxUrlBytes: config['max-url-bytes'],
  };
}

/** The run-time changes of a reload: every reloadable option, as it now reads. */
function gatewayChanges(config: GatewayConfig): GatewayChanges {
  return {
    limits: httpLimits(config),
    readAheadBudgetBytes: config['read-ahead-budget'] ?? defaultReadAheadBudgetBytes(),
    stallTimeoutMs: config['stall-timeout'],
    accessLog: config['access-log'],
  };
}

/** Runs the CLI; resolves with the exit code once the gateway stops (SIGINT/SIGTERM). */
export async function main(argv: string[]): Promise<number> {
  const parsed = await parseConfig(GATEWAY_COMMAND, parser(argv), checkGatewayConfig);
  if ('exitCode' in parsed) return parsed.exitCode;
  let { config } = parsed;
  const worker = workerIdentity();
  const logger = createStderrLogger(worker === undefined ? 'httpgw' : `httpgw[${worker.index}]`, config['log-level'], resolveLogFormat(config['log-format']));
  if (config.workers > 1 && worker === undefined) return runPrimary(config.workers, logger);
  // A worker runs with its ports moved and its share of what the workers divide (cluster.ts).
  const local = (resolved: GatewayConfig) => (worker === undefined ? resolved : configForWorker(resolved, worker));
  try {
    const key = config['secret-file'] ? await readSecretKey(config['secret-file']) : undefined;
    const adminToken = config['admin-token-file'] ? await readAdminToken(config['admin-token-file']) : undefined;
    const mine = local(config);
    const admin = mine.admin !== undefined ? { admin: { ...parseAdminAddress(mine.admin), ...(adminToken ? { token: adminToken } : {}), config: { ...config } } } : {};
    const gateway = await createGateway({ ...gatewayInit(mine), ...admin, logger, ...(key ? { key } : {}) });
    if (worker !== undefined) reportReady(gateway.udpAddress.port);
    // `kill -HUP PID`: re-read the file and the environment; apply what may change while running.
    const reload = () => {
      void reloadConfig(GATEWAY_COMMAND, parsed.flags, config, logger, checkGatewayConfig, (next, changes) => {
        gateway.reconfigure(gatewayChanges(local(next)));
        if (changes.some((change) => change.key === 'log-level')) logger.setLevel(next['log-level']);
        // The admin token is read again: a rotated token file takes effect without a restart.
        const tokenFile = next['admin-token-file'];
        if (tokenFile && gateway.admin) void readAdminToken(tokenFile).then((token) => gateway.admin?.setToken(token), (error: unknown) => logger.error('admin token file unreadable: kept the old token', { error: String(error) }));
      }).then((next) => (config = next));
    };
    process.on('SIGHUP', reload);
    // `kill -USR2 PID`: one line with the read-ahead budget's and the cache's figures, and the memory they cost.
    const logStats = () => {
      const { readAhead, transfers, cache, udp, index } = gateway.stats();
      const memory = process.memoryUsage();
      logger.info('stats', {
        servers: gateway.pool.size,
        serversIndexed: index.indexed,
        catalogues: index.catalogues,
        catalogueFetches: index.fetches,
        transfers: transfers.active,
        udpBytesIn: udp.bytesIn,
        readAheadReserved: readAhead.reservedBytes,
        readAheadPeak: readAhead.peakBytes,
        readAheadLimit: readAhead.limitBytes,
        readAheadWaits: readAhead.waits,
        readAheadWaiting: readAhead.waiting,
        collections: readAhead.collections,
        cacheHits: cache.hits,
        cacheMisses: cache.misses,
        cacheStale: cache.stale,
        cacheCollapsed: cache.collapsed,
        cacheMemoryBytes: cache.memory?.bytes,
        cacheMemoryLimit: cache.memory?.maxBytes,
        cacheMemoryEvictions: cache.memory?.evictions,
        cacheDiskBytes: cache.disk?.bytes,
        cacheDiskEvictions: cache.disk?.evictions,
        cacheDiskCorrupt: cache.disk?.corrupt,
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        arrayBuffers: memory.arrayBuffers,
      });
    };
    process.on('SIGUSR2', logStats);
    await serveUntilSignal(logger, () => gateway.drain(config['drain-timeout']).then(() => undefined));
    process.off('SIGUSR2', logStats);
    process.off('SIGHUP', reload);
    leaveCluster();
    return 0;
  } catch (error) {
    logger.error(error instanceof Error ? error.message : String(error));
    logger.flush();
    // A worker that cannot start (its port taken) exits, so its primary sees it fail.
    leaveCluster();
    return 1;
  }
}

await runIfMain(import.meta.url, main);
