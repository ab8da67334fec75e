import { z } from 'zod';
import { MAX_DATAGRAM_BYTES, MIN_DATAGRAM_BYTES } from '@httpgw/protocol';
import { DEFAULT_MAX_DATAGRAM_RATE, LOG_FORMATS, LOG_LEVELS, byteSize, integerIn, option, positiveInteger, type CommandConfig, type ConfigOf } from '@httpgw/runtime';

const text = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' });
const hostPort = z.string({ error: 'must be HOST:PORT' }).regex(/^.+:\d{1,5}$/, { error: 'must be HOST:PORT' });

/**
 * Every option of `fastfilesrv`, once: flag `--NAME`, config file key `NAME`, environment
 * FASTFILESRV_NAME (HTTPGW_SECRET_FILE is accepted too, as both commands always did). To add one:
 * an entry here, then read `config['NAME']` in cli.ts.
 */
export const FILE_SERVER_OPTIONS = {
  gateway: option({ type: 'strings', schema: z.array(hostPort, { error: 'must be a list of HOST:PORT' }), describe: 'a gateway to serve, as HOST:PORT (repeatable; in the environment, comma-separated)' }),
  root: option({ type: 'string', schema: text, default: '.', describe: 'directory to serve; no path leads outside it (hard links under it are served as the files they are)' }),
  bind: option({ type: 'string', schema: text, defaultDescription: '0.0.0.0, or :: when a gateway is IPv6', describe: 'local UDP address (:: is dual-stack: IPv4 and IPv6)' }),
  port: option({ type: 'number', schema: integerIn(0, 65_535), default: 0, describe: 'local UDP port (0: any free port)' }),
  name: option({ type: 'string', schema: text, describe: 'server name shown in the gateway logs (default HOST:PORT)' }),
  'allow-dotfiles': option({ type: 'boolean', schema: z.boolean({ error: 'must be true or false' }), default: false, describe: 'serve names starting with "."' }),
  'secret-file': option({ type: 'string', schema: text, envAliases: ['HTTPGW_SECRET_FILE'], describe: 'file holding the shared secret (env FASTFILESRV_SECRET_FILE or HTTPGW_SECRET_FILE); every datagram is then signed with HMAC-SHA256' }),
  'max-datagram-size': option({ type: 'number', schema: integerIn(MIN_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES), default: MAX_DATAGRAM_BYTES, describe: `largest UDP datagram sent, ${MIN_DATAGRAM_BYTES}..${MAX_DATAGRAM_BYTES}: listing pages are cut to fit it (and the size each gateway names)` }),
  'max-rate': option({
    type: 'string',
    schema: byteSize('100MB or 12500000').refine((bytes) => bytes > 0, { error: 'must be a positive size in bytes, e.g. 100MB' }),
    describe: 'bytes of chunk data sent per second at most, over all gateways, e.g. 100MB or 10MiB (token bucket, bursts of 10 ms; off when not set)',
  }),
  'max-datagram-rate': option({ type: 'number', schema: positiveInteger(), default: DEFAULT_MAX_DATAGRAM_RATE, describe: 'UDP datagrams per second accepted from a gateway; the excess is dropped' }),
  'metrics-port': option({ type: 'number', schema: integerIn(0, 65_535), describe: 'serve Prometheus metrics on http://METRICS_ADDRESS:PORT/metrics (off when not set; 0 picks a port, logged)' }),
  'metrics-address': option({ type: 'string', schema: text, default: '127.0.0.1', describe: 'address of the metrics listener' }),
  'drain-timeout': option({ type: 'number', schema: integerIn(0, Number.MAX_SAFE_INTEGER, 'must be an integer of 0 or more'), default: 10_000, reloadable: true, describe: 'ms chunk reads in flight may take to finish after SIGTERM/SIGINT' }),
  'log-level': option({ type: 'string', schema: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }), choices: LOG_LEVELS, default: 'info', reloadable: true, describe: 'log verbosity' }),
  'log-format': option({ type: 'string', schema: z.enum(LOG_FORMATS, { error: `must be one of ${LOG_FORMATS.join(', ')}` }), choices: LOG_FORMATS, default: 'auto', describe: 'json: one JSON object a line; pretty: one readable line; auto: pretty on a terminal, else json' }),
};

export const FILE_SERVER_COMMAND: CommandConfig<typeof FILE_SERVER_OPTIONS> = { name: 'fastfilesrv', envPrefix: 'FASTFILESRV', options: FILE_SERVER_OPTIONS };

export type FileServerConfig = ConfigOf<typeof FILE_SERVER_OPTIONS>;
