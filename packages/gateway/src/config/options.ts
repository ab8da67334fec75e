import { z } from 'zod';
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, MTU_SAFE_CHUNK_SIZE } from '@httpgw/protocol';
import { DEFAULT_MAX_DATAGRAM_RATE, LOG_FORMATS, LOG_LEVELS, integerIn, option, positiveInteger, type CommandConfig, type ConfigOf } from '@httpgw/runtime';
import { DEFAULT_CHUNK_SIZE } from '../gateway.js';
import { DEFAULT_HTTP_LIMITS as LIMITS } from '../http/limits.js';
import { defaultReadAheadBudgetBytes } from '../transfer/read-ahead-budget.js';

const port = integerIn(0, 65_535);
const nonNegative = (message: string) => z.number({ error: message }).min(0, { error: message }).max(Number.MAX_SAFE_INTEGER, { error: message });
const positive = (message: string) => z.number({ error: message }).gt(0, { error: message }).max(Number.MAX_SAFE_INTEGER, { error: message });
const text = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' });

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
  'md5-worker': option({ type: 'boolean', schema: z.boolean({ error: 'must be true or false' }), default: true, describe: 'check chunk MD5s on a worker thread (--no-md5-worker: on the main thread, better with one core)' }),
  'meta-cache': option({ type: 'number', schema: nonNegative('must be 0 or more'), default: 1_000, describe: "ms a file's metadata is reused before the servers are asked again" }),
  'secret-file': option({ type: 'string', schema: text, describe: 'file holding the shared secret; only servers with it are admitted' }),
  'max-servers': option({ type: 'number', schema: positiveInteger(), default: 1_024, describe: 'file servers registered at most; more are refused' }),
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
  return undefined;
}
