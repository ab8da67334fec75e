import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { normalizeAddress, type Logger } from '@httpgw/runtime';
import type { GatewayState } from './file-route.js';

/** An incoming X-Request-Id is kept when it is short and plain (no spaces, quotes or control characters); else one is made. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@\-+=/]{1,128}$/;

/** What one request leaves for its access-log entry; the app fills `state` in. */
export interface RequestRecord {
  readonly id: string;
  /** The Koa state of the request (transfer progress, error, cache status), once the app saw it. */
  state?: GatewayState;
}

const records = new WeakMap<IncomingMessage, RequestRecord>();

/** The request's id and record (made by `withAccessLog`); undefined for a request that did not pass through it (unit tests). */
export function recordOf(req: IncomingMessage): RequestRecord | undefined {
  return records.get(req);
}

export function requestIdFor(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

export interface AccessLogSwitch {
  /** Off: no entry is written (the request id is still set). Read on each request, so SIGHUP may turn it. */
  enabled: boolean;
}

/**
 * Wraps the whole HTTP handler (limits included, so refused requests are logged too): gives each
 * request its id (the `X-Request-Id` response header) and writes exactly one entry when its
 * response ends or is cut. Fields: client, method, path, range, status, bytes, durationMs, ttfbMs
 * (time to the status line: the first body chunk or the error), servers, retransmissions, cache
 * (`state.cacheStatus`, absent without a cache), error, outcome (aborted when cut short).
 */
export function withAccessLog(handler: RequestListener, logger: Logger, setting: AccessLogSwitch): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const record: RequestRecord = { id: requestIdFor(req.headers['x-request-id']) };
    records.set(req, record);
    res.setHeader('X-Request-Id', record.id);
    if (!setting.enabled) return handler(req, res);
    let firstByteAt: number | undefined;
    // The status line goes out with the first body write (or end): node calls writeHead then.
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse['writeHead']>) {
      firstByteAt ??= performance.now();
      return writeHead.apply(this, args);
    } as ServerResponse['writeHead'];
    res.once('close', () => {
      const state = record.state;
      const fetcher = state?.fetcher;
      const complete = res.writableFinished;
      const status = res.statusCode;
      const length = Number(res.getHeader('content-length'));
      const bytes = fetcher ? fetcher.bytesDelivered : req.method === 'HEAD' || !complete || !Number.isFinite(length) ? 0 : length;
      const path = req.url ?? '';
      logger[status >= 500 || !complete ? 'warn' : 'info'](`${req.method ?? '?'} ${path}`, {
        reqId: record.id,
        status,
        bytes,
        durationMs: round(performance.now() - started),
        ttfbMs: firstByteAt === undefined ? undefined : round(firstByteAt - started),
        servers: fetcher ? [...fetcher.serversUsed].join(',') : undefined,
        retransmissions: fetcher?.retransmissions,
        cache: state?.cacheStatus,
        client: normalizeAddress(req.socket.remoteAddress ?? ''),
        method: req.method,
        path,
        range: typeof req.headers.range === 'string' ? req.headers.range : undefined,
        error: state?.error,
        outcome: complete ? undefined : 'aborted',
      });
    });
    handler(req, res);
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
