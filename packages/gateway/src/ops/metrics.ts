import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GatewayStats } from '../gateway.js';
import type { ServerPool, RemovalReason } from '../pool/server-pool.js';
import type { FinishedRequest, RequestActivity } from './request-activity.js';

/** One cache tier's figures, as the gateway cache reports them (see GatewayMetrics.setCacheSource). */
export interface CacheTierStats {
  /** e.g. `memory`, `disk`: a small fixed set, used as a label. */
  tier: string;
  hits: number;
  misses: number;
  /** Bytes served from this tier. */
  bytesServed: number;
  /** Bytes it holds now. */
  bytesStored: number;
}

export interface GatewayMetricsSources {
  stats(): GatewayStats;
  pool: ServerPool;
  activity: RequestActivity;
  /** Servers the pool holds at most: bounds the per-server label set (and the eviction memory). */
  maxServers: number;
  /**
   * Export prom-client's process metrics (CPU, memory, event loop lag, GC) too. They install a GC
   * observer and an event-loop monitor that live as long as the process: only for a gateway whose
   * metrics someone reads (one with an admin listener), not for every gateway a test starts.
   */
  processMetrics: boolean;
}

export interface GatewayMetrics {
  /** This gateway's registry (never prom-client's global one: tests run several gateways in one process). */
  readonly registry: Registry;
  /**
   * The cache's hook: `read` is called at each scrape (and by the dashboard) and its totals exported as
   * `httpgw_cache_hits_total{tier}`, `httpgw_cache_misses_total{tier}`, `httpgw_cache_served_bytes_total{tier}`
   * and `httpgw_cache_stored_bytes{tier}`. Until it is called, those series are absent and the
   * dashboard shows "no cache".
   */
  setCacheSource(read: () => readonly CacheTierStats[]): void;
  /** The cache's figures now, or undefined while no cache reports. */
  cacheStats(): readonly CacheTierStats[] | undefined;
}

/** Latency buckets in seconds: 1 ms to 60 s, a download of a large file takes long. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const TTFB_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Methods named in labels: the two served; anything else a client sends (answered 405) is `other`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD']);

/**
 * The gateway's Prometheus metrics. Nearly all are read at scrape time from the counters the parts
 * already keep (collect callbacks), so the transfer path pays nothing for them; requests are counted
 * and timed once each, when they end.
 */
