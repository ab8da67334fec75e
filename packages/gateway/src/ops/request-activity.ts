import type Koa from 'koa';
import type { GatewayState, TransferProgress } from '../http/file-route.js';

/** One request in progress, as `GET /transfers` shows it. */
export interface ActiveRequest {
  id: number;
  method: string;
  path: string;
  /** The Range header as sent, if any. */
  range: string | undefined;
  client: string;
  /** Epoch ms. */
  startedAt: number;
  /** Body bytes the response will have, once its headers are decided. */
  length: number | undefined;
  /** Set once the first chunk arrived (file responses only). */
  fetcher: TransferProgress | undefined;
}

/** One finished request, as `GET /transfers/recent` shows it. */
export interface FinishedRequest {
  id: number;
  method: string;
  path: string;
  range: string | undefined;
  client: string;
  status: number;
  bytes: number;
  length: number | undefined;
  startedAt: number;
  finishedAt: number;
  durationMs: number;
  /** Until the status line went out (undefined when the client left before). */
  ttfbMs: number | undefined;
  /** `aborted`: the connection closed before the whole body was written. */
  outcome: 'complete' | 'aborted';
  servers: string[];
  error: string | undefined;
}

export interface RecentQuery {
  /** `200`, or a class such as `5xx`. */
  status?: string;
  /** Substring of the path. */
  path?: string;
  /** Only requests finished at or after this epoch ms. */
  since?: number;
  limit?: number;
}

/** What the metrics hear of each request: at its status line and at its end. */
export interface RequestObserver {
  firstByte(seconds: number): void;
  finished(request: FinishedRequest): void;
}

export const DEFAULT_RECENT_CAPACITY = 5_000;

/**
 * The gateway's HTTP requests for operators: those in progress, a ring of the last finished ones,
 * and the body bytes sent so far (finished requests plus what the ones in progress have delivered,
 * read at scrape time, so a long download moves the figure while it runs). Its middleware does a
 * few assignments per request and nothing per chunk.
 */
export class RequestActivity {
  private readonly active = new Map<number, ActiveRequest>();
  private readonly ring: Array<FinishedRequest | undefined>;
  private next = 0;
  private nextId = 1;
  private finishedBytes = 0;
  /** Requests finished, and those among them answered 4xx/5xx or cut short. */
  readonly totals = { requests: 0, clientErrors: 0, serverErrors: 0, aborted: 0 };
  private observer: RequestObserver | undefined;

  constructor(readonly capacity = DEFAULT_RECENT_CAPACITY) {
    this.ring = new Array<FinishedRequest | undefined>(capacity);
  }

  observe(observer: RequestObserver): void {
    this.observer = observer;
  }

  get inProgress(): number {
    return this.active.size;
  }

  /** Body bytes sent to clients, including the part of each response in progress delivered so far. */
  bytesSent(): number {
    let bytes = this.finishedBytes;
    for (const request of this.active.values()) bytes += request.fetcher?.bytesDelivered ?? 0;
    return bytes;
  }

  list(): ActiveRequest[] {
    return [...this.active.values()];
  }

  /** Finished requests matching `query`, newest first. */
  recent(query: RecentQuery = {}): FinishedRequest[] {
    const limit = Math.max(1, Math.min(query.limit ?? 100, this.capacity));
    const status = query.status ? statusMatcher(query.status) : undefined;
    const found: FinishedRequest[] = [];
    for (let i = 1; i <= this.capacity && found.length < limit; i++) {
      const entry = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (!entry) break;
      if (query.since !== undefined && entry.finishedAt < query.since) break;
      if (status && !status(entry.status)) continue;
      if (query.path !== undefined && !entry.path.includes(query.path)) continue;
      found.push(entry);
    }
    return found;
  }

  /** Koa middleware, first in the chain: registers the request, then records how it ended. */
  middleware(): Koa.Middleware<GatewayState> {
    return async (ctx, next) => {
      const started = performance.now();
      const request: ActiveRequest = {
        id: this.nextId++,
        method: ctx.method,
        path: ctx.path,
        range: ctx.get('Range') || undefined,
        client: ctx.ip,
        startedAt: Date.now(),
        length: undefined,
        fetcher: undefined,
      };
      this.active.set(request.id, request);
      let ttfbMs: number | undefined;
      ctx.res.once('close', () => {
        this.active.delete(request.id);
        const complete = ctx.res.writableFinished;
        const fetcher = ctx.state.fetcher;
        const bytes = fetcher ? fetcher.bytesDelivered : ctx.method === 'HEAD' || !complete ? 0 : (ctx.response.length ?? 0);
        const durationMs = performance.now() - started;
        this.record({
          id: request.id,
          method: request.method,
          path: request.path,
          range: request.range,
          client: request.client,
          status: ctx.status,
          bytes,
          length: request.length,
          startedAt: request.startedAt,
          finishedAt: Date.now(),
          durationMs,
          ttfbMs,
          outcome: complete ? 'complete' : 'aborted',
          servers: fetcher ? [...fetcher.serversUsed] : [],
          error: ctx.state.error,
        });
      });
      try {
        await next();
      } finally {
        // The status line is out now: a file response wrote its first chunk before the route returned
        // (file-route.ts), any other response is written by koa right after this.
        request.fetcher = ctx.state.fetcher;
        request.length = ctx.response.length;
        ttfbMs = performance.now() - started;
        this.observer?.firstByte(ttfbMs / 1_000);
      }
    };
  }

  private record(request: FinishedRequest): void {
    this.finishedBytes += request.bytes;
    this.totals.requests++;
    if (request.status >= 500) this.totals.serverErrors++;
    else if (request.status >= 400) this.totals.clientErrors++;
    if (request.outcome === 'aborted') this.totals.aborted++;
    this.ring[this.next] = request;
    this.next = (this.next + 1) % this.capacity;
    this.observer?.finished(request);
  }
}

function statusMatcher(text: string): ((status: number) => boolean) | undefined {
  const exact = /^[1-5]\d\d$/.exec(text);
  if (exact) return (status) => status === Number(text);
  const kind = /^([1-5])xx$/i.exec(text);
  if (kind) return (status) => Math.floor(status / 100) === Number(kind[1]);
  return undefined;
}

export function isStatusFilter(text: string): boolean {
  return statusMatcher(text) !== undefined;
}
