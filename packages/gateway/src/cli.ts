import yargs from 'yargs';
import { MAX_CHUNK_SIZE, MAX_DATAGRAM_BYTES, MIN_CHUNK_SIZE, MTU_SAFE_CHUNK_SIZE, MTU_SAFE_DATAGRAM_BYTES, chunkDatagramBytes, isDatagramSize } from '@httpgw/protocol';
import { DEFAULT_MAX_DATAGRAM_RATE, LOG_LEVELS, batchedWriter, formatByteSize, parseByteSize, createLogger, parseCommandLine, readSecretKey, runIfMain, serveUntilSignal, usageError, type LogLevel } from '@httpgw/runtime';
import { DEFAULT_CHUNK_SIZE, createGateway, defaultCacheBytes } from './gateway.js';
import { parseAdminAddress, readAdminToken } from './ops/admin-auth.js';
import { DEFAULT_HTTP_LIMITS as LIMITS } from './http/limits.js';
import { defaultReadAheadBudgetBytes } from './transfer/read-ahead-budget.js';

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('httpgw')
    .usage('$0 [ADDRESS] [PORT] [options]\n\nHTTP gateway to a pool of UDP file servers (fastfilesrv): GET /<path> streams the file, fetched in chunks from every server that holds it.')
    .command('$0 [address] [port]', false)
    .positional('address', { type: 'string', default: '0.0.0.0', describe: 'address for HTTP and UDP (IPv6 too; :: is dual-stack: IPv4 and IPv6 clients and servers)' })
    .positional('port', { type: 'number', default: 8080, describe: 'HTTP port (0: any free port); UDP uses the same number unless --udp-port' })
    .option('udp-port', { type: 'number', describe: 'UDP port file servers register with (0: any free port)' })
    .option('chunk-size', { type: 'number', default: DEFAULT_CHUNK_SIZE, describe: `bytes per chunk, ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}; ${MTU_SAFE_CHUNK_SIZE} keeps datagrams under a 1,500-byte MTU` })
    .option('max-datagram-size', {
      type: 'number',
      defaultDescription: `${MTU_SAFE_DATAGRAM_BYTES} when the chunk size fits it, else ${MAX_DATAGRAM_BYTES}`,
      describe: 'largest UDP datagram the gateway receives: file servers cut listing pages to fit it; chunks must fit it',
    })
    .option('window', { type: 'number', default: 64, describe: 'most chunk requests in flight to one server (the congestion window adapts below it)' })
    .option('read-ahead', { type: 'number', default: 8 * 1024 * 1024, describe: 'bytes one download may fetch ahead of its client' })
    .option('read-ahead-budget', {
      type: 'number',
      defaultDescription: `1/32 of memory, 64 MiB..1 GiB: ${defaultReadAheadBudgetBytes()} here`,
      describe: 'bytes all downloads together may fetch ahead of their clients (each may still hold two chunks)',
    })
    .option('stall-timeout', { type: 'number', default: 10_000, describe: 'ms without progress before a download is cut' })
    .option('md5-worker', { type: 'boolean', default: true, describe: 'check chunk MD5s on a worker thread (--no-md5-worker: on the main thread, better with one core)' })
    .option('meta-cache', { type: 'number', default: 1_000, describe: 'ms a file\'s metadata is reused before the servers are asked again: how long a cached version is served without asking whether it still is the current one' })
    .option('cache-size', {
      type: 'string',
      defaultDescription: `1/16 of memory, 64 MiB..2 GiB: ${formatByteSize(defaultCacheBytes())} here`,
      describe: 'bytes of file chunks cached in memory, e.g. 512MiB; 0 turns the memory cache off',
    })
    .option('cache-dir', { type: 'string', describe: 'directory for a cache on disk that survives restarts (off without one)' })
    .option('cache-dir-size', { type: 'string', default: '10GiB', describe: 'bytes the disk cache may hold' })
    .option('serve-stale', { type: 'boolean', default: true, describe: 'serve a fully cached file when no server holding it answers (--no-serve-stale: 503)' })
    .option('stale-max-age', { type: 'number', default: 86_400, describe: 'seconds since the servers last reported a version beyond which it is not served stale' })
    .option('secret-file', { type: 'string', describe: 'file holding the shared secret (env HTTPGW_SECRET_FILE); only servers with it are admitted' })
    .option('max-servers', { type: 'number', default: 1_024, describe: 'file servers registered at most; more are refused' })
    .option('max-datagram-rate', { type: 'number', default: DEFAULT_MAX_DATAGRAM_RATE, describe: 'UDP datagrams per second accepted from one source; the excess is dropped' })
    .option('max-transfers', { type: 'number', default: LIMITS.maxTransfers, describe: 'requests served at once, all clients together (503 beyond)' })
    .option('max-transfers-per-client', { type: 'number', default: LIMITS.maxTransfersPerClient, describe: 'requests served at once to one client IP (429 beyond)' })
    .option('max-connections', { type: 'number', default: LIMITS.maxConnections, describe: 'open HTTP connections, all clients together' })
    .option('max-connections-per-client', { type: 'number', default: LIMITS.maxConnectionsPerClient, describe: 'open HTTP connections from one client IP' })
    .option('headers-timeout', { type: 'number', default: LIMITS.headersTimeoutMs, describe: 'ms a client has to send its request headers (408 beyond)' })
    .option('request-timeout', { type: 'number', default: LIMITS.requestTimeoutMs, describe: 'ms a client has to send its whole request (408 beyond)' })
    .option('keep-alive-timeout', { type: 'number', default: LIMITS.keepAliveTimeoutMs, describe: 'ms an idle keep-alive connection stays open' })
    .option('idle-timeout', { type: 'number', default: LIMITS.idleTimeoutMs, describe: 'ms a connection may go without moving a byte, during a response too' })
    .option('max-url-bytes', { type: 'number', default: LIMITS.maxUrlBytes, describe: 'longest request URL (414 beyond)' })
    .option('admin', { type: 'string', describe: 'ADDRESS:PORT of the admin listener: /metrics, the admin API, the dashboard (off when not set; port 0 picks one, logged)' })
    .option('admin-token-file', { type: 'string', describe: 'file holding the bearer token the admin API requires (without it the API is open)' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'log verbosity' })
    .env('HTTPGW')
    .example('$0', 'HTTP and UDP on 0.0.0.0:8080')
    .example('$0 127.0.0.1 9000 --udp-port 9001', 'HTTP on 9000, file servers register on UDP 9001')
    .example('$0 --chunk-size 1200', 'MTU-safe chunks (and listing pages) for networks that drop IP fragments')
    .example('$0 :: 8080', 'dual-stack: IPv6 and IPv4 clients and file servers')
    .example('$0 --cache-size 2GiB --cache-dir /var/cache/httpgw', 'hot files from memory, and a disk cache that survives restarts')
    .example('HTTPGW_SECRET_FILE=/etc/httpgw.key $0', 'authenticated: only file servers with the same secret are admitted')
    .example('curl -O http://127.0.0.1:8080/dir/file.bin', 'download a file through the gateway')
    .example('$0 --admin 127.0.0.1:9090 --admin-token-file /etc/httpgw-admin.token', 'metrics, admin API and dashboard on http://127.0.0.1:9090/')
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100));
}

