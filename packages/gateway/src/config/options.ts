import { z } from 'zod';
import { MAX_CHUNK_SIZE, MAX_DATAGRAM_BYTES, MIN_CHUNK_SIZE, MTU_SAFE_CHUNK_SIZE, MTU_SAFE_DATAGRAM_BYTES, chunkDatagramBytes } from '@httpgw/protocol';
import { DEFAULT_MAX_DATAGRAM_RATE, LOG_FORMATS, LOG_LEVELS, byteSize, formatByteSize, integerIn, option, positiveInteger, type CommandConfig, type ConfigOf } from '@httpgw/runtime';
import { DEFAULT_CHUNK_SIZE, defaultCacheBytes } from '../gateway.js';
import { defaultMd5Workers } from '../transfer/answer-queue.js';
import { parseAdminAddress } from '../ops/admin-auth.js';
import { DEFAULT_HTTP_LIMITS as LIMITS } from '../http/limits.js';
import { defaultReadAheadBudgetBytes } from '../transfer/read-ahead-budget.js';

const port = integerIn(0, 65_535);
const nonNegative = (message: string) => z.number({ error: message }).min(0, { error: message }).max(Number.MAX_SAFE_INTEGER, { error: message });
const positive = (message: string) => z.number({ error: message }).gt(0, { error: message }).max(Number.MAX_SAFE_INTEGER, { error: message });
const text = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' });
const adminAddress = text.refine(
  (value) => {
    try {
      parseAdminAddress(value);
      return true;
    } catch {
      return false;
    }
  },
  { error: 'must be ADDRESS:PORT, e.g. 127.0.0.1:9090 or [::1]:9090' },
);

/**
 * Every option of `httpgw`, once: flag `--NAME`, config file key `NAME`, environment HTTPGW_NAME.
 * To add one: add an entry here (schema, default, description, `reloadable` if SIGHUP may change it),
 * then read `config['NAME']` where the gateway is made (cli.ts gatewayInit) and, when reloadable, in
 * Gateway.reconfigure. Help, env, file and --print-config follow by themselves.
 */
