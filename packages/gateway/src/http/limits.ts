import type { IncomingMessage, RequestListener, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { normalizeAddress, type LogFields, type Logger } from '@httpgw/runtime';

/** What one HTTP client, and all of them together, may hold of the gateway. Every field has a default. */
export interface HttpLimitsInit {
  /** Requests being served at once, all clients together (503 beyond). */
  maxTransfers?: number;
  /** Requests being served at once for one client IP address (429 beyond). */
  maxTransfersPerClient?: number;
  /** Open TCP connections, all clients together (503, then closed). */
  maxConnections?: number;
  /** Open TCP connections from one client IP address (429, then closed). */
  maxConnectionsPerClient?: number;
  /** Time a client has to send a request's headers (408, then closed). */
  headersTimeoutMs?: number;
  /** Time a client has to send a whole request (408, then closed); at least `headersTimeoutMs`. */
  requestTimeoutMs?: number;
  /** Time an idle keep-alive connection is kept open between requests. */
  keepAliveTimeoutMs?: number;
  /** Time a connection may go without any byte moving either way, a response included (then closed). */
  idleTimeoutMs?: number;
  /** Longest request target (414 beyond). */
  maxUrlBytes?: number;
}

export type HttpLimits = Required<HttpLimitsInit>;

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = {
  maxTransfers: 512,
  maxTransfersPerClient: 32,
  maxConnections: 4_096,
  maxConnectionsPerClient: 256,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  maxUrlBytes: 8_192,
};

export interface LimitCounters {
  transfersRefused: number;
  transfersRefusedPerClient: number;
  connectionsRefused: number;
  connectionsRefusedPerClient: number;
  /** Requests whose headers or body did not arrive in time (slow clients, slowloris). */
  requestTimeouts: number;
  headersTooLarge: number;
  /** Connections closed because a response in progress moved no byte for idleTimeoutMs (a client that stopped reading). */
  idleTimeouts: number;
}

/** Fills in defaults and checks every limit; throws a RangeError naming the first bad one. */
export function resolveHttpLimits(init: HttpLimitsInit = {}): HttpLimits {
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS };
  for (const [name, value] of Object.entries(init) as Array<[keyof HttpLimits, number | undefined]>) {
    if (value === undefined) continue;
    if (!Object.hasOwn(DEFAULT_HTTP_LIMITS, name)) throw new RangeError(`unknown HTTP limit ${name}`);
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
    limits[name] = value;
  }
  if (limits.requestTimeoutMs < limits.headersTimeoutMs) throw new RangeError('requestTimeoutMs must be at least headersTimeoutMs');
  return limits;
}

/** Options for `http.createServer`: the timeouts, and a check interval fine enough to enforce them. */
export function httpServerOptions(limits: HttpLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks the two timeouts above only this often (30 s by default).
    connectionsCheckingInterval: Math.min(1_000, Math.max(10, Math.floor(limits.headersTimeoutMs / 4))),
  };
}

/** A count per client address that forgets clients at zero. */
class PerClient {
  private readonly counts = new Map<string, number>();
  get(client: string): number {
    return this.counts.get(client) ?? 0;
  }
  add(client: string, delta: 1 | -1): void {
    const next = this.get(client) + delta;
    if (next <= 0) this.counts.delete(client);
    else this.counts.set(client, next);
  }
}

/** Limit hits are logged at most this often per kind, each line with the running total. */
const LOG_INTERVAL_MS = 10_000;

/**
 * Keeps slow or greedy HTTP clients from starving the others, at the connection level (counts and
 * timeouts on the node server, before any request is parsed) and at the request level (requests in
 * progress per client and overall, before the app sees them). Every refusal gets a status, a
 * Retry-After where waiting helps, a counter and a (rate-limited) log line.
 */
export class HttpGuard {
  readonly counters: LimitCounters = {
    transfersRefused: 0,
    transfersRefusedPerClient: 0,
    connectionsRefused: 0,
    connectionsRefusedPerClient: 0,
    requestTimeouts: 0,
    headersTooLarge: 0,
    idleTimeouts: 0,
  };
  private readonly transfers = new PerClient();
  private readonly connections = new PerClient();
  private activeTransfers = 0;
  private openConnections = 0;
  /** Sockets refused at accept time: whatever they send is never served. */
  private readonly refused = new WeakSet<Socket>();
  /** Responses in progress per socket: an error status must never be written into the middle of one. */
  private readonly responding = new WeakMap<Socket, number>();
  private readonly quietUntil = new Map<keyof LimitCounters, number>();
  private server: Server | undefined;
  /** Shutting down: new requests get 503 and `Connection: close`; probes (`/healthz`, `/readyz`) are still answered. */
  private draining = false;

  constructor(
    private limits: HttpLimits,
    private readonly logger: Logger,
    /** Request targets served even while draining and beyond the transfer limits (the health probes). */
    private readonly probes: ReadonlySet<string> = new Set(),
  ) {}

  get currentLimits(): Readonly<HttpLimits> {
    return this.limits;
  }

  /**
   * New limits while running (SIGHUP): counts apply to the next connection or request; the header
   * and request timeouts to requests from now on; the idle timeout to connections opened from now on.
   * Nothing in progress is cut.
   */
  update(limits: HttpLimits): void {
    this.limits = limits;
    if (!this.server) return;
    this.server.headersTimeout = limits.headersTimeoutMs;
    this.server.requestTimeout = limits.requestTimeoutMs;
    this.server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    this.server.timeout = limits.idleTimeoutMs;
  }