type Args = Awaited<ReturnType<ReturnType<typeof parser>['parseAsync']>>;

/** Range checks yargs cannot express; returns the first problem found. */
function checkArgs(args: Args): string | undefined {
  const isInt = (value: number, min: number, max: number) => Number.isInteger(value) && value >= min && value <= max;
  if (!isInt(args.chunkSize, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)) return `--chunk-size must be an integer in ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`;
  if (args.maxDatagramSize !== undefined) {
    if (!isDatagramSize(args.maxDatagramSize)) return `--max-datagram-size must be an integer in 576..${MAX_DATAGRAM_BYTES}`;
    if (chunkDatagramBytes(args.chunkSize) > args.maxDatagramSize) return `--max-datagram-size must hold a chunk: at least ${chunkDatagramBytes(args.chunkSize)} for --chunk-size ${args.chunkSize}`;
  }
  if (!isInt(args.port, 0, 65_535)) return 'PORT must be an integer in 0..65535';
  if (args.udpPort !== undefined && !isInt(args.udpPort, 0, 65_535)) return '--udp-port must be an integer in 0..65535';
  if (!isInt(args.window, 1, 4_096)) return '--window must be an integer in 1..4096';
  if (!(args.readAhead >= args.chunkSize * 2)) return '--read-ahead must be at least two chunks';
  if (args.readAheadBudget !== undefined && !(Number.isSafeInteger(args.readAheadBudget) && args.readAheadBudget >= args.chunkSize * 2)) return '--read-ahead-budget must be an integer of at least two chunks';
  if (!(args.stallTimeout > 0)) return '--stall-timeout must be positive';
  if (!(args.metaCache >= 0)) return '--meta-cache must be 0 or more';
  if (args.cacheSize !== undefined && parseByteSize(args.cacheSize) === undefined) return '--cache-size must be a size in bytes, e.g. 536870912 or 512MiB';
  if (parseByteSize(args.cacheDirSize) === undefined) return '--cache-dir-size must be a size in bytes, e.g. 10GiB';
  if (!(args.staleMaxAge >= 0)) return '--stale-max-age must be 0 or more';
  for (const [flag, value] of Object.entries(limitFlags(args))) if (!isInt(value, 1, Number.MAX_SAFE_INTEGER)) return `--${flag} must be a positive integer`;
  if (args.requestTimeout < args.headersTimeout) return '--request-timeout must be at least --headers-timeout';
  if (args.admin !== undefined) {
    try {
      parseAdminAddress(args.admin);
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
  if (args.adminTokenFile !== undefined && args.admin === undefined) return '--admin-token-file needs --admin';
  return undefined;
}

/** The limit flags, each a positive integer. */
function limitFlags(args: Args) {
  return {
    'max-servers': args.maxServers,
    'max-datagram-rate': args.maxDatagramRate,
    'max-transfers': args.maxTransfers,
    'max-transfers-per-client': args.maxTransfersPerClient,
    'max-connections': args.maxConnections,
    'max-connections-per-client': args.maxConnectionsPerClient,
    'headers-timeout': args.headersTimeout,
    'request-timeout': args.requestTimeout,
    'keep-alive-timeout': args.keepAliveTimeout,
    'idle-timeout': args.idleTimeout,
    'max-url-bytes': args.maxUrlBytes,
  };
}

/** The options as resolved (flags, env, defaults), kebab-case as on the command line, for GET /config. */
function resolvedConfig(args: Args): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(args)) if (name !== '_' && name !== '$0' && !/[A-Z]/.test(name)) config[name] = value;
  return config;
}