export const GATEWAY_OPTIONS = {
  address: option({ type: 'string', positional: 'ADDRESS', schema: text, default: '0.0.0.0', describe: 'address for HTTP and UDP' }),
  port: option({ type: 'number', positional: 'PORT', schema: port, default: 8080, describe: 'HTTP port (0: any free port); UDP uses the same number unless --udp-port' }),
  'udp-port': option({ type: 'number', schema: port, describe: 'UDP port file servers register with (0: any free port)' }),
  'chunk-size': option({ type: 'number', schema: integerIn(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE), default: DEFAULT_CHUNK_SIZE, describe: `bytes per chunk, ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}; ${MTU_SAFE_CHUNK_SIZE} keeps datagrams under a 1,500-byte MTU` }),
  'max-datagram-size': option({
    type: 'number',
    schema: integerIn(576, MAX_DATAGRAM_BYTES),
    defaultDescription: `${MTU_SAFE_DATAGRAM_BYTES} when the chunk size fits it, else ${MAX_DATAGRAM_BYTES}`,
    describe: 'largest UDP datagram the gateway receives: file servers cut listing pages to fit it; chunks must fit it',
  }),
  window: option({ type: 'number', schema: integerIn(1, 4_096), default: 64, describe: 'most chunk requests in flight to one server (the congestion window adapts below it)' }),
  'read-ahead': option({ type: 'number', schema: positiveInteger(), default: 8 * 1024 * 1024, describe: 'bytes one download may fetch ahead of its client' }),
  'read-ahead-budget': option({
    type: 'number',
    schema: integerIn(0, Number.MAX_SAFE_INTEGER, 'must be an integer of at least two chunks'),
    reloadable: true,
    defaultDescription: `1/32 of memory, 64 MiB..1 GiB: ${defaultReadAheadBudgetBytes()} here`,
    describe: 'bytes all downloads together may fetch ahead of their clients (each may still hold two chunks)',
  }),
  'stall-timeout': option({ type: 'number', schema: positive('must be positive'), default: 10_000, reloadable: true, describe: 'ms without progress before a download is cut' }),
  workers: option({
    type: 'number',
    schema: integerIn(1, 64),
    default: 1,
    describe: 'gateway processes sharing the HTTP port, to use more cores: worker i takes UDP port (and admin port) + i, and 1/N of the cache and budgets; register file servers with every worker\'s UDP port',
  }),
  'md5-workers': option({
    type: 'number',
    schema: integerIn(1, 64),
    default: defaultMd5Workers(),
    defaultDescription: `one per core beyond the main thread's, 1..4: ${defaultMd5Workers()} here`,
    describe: 'worker threads that check chunk MD5s; more start only while every one is busy',
  }),
  'md5-worker': option({ type: 'boolean', schema: z.boolean({ error: 'must be true or false' }), default: true, describe: 'check chunk MD5s on a worker thread (--no-md5-worker: on the main thread, better with one core)' }),
  'meta-cache': option({ type: 'number', schema: nonNegative('must be 0 or more'), default: 1_000, describe: "ms a file's metadata is reused before the servers are asked again: how long a cached version is served without asking whether it is still current (as long again while a new lookup runs)" }),
  'cache-size': option({
    type: 'string',
    schema: byteSize('536870912 or 512MiB'),
    defaultDescription: `1/16 of memory, 64 MiB..2 GiB: ${formatByteSize(defaultCacheBytes())} here`,
    describe: 'bytes of file chunks cached in memory, e.g. 512MiB; 0 turns the memory cache off',
  }),
  'cache-dir': option({ type: 'string', schema: text, describe: 'directory for a cache on disk that survives restarts (off without one)' }),
  'cache-dir-size': option({ type: 'string', schema: byteSize('10GiB'), default: 10 * 1024 ** 3, defaultDescription: '10 GiB', describe: 'bytes the disk cache may hold' }),
  'serve-stale': option({ type: 'boolean', schema: z.boolean({ error: 'must be true or false' }), default: true, describe: 'serve a fully cached file when no server holding it answers (--no-serve-stale: 503)' }),
  'stale-max-age': option({ type: 'number', schema: nonNegative('must be 0 or more'), default: 86_400, describe: 'seconds since the servers last reported a version beyond which it is not served stale' }),
  'secret-file': option({ type: 'string', schema: text, describe: 'file holding the shared secret; only servers with it are admitted' }),
  'max-servers': option({ type: 'number', schema: positiveInteger(), default: 1_024, describe: 'file servers registered at most; more are refused (told to come back later)' }),
  'index-from': option({ type: 'number', schema: positiveInteger(), default: 32, describe: 'pool size from which lookups and listings ask only the holders the servers\' catalogues name (smaller pools: every server)' }),
  'max-datagram-rate': option({ type: 'number', schema: positiveInteger(), default: DEFAULT_MAX_DATAGRAM_RATE, describe: 'UDP datagrams per second accepted from one source; the excess is dropped' }),
  'max-transfers': option({ type: 'number', schema: positiveInteger(), default: LIMITS.maxTransfers, reloadable: true, describe: 'requests served at once, all clients together (503 beyond)' }),
  'max-transfers-per-client': option({ type: 'number', schema: positiveInteger(), default: LIMITS.maxTransfersPerClient, reloadable: true, describe: 'requests served at once to one client IP (429 beyond)' }),
  'max-connections': option({ type: 'number', schema: positiveInteger(), default: LIMITS.maxConnections, reloadable: true, describe: 'open HTTP connections, all clients together' }),
  'max-connections-per-client': option({ type: 'number', schema: positiveInteger(), default: LIMITS.maxConnectionsPerClient, reloadable: true, describe: 'open HTTP connections from one client IP' }),
  'headers-timeout': option({ type: 'number', schema: positiveInteger(), default: LIMITS.headersTimeoutMs, reloadable: true, describe: 'ms a client has to send its request headers (408 beyond)' }),
  'request-timeout': option({ type: 'number', schema: positiveInteger(), default: LIMITS.requestTimeoutMs, reloadable: true, describe: 'ms a client has to send its whole request (408 beyond)' }),
  'keep-alive-timeout': option({ type: 'number', schema: positiveInteger(), default: LIMITS.keepAliveTimeoutMs, reloadable: true, describe: 'ms an idle keep-alive connection stays open' }),
  'idle-timeout': option({ type: 'number', schema: positiveInteger(), default: LIMITS.idleTimeoutMs, reloadable: true, describe: 'ms a connection may go without moving a byte, during a response too' }),
  'max-url-bytes': option({ type: 'number', schema: positiveInteger(), default: LIMITS.maxUrlBytes, reloadable: true, describe: 'longest request URL (414 beyond)' }),
  'drain-timeout': option({ type: 'number', schema: integerIn(0, Number.MAX_SAFE_INTEGER, 'must be an integer of 0 or more'), default: 30_000, reloadable: true, describe: 'ms transfers in flight may take to finish after SIGTERM/SIGINT before they are cut' }),
  admin: option({ type: 'string', schema: adminAddress, describe: 'ADDRESS:PORT of the admin listener: /metrics, the admin API, the dashboard (off when not set; port 0 picks one, logged)' }),
  'admin-token-file': option({ type: 'string', schema: text, reloadable: true, describe: 'file holding the bearer token the admin API requires (without it the API is open)' }),
  'log-level': option({ type: 'string', schema: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }), choices: LOG_LEVELS, default: 'info', reloadable: true, describe: 'log verbosity' }),
  'log-format': option({ type: 'string', schema: z.enum(LOG_FORMATS, { error: `must be one of ${LOG_FORMATS.join(', ')}` }), choices: LOG_FORMATS, default: 'auto', describe: 'json: one JSON object a line; pretty: one readable line; auto: pretty on a terminal, else json' }),
  'access-log': option({ type: 'boolean', schema: z.boolean({ error: 'must be true or false' }), default: true, reloadable: true, describe: 'one log entry per HTTP request (--no-access-log: none)' }),
};