export function createGatewayMetrics(sources: GatewayMetricsSources): GatewayMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (sources.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'httpgw_' });
  let cacheSource: (() => readonly CacheTierStats[]) | undefined;
  // Stats are read once per scrape, by whichever collect callback runs first.
  let snapshot: { at: number; stats: GatewayStats } | undefined;
  const stats = () => {
    const now = performance.now();
    if (!snapshot || now - snapshot.at > 50) snapshot = { at: now, stats: sources.stats() };
    return snapshot.stats;
  };

  // Requests by method and status: plain integers per request, turned into series at scrape time.
  const answered = new Map<string, number>();
  new Counter({
    name: 'httpgw_http_requests_total',
    help: 'HTTP requests answered, by method and status',
    labelNames: ['method', 'status'],
    registers,
    collect() {
      this.reset();
      for (const [key, count] of answered) {
        const space = key.indexOf(' ');
        this.inc({ method: key.slice(0, space), status: key.slice(space + 1) }, count);
      }
    },
  });
  let abortedResponses = 0;
  counterFrom(registers, 'httpgw_http_responses_aborted_total', 'HTTP responses cut short (the client left or the transfer failed mid-body)', [], () => [[{}, abortedResponses]]);
  const duration = new Histogram({ name: 'httpgw_http_request_duration_seconds', help: 'Time from request to the last body byte written', labelNames: ['method'], buckets: DURATION_BUCKETS, registers });
  const ttfb = new Histogram({ name: 'httpgw_http_time_to_first_byte_seconds', help: 'Time from request to the status line (a file response waits for its first chunk)', buckets: TTFB_BUCKETS, registers });
  const durationOf = { GET: duration.labels('GET'), HEAD: duration.labels('HEAD'), other: duration.labels('other') };
  sources.activity.observe({
    firstByte: (seconds) => ttfb.observe(seconds),
    finished: (request: FinishedRequest) => {
      const method = KNOWN_METHODS.has(request.method) ? request.method : 'other';
      const key = `${method} ${request.status}`;
      answered.set(key, (answered.get(key) ?? 0) + 1);
      durationOf[method as keyof typeof durationOf].observe(request.durationMs / 1_000);
      if (request.outcome === 'aborted') abortedResponses++;
    },
  });

  let bytesReported = 0;
  new Counter({
    name: 'httpgw_http_sent_bytes_total',
    help: 'Response body bytes sent to HTTP clients (responses in progress included)',
    registers,
    collect() {
      // Monotonic even if a response in progress is counted a little ahead of its close.
      const now = sources.activity.bytesSent();
      if (now > bytesReported) this.inc(now - bytesReported);
      bytesReported = Math.max(bytesReported, now);
    },
  });
  new Gauge({ name: 'httpgw_http_requests_in_progress', help: 'HTTP requests being answered now', registers, collect() { this.set(sources.activity.inProgress); } });
  new Gauge({ name: 'httpgw_transfers_active', help: 'Chunk transfers in progress (a multipart response runs one per part)', registers, collect() { this.set(stats().transfers.active); } });

  counterFrom(registers, 'httpgw_transfers_total', 'Chunk transfers ended, by outcome', ['outcome'], () => {
    const { transfers } = stats();
    return [[{ outcome: 'completed' }, transfers.completed], [{ outcome: 'failed' }, transfers.failed]];
  });
  counterFrom(registers, 'httpgw_chunk_retransmissions_total', 'Chunk requests sent again after a loss or a bad chunk', [], () => [[{}, stats().transfers.retransmissions]]);
  counterFrom(registers, 'httpgw_chunk_hedges_total', 'Late chunks asked of a second server', [], () => [[{}, stats().transfers.hedges]]);
  counterFrom(registers, 'httpgw_chunk_bad_total', 'Chunks that failed their MD5, length or number check', [], () => [[{}, stats().transfers.badChunks]]);
  counterFrom(registers, 'httpgw_chunk_digests_checked_total', 'Chunk MD5s checked, by thread', ['thread'], () => {
    const { md5 } = stats();
    return [[{ thread: 'main' }, md5.hashedHere], [{ thread: 'worker' }, md5.hashedInWorker]];
  });

  new Gauge({
    name: 'httpgw_read_ahead_bytes',
    help: 'Bytes fetched ahead of clients, gateway-wide: now (reserved), peak, and the limit',
    labelNames: ['kind'],
    registers,
    collect() {
      const { readAhead } = stats();
      this.set({ kind: 'reserved' }, readAhead.reservedBytes);
      this.set({ kind: 'peak' }, readAhead.peakBytes);
      this.set({ kind: 'limit' }, readAhead.limitBytes);
    },
  });

  // UDP: what the DatagramEndpoint already counts.
  counterFrom(registers, 'httpgw_udp_datagrams_total', 'UDP datagrams received and sent', ['direction'], () => {
    const { udp } = stats();
    return [[{ direction: 'in' }, udp.datagramsIn], [{ direction: 'out' }, udp.datagramsOut]];
  });
  counterFrom(registers, 'httpgw_udp_bytes_total', 'UDP bytes received and sent', ['direction'], () => {
    const { udp } = stats();
    return [[{ direction: 'in' }, udp.bytesIn], [{ direction: 'out' }, udp.bytesOut]];
  });
  counterFrom(registers, 'httpgw_udp_datagrams_dropped_total', 'UDP datagrams dropped, by reason', ['reason'], () => {
    const { udp } = stats();
    return [[{ reason: 'stranger' }, udp.fromStrangers], [{ reason: 'rate_limited' }, udp.rateLimited], [{ reason: 'refused' }, udp.refused], [{ reason: 'send_error' }, udp.sendErrors]];
  });

  // HTTP limits (limits.ts).
  counterFrom(registers, 'httpgw_http_refused_total', 'Requests and connections refused by a limit, by reason', ['reason'], () => {
    const { limits } = stats();
    return [
      [{ reason: 'max_transfers' }, limits.transfersRefused],
      [{ reason: 'max_transfers_per_client' }, limits.transfersRefusedPerClient],
      [{ reason: 'max_connections' }, limits.connectionsRefused],
      [{ reason: 'max_connections_per_client' }, limits.connectionsRefusedPerClient],
      [{ reason: 'request_timeout' }, limits.requestTimeouts],
      [{ reason: 'headers_too_large' }, limits.headersTooLarge],
    ];
  });
  new Gauge({ name: 'httpgw_http_connections_open', help: 'Open HTTP connections', registers, collect() { this.set(stats().limits.connectionsOpen); } });

  // The pool.
  new Gauge({
    name: 'httpgw_servers',
    help: 'Registered file servers, by state',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = { active: 0, cooling: 0, draining: 0 };
      for (const server of sources.pool.list()) counts[server.draining ? 'draining' : server.state]++;
      for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
    },
  });
  counterFrom(registers, 'httpgw_server_registrations_total', 'File server registrations admitted (first time, or again after leaving)', ['kind'], () => {
    const { pool } = stats();
    return [[{ kind: 'first' }, pool.admitted], [{ kind: 'again' }, pool.readmitted]];
  });
  counterFrom(registers, 'httpgw_server_removals_total', 'File servers that left the pool, by reason', ['reason'], () => {
    const { pool } = stats();
    return [[{ reason: 'left' }, pool.left], [{ reason: 'evicted' }, pool.evicted], [{ reason: 'dropped' }, pool.dropped]];
  });
  counterFrom(registers, 'httpgw_server_refusals_total', 'File server registrations refused, by reason (pool-full: --max-servers reached)', ['reason'], () => [[{ reason: 'pool-full' }, stats().pool.refusedFull]]);
  counterFrom(registers, 'httpgw_server_cool_downs_total', 'Times a server was rested after timeouts', [], () => [[{}, stats().pool.coolDowns]]);

  // Per server: label `server` is the address:port it registered from, `name` the name it gave.
  // Bounded by --max-servers; a server's series go when it leaves (evictions stay, in a capped map).
  const perServer = (name: string, help: string, read: (server: GatewayStats['servers'][number]) => number | undefined, type: 'gauge' | 'counter') => {
    const Metric = type === 'gauge' ? Gauge : Counter;
    new Metric({
      name,
      help,
      labelNames: ['server', 'name'],
      registers,
      collect(this: Gauge | Counter) {
        this.reset();
        for (const server of stats().servers) {
          const value = read(server);
          if (value === undefined) continue;
          if (this instanceof Gauge) this.set({ server: server.key, name: server.name }, value);
          else this.inc({ server: server.key, name: server.name }, value);
        }
      },
    });
  };
  perServer('httpgw_server_srtt_seconds', 'Smoothed round-trip time to the server (absent until its first answer)', (s) => (s.srttMs === undefined ? undefined : s.srttMs / 1_000), 'gauge');
  perServer('httpgw_server_min_rtt_seconds', 'Least round-trip time to the server lately: the path without queues', (s) => (s.minRttMs === undefined ? undefined : s.minRttMs / 1_000), 'gauge');
  perServer('httpgw_server_delivery_rate_bytes_per_second', 'Delivery rate of chunk data the scheduler expects from the server (absent until measured)', (s) => s.deliveryBytesPerS, 'gauge');
  perServer('httpgw_server_rto_seconds', 'Retransmission timeout for the server', (s) => s.rtoMs / 1_000, 'gauge');
  perServer('httpgw_server_congestion_window', 'Congestion window: chunk requests the server may have in flight', (s) => s.window, 'gauge');
  perServer('httpgw_server_requests_in_flight', 'Chunk requests in flight to the server', (s) => s.inFlight, 'gauge');
  perServer('httpgw_server_answers_total', 'Answers received from the server', (s) => s.answers, 'counter');
  perServer('httpgw_server_timeouts_total', 'Requests to the server that timed out', (s) => s.timeouts, 'counter');
  perServer('httpgw_server_retransmissions_total', 'Chunk requests re-sent to the server', (s) => s.retransmissions, 'counter');
  perServer('httpgw_server_bad_chunks_total', 'Chunks from the server that failed their checks', (s) => s.badChunks, 'counter');
  perServer('httpgw_server_received_bytes_total', 'Chunk bytes received from the server that checked out', (s) => s.bytes, 'counter');

  const evictions = new Map<string, number>();
  sources.pool.removed.add((server, reason: RemovalReason) => {
    if (reason === 'left') return;
    evictions.delete(server.key);
    evictions.set(server.key, (evictions.get(server.key) ?? 0) + 1);
    // Oldest first out: the map never holds more servers than the pool may.
    if (evictions.size > sources.maxServers) evictions.delete(evictions.keys().next().value!);
  });
  counterFrom(registers, 'httpgw_server_evictions_total', 'Times the server was removed without saying goodbye (missed heartbeats, bad data, the admin API)', ['server'], () =>
    [...evictions].map(([server, count]) => [{ server }, count]),
  );

  // The cache, once it reports.
  const cacheMetric = (name: string, help: string, pick: (tier: CacheTierStats) => number, type: 'gauge' | 'counter') => {
    const Metric = type === 'gauge' ? Gauge : Counter;
    new Metric({
      name,
      help,
      labelNames: ['tier'],
      registers,
      collect(this: Gauge | Counter) {
        this.reset();
        for (const tier of cacheSource?.() ?? []) {
          if (this instanceof Gauge) this.set({ tier: tier.tier }, pick(tier));
          else this.inc({ tier: tier.tier }, pick(tier));
        }
      },
    });
  };
  cacheMetric('httpgw_cache_hits_total', 'Cache lookups answered from the tier', (t) => t.hits, 'counter');
  cacheMetric('httpgw_cache_misses_total', 'Cache lookups the tier could not answer', (t) => t.misses, 'counter');
  cacheMetric('httpgw_cache_served_bytes_total', 'Bytes served from the tier', (t) => t.bytesServed, 'counter');
  cacheMetric('httpgw_cache_stored_bytes', 'Bytes the tier holds', (t) => t.bytesStored, 'gauge');

  return {
    registry,
    setCacheSource: (read) => {
      cacheSource = read;
    },
    cacheStats: () => cacheSource?.(),
  };
}

type LabelValues = Record<string, string>;

/** A counter whose value is read at scrape time from a total another part keeps. */
function counterFrom(registers: Registry[], name: string, help: string, labelNames: string[], read: () => Array<[LabelValues, number]>): void {
  new Counter({
    name,
    help,
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}