/** Runs the CLI; resolves with the exit code once the gateway stops (SIGINT/SIGTERM). */
export async function main(argv: string[]): Promise<number> {
  const parsed = await parseCommandLine('httpgw', parser(argv));
  if ('exitCode' in parsed) return parsed.exitCode;
  const { args } = parsed;
  const invalid = checkArgs(args);
  if (invalid) return usageError('httpgw', invalid);

  const logger = createLogger({ name: 'httpgw', level: args.logLevel, write: batchedWriter((text) => process.stderr.write(text)) });
  try {
    const key = args.secretFile ? await readSecretKey(args.secretFile) : undefined;
    const adminToken = args.adminTokenFile ? await readAdminToken(args.adminTokenFile) : undefined;
    const gateway = await createGateway({
      // `[::1]` as in a URL is accepted too.
      address: args.address.replace(/^\[(.*)\]$/, '$1'),
      httpPort: args.port,
      chunkSize: args.chunkSize,
      ...(args.maxDatagramSize !== undefined ? { maxDatagramSize: args.maxDatagramSize } : {}),
      window: args.window,
      readAheadBytes: args.readAhead,
      ...(args.readAheadBudget !== undefined ? { readAheadBudgetBytes: args.readAheadBudget } : {}),
      stallTimeoutMs: args.stallTimeout,
      metaCacheMs: args.metaCache,
      md5Worker: args.md5Worker,
      cache: {
        memoryBytes: args.cacheSize !== undefined ? parseByteSize(args.cacheSize)! : defaultCacheBytes(),
        ...(args.cacheDir !== undefined ? { dir: args.cacheDir } : {}),
        dirBytes: parseByteSize(args.cacheDirSize)!,
        serveStale: args.serveStale,
        staleMaxAgeMs: args.staleMaxAge * 1_000,
      },
      pool: { maxServers: args.maxServers },
      maxDatagramRate: args.maxDatagramRate,
      limits: {
        maxTransfers: args.maxTransfers,
        maxTransfersPerClient: args.maxTransfersPerClient,
        maxConnections: args.maxConnections,
        maxConnectionsPerClient: args.maxConnectionsPerClient,
        headersTimeoutMs: args.headersTimeout,
        requestTimeoutMs: args.requestTimeout,
        keepAliveTimeoutMs: args.keepAliveTimeout,
        idleTimeoutMs: args.idleTimeout,
        maxUrlBytes: args.maxUrlBytes,
      },
      logger,
      ...(args.admin !== undefined ? { admin: { ...parseAdminAddress(args.admin), ...(adminToken ? { token: adminToken } : {}), config: resolvedConfig(args) } } : {}),
      ...(args.udpPort !== undefined ? { udpPort: args.udpPort } : {}),
      ...(key ? { key } : {}),
    });
    // `kill -USR2 PID`: one line with the read-ahead budget's and the cache's figures, and the memory they cost.
    const logStats = () => {
      const { readAhead, transfers, cache, udp } = gateway.stats();
      const memory = process.memoryUsage();
      logger.info('stats', {
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
    await serveUntilSignal(logger, () => gateway.stop());
    process.off('SIGUSR2', logStats);
    return 0;
  } catch (error) {
    logger.error(error instanceof Error ? error.message : String(error));
    return 1;
  }
}

await runIfMain(import.meta.url, main);