  /** Refuses new requests from now on (see `draining`). */
  drain(): void {
    this.draining = true;
  }

  get transfersInProgress(): number {
    return this.activeTransfers;
  }

  get connectionsOpen(): number {
    return this.openConnections;
  }

  /** Applies the connection limits and timeouts to a server made with `httpServerOptions`. */
  attach(server: Server): void {
    this.server = server;
    // Ahead of node's own listener, so a refused connection is never parsed.
    server.prependListener('connection', (socket: Socket) => this.onConnection(socket));
    server.on('clientError', (error: Error, socket: Socket) => this.onClientError(error, socket));
    server.setTimeout(this.limits.idleTimeoutMs);
    server.on('timeout', (socket: Socket) => {
      // Node also lands here when a keep-alive connection has waited long enough for its next request:
      // that is routine. Only a response that stopped moving is a limit hit.
      if (this.responding.get(socket)) this.report('idleTimeouts', 'stalled connection closed', { client: clientOf(socket), ms: this.limits.idleTimeoutMs });
      socket.destroy();
    });
  }

  /** Wraps the app's request handler with the transfer limits. */
  admit(handler: RequestListener): RequestListener {
    return (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket;
      if (this.refused.has(socket)) {
        socket.destroy();
        return;
      }
      const client = clientOf(socket);
      if (this.probes.has(req.url ?? '')) {
        handler(req, res);
        return;
      }
      if (this.draining) {
        res.shouldKeepAlive = false;
        refuse(res, 503, 'the gateway is shutting down');
        return;
      }
      if (this.transfers.get(client) >= this.limits.maxTransfersPerClient) {
        this.report('transfersRefusedPerClient', 'per-client transfer limit hit', { client, limit: this.limits.maxTransfersPerClient, status: 429 });
        refuse(res, 429, 'too many transfers in progress from this client');
        return;
      }
      if (this.activeTransfers >= this.limits.maxTransfers) {
        this.report('transfersRefused', 'transfer limit hit', { client, limit: this.limits.maxTransfers, status: 503 });
        refuse(res, 503, 'the gateway is serving as many transfers as it may');
        return;
      }
      this.activeTransfers++;
      this.transfers.add(client, 1);
      this.responding.set(socket, (this.responding.get(socket) ?? 0) + 1);
      res.once('close', () => {
        this.activeTransfers--;
        this.transfers.add(client, -1);
        this.responding.set(socket, (this.responding.get(socket) ?? 1) - 1);
      });
      handler(req, res);
    };
  }

  private onConnection(socket: Socket): void {
    const client = clientOf(socket);
    let status: 429 | 503 | undefined;
    if (this.connections.get(client) >= this.limits.maxConnectionsPerClient) {
      status = 429;
      this.report('connectionsRefusedPerClient', 'per-client connection limit hit', { client, limit: this.limits.maxConnectionsPerClient, status });
    } else if (this.openConnections >= this.limits.maxConnections) {
      status = 503;
      this.report('connectionsRefused', 'connection limit hit', { client, limit: this.limits.maxConnections, status });
    }
    if (status !== undefined) {
      this.refused.add(socket);
      socket.end(cannedResponse(status, status === 429 ? 'too many connections from this client' : 'too many connections'));
      socket.destroySoon();
      return;
    }
    this.openConnections++;
    this.connections.add(client, 1);
    socket.once('close', () => {
      this.openConnections--;
      this.connections.add(client, -1);
    });
  }

  /** Node's own handling (a status when nothing was sent yet, then close), plus counters and a log line. */
  private onClientError(error: Error, socket: Socket): void {
    const code = 'code' in error ? error.code : undefined;
    let status = 400;
    if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      this.report('requestTimeouts', 'request not received in time', { client: clientOf(socket), headersTimeoutMs: this.limits.headersTimeoutMs, requestTimeoutMs: this.limits.requestTimeoutMs });
    } else if (code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      this.report('headersTooLarge', 'request headers too large', { client: clientOf(socket) });
    }
    if (socket.writable && !this.responding.get(socket)) socket.write(cannedResponse(status));
    socket.destroy();
  }

  private report(kind: keyof LimitCounters, message: string, fields: LogFields): void {
    this.counters[kind]++;
    const now = performance.now();
    if (now < (this.quietUntil.get(kind) ?? 0)) return;
    this.quietUntil.set(kind, now + LOG_INTERVAL_MS);
    this.logger.warn(message, { ...fields, total: this.counters[kind] });
  }
}

/** The client's IP address; an IPv4 client of a dual-stack listener (::ffff:a.b.c.d) counts as its IPv4 address. */
function clientOf(socket: Socket): string {
  return socket.remoteAddress === undefined ? 'unknown' : normalizeAddress(socket.remoteAddress);
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable' };

/** The same short plain-text body as the app's errors: `<status> <message>\n`. */
function bodyOf(status: number, message: string): string {
  return `${status} ${message}\n`;
}

function refuse(res: ServerResponse, status: 429 | 503, message: string): void {
  const body = bodyOf(status, message);
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'X-Content-Type-Options': 'nosniff',
    'Retry-After': '1',
  });
  res.end(body);
}

/** A whole response written straight to a socket, for refusals before (or instead of) parsing. */
function cannedResponse(status: number, message = REASONS[status] ?? 'error'): string {
  const body = bodyOf(status, message);
  const retry = status === 429 || status === 503 ? 'Retry-After: 1\r\n' : '';
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retry}Connection: close\r\n\r\n${body}`;
}