export const GATEWAY_COMMAND: CommandConfig<typeof GATEWAY_OPTIONS> = { name: 'httpgw', envPrefix: 'HTTPGW', options: GATEWAY_OPTIONS };

export type GatewayConfig = ConfigOf<typeof GATEWAY_OPTIONS>;

/** Checks across options that one schema cannot express; returns the first problem, named as a flag. */
export function checkGatewayConfig(config: GatewayConfig): string | undefined {
  if (!(config['read-ahead'] >= config['chunk-size'] * 2)) return '--read-ahead must be at least two chunks';
  const budget = config['read-ahead-budget'];
  if (budget !== undefined && budget < config['chunk-size'] * 2) return '--read-ahead-budget must be an integer of at least two chunks';
  if (config['request-timeout'] < config['headers-timeout']) return '--request-timeout must be at least --headers-timeout';
  const datagram = config['max-datagram-size'];
  if (datagram !== undefined && chunkDatagramBytes(config['chunk-size']) > datagram) return `--max-datagram-size must hold a chunk: at least ${chunkDatagramBytes(config['chunk-size'])} for --chunk-size ${config['chunk-size']}`;
  if (config['admin-token-file'] !== undefined && config.admin === undefined) return '--admin-token-file needs --admin';
  const udpBase = config['udp-port'] ?? config.port;
  if (udpBase !== 0 && udpBase + config.workers - 1 > 65_535) return `--workers ${config.workers} needs UDP ports ${udpBase}..${udpBase + config.workers - 1}: beyond 65535`;
  return undefined;
}
