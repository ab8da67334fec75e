import type { GatewayStats } from '../gateway.js';
import type { PoolServer, ServerPool } from '../pool/server-pool.js';
import type { CacheTierStats } from './metrics.js';
import type { RequestActivity } from './request-activity.js';

export interface DashboardFeedSources {
  stats(): GatewayStats;
  pool: ServerPool;
  activity: RequestActivity;
  cacheStats(): readonly CacheTierStats[] | undefined;
}

/** One second of history: rates over the second before `t`. */
export interface Sample {
  /** Epoch seconds. */
  t: number;
  bytesPerSecond: number;
  requestsPerSecond: number;
  errorsPerSecond: number;
}

/** Samples kept: five minutes at one a second. */
const HISTORY = 300;

/**
 * What the dashboard polls: throughput and request rates over the last minutes (sampled here once a
 * second, so a page opened later still sees the history), the transfers and servers now, the cache
 * hit ratio, and the latest errors.
 */
export class DashboardFeed {
  private readonly samples: Sample[] = [];
  private last: { at: number; bytes: number; requests: number; errors: number };
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly sources: DashboardFeedSources) {
    this.last = this.totals();
    this.timer = setInterval(() => this.sample(), 1_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  snapshot() {
    const { transfers, pool } = this.sources.stats();
    const cache = this.sources.cacheStats();
    const hits = cache?.reduce((sum, tier) => sum + tier.hits, 0) ?? 0;
    const misses = cache?.reduce((sum, tier) => sum + tier.misses, 0) ?? 0;
    const current = this.totals();
    return {
      now: Date.now(),
      history: this.samples,
      totals: { bytesSent: current.bytes, ...this.sources.activity.totals, transfersFailed: transfers.failed },
      transfers: this.sources.activity.list().map(transferView),
      servers: this.sources.pool.list().map(serverView),
      pool: pool,
      cache: cache === undefined ? null : { hitRatio: hits + misses > 0 ? hits / (hits + misses) : null, tiers: cache },
      errors: this.sources.activity.recent({ limit: 200 }).filter((request) => request.status >= 400 || request.outcome === 'aborted').slice(0, 10),
    };
  }

  private totals() {
    const { totals } = this.sources.activity;
    return { at: performance.now(), bytes: this.sources.activity.bytesSent(), requests: totals.requests, errors: totals.serverErrors + totals.aborted };
  }

  private sample(): void {
    const now = this.totals();
    const seconds = Math.max(0.001, (now.at - this.last.at) / 1_000);
    this.samples.push({
      t: Math.round(Date.now() / 1_000),
      bytesPerSecond: Math.max(0, now.bytes - this.last.bytes) / seconds,
      requestsPerSecond: (now.requests - this.last.requests) / seconds,
      errorsPerSecond: (now.errors - this.last.errors) / seconds,
    });
    if (this.samples.length > HISTORY) this.samples.shift();
    this.last = now;
  }
}

/** A request in progress as the admin API shows it. */
export function transferView(request: ReturnType<RequestActivity['list']>[number]) {
  const bytes = request.fetcher?.bytesDelivered ?? 0;
  return {
    id: request.id,
    method: request.method,
    path: request.path,
    range: request.range ?? null,
    client: request.client,
    startedAt: new Date(request.startedAt).toISOString(),
    bytesSent: bytes,
    length: request.length ?? null,
    progress: request.length ? Math.min(1, bytes / request.length) : null,
    servers: request.fetcher ? [...request.fetcher.serversUsed] : [],
  };
}

/** A registered server as the admin API shows it. */
export function serverView(server: PoolServer) {
  const lastSeenAgoMs = Math.max(0, performance.now() - server.lastSeen);
  return {
    id: server.key,
    name: server.name,
    address: server.address,
    port: server.port,
    health: server.draining ? 'draining' : server.state,
    draining: server.draining,
    srttMs: server.rtt.smoothedMs ?? null,
    minRttMs: server.rtt.minMs ?? null,
    rtoMs: server.rtt.rtoMs,
    deliveryBytesPerS: server.delivery.bytesPerMs === undefined ? null : Math.round(server.delivery.bytesPerMs * 1000),
    window: server.window.size,
    inFlight: server.inFlight,
    consecutiveTimeouts: server.consecutiveTimeouts,
    ...server.stats,
    // The protocol has no inventory: the gateway learns who holds a file only when it asks for it.
    filesHeld: null,
    filesLostForBadData: [...server.distrusted.keys()],
    lastSeen: new Date(Date.now() - lastSeenAgoMs).toISOString(),
    lastSeenAgoMs: Math.round(lastSeenAgoMs),
  };
}
