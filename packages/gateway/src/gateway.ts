import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, chunkDatagramBytes, createFrameCodec, defaultMaxDatagramSize, isDatagramSize, type FrameKey } from '@httpgw/protocol';
import { DEFAULT_MAX_DATAGRAM_RATE, formatHostPort, silentLogger, type Logger, DatagramEndpoint, type DatagramCounters } from '@httpgw/runtime';
import { AnswerQueue } from './transfer/answer-queue.js';
import { ChunkCache, type CacheStats } from './cache/chunk-cache.js';
import { DiskTier } from './cache/disk-tier.js';
import { BufferCollector } from './transfer/buffer-collector.js';
import { FileLookup } from './lookup/file-lookup.js';
import { PROBE_PATHS, createHttpApp } from './http/http-app.js';
import { withAccessLog } from './http/access-log.js';
import { HttpGuard, httpServerOptions, resolveHttpLimits, type HttpLimitsInit, type LimitCounters } from './http/limits.js';
import { DirectoryLister } from './lookup/directory-lister.js';
import { HolderIndex, type HolderIndexStats } from './lookup/holder-index.js';
import { createListingRoute } from './http/listing-route.js';
import { defaultReadAheadBudgetBytes, machineMemory, type ReadAheadBudgetStats } from './transfer/read-ahead-budget.js';
import { Registrar } from './pool/registrar.js';
import { RequestTracker, type RequestCounters } from './udp/request-tracker.js';
import { ServerPool, serverKey, type PoolCounters, type ServerPoolInit } from './pool/server-pool.js';
import { Transfers, type TransferCounters } from './transfer/transfers.js';
import { startAdminListener, type AdminInit, type AdminListener } from './ops/admin-server.js';
import { createGatewayMetrics, type GatewayMetrics } from './ops/metrics.js';
import { RequestActivity } from './ops/request-activity.js';

export interface GatewayInit {
  /** Address for HTTP and UDP (default 0.0.0.0). */
  address?: string;
  /** HTTP port (default 8080; 0 picks a free one). */
  httpPort?: number;
  /** UDP port (default: the HTTP port's number; 0 picks a free one). */
  udpPort?: number;
  /** Bytes per chunk asked of file servers. */
  chunkSize?: number;
  /**
   * Largest datagram the gateway receives: named in every list request, so servers cut their pages to
   * fit; a chunk's datagram must fit it too. Default: defaultMaxDatagramSize(chunkSize), 1,452 bytes
   * (MTU-safe) for chunks of up to 1,280 bytes, else 65,507.
   */
  maxDatagramSize?: number;
  /** Largest congestion window: requests in flight to one server at most. */
  window?: number;
  /** Bytes one transfer may fetch ahead of its client. */
  readAheadBytes?: number;
  /**
   * Bytes all transfers together may fetch ahead of their clients; each may still hold two chunks
   * beyond it. Default: 1/32 of the machine's (or container's) memory, 64 MiB..1 GiB (see
   * defaultReadAheadBudgetBytes).
   */
  readAheadBudgetBytes?: number;
  /** Run a full GC when garbage chunk buffers pile up, as after slow clients leave (default true; see BufferCollector). */
  collectBuffers?: boolean;
  stallTimeoutMs?: number;
  hedging?: boolean;
  /** How long a file's metadata is reused (0: ask the servers on every request). */
  metaCacheMs?: number;
  /**
   * Pool size from which lookups and listings use the holder index (default 32; see docs/POOLS.md):
   * below it every server is asked, as cheap as it is and seeing a new file at once.
   */
  indexFrom?: number;
  socketBufferBytes?: number;
  pool?: Omit<ServerPoolInit, 'logger' | 'window'>;
  key?: FrameKey;
  /** Connection, request and timeout limits of the HTTP side (see limits.ts for the defaults). */
  limits?: HttpLimitsInit;
  /** Datagrams per second accepted from one UDP source; the excess is dropped and counted. */
  maxDatagramRate?: number;
  /** Check chunk MD5s on worker threads (default true), off the thread that serves HTTP. */
  md5Worker?: boolean;
  /** MD5 worker threads at most (default: one per core beyond the main thread's, 1..4). */
  md5Workers?: number;
  /** The chunk cache (see cache/). Default: in memory, sized to the machine (defaultCacheBytes). */
  cache?: CacheInit;
  /** The admin listener (metrics, admin API, dashboard); off when not given. */
  admin?: AdminInit;
  /** One log entry per HTTP request (default true). */
  accessLog?: boolean;
  logger?: Logger;
}

export interface CacheInit {
  /** Bytes of chunks kept in memory; 0: none (concurrent downloads still share fetches). */
  memoryBytes?: number;
  /** A directory for the disk tier (off without one), and its bound in bytes. */
  dir?: string;
  dirBytes?: number;
  /** Serve a fully cached version when no server holding it answers (default true), if validated at most `staleMaxAgeMs` ago. */
  serveStale?: boolean;
  staleMaxAgeMs?: number;
}

/** Default memory for the cache: 1/16 of the machine's (or container's) memory, 64 MiB..2 GiB. */
export function defaultCacheBytes(): number {
  const mib = 1024 * 1024;
  return Math.min(2048 * mib, Math.max(64 * mib, Math.floor(machineMemory() / 16 / mib) * mib));
}

/**
 * What may change while the gateway runs (SIGHUP): each field given is applied without cutting
 * anything in progress. (The cache's size is fixed at start: its tiers are sized once.)
 */
export interface GatewayChanges {
  /** Replaces the HTTP limits (fields left out keep their defaults, as at start). */
  limits?: HttpLimitsInit;
  readAheadBudgetBytes?: number;
  stallTimeoutMs?: number;
  accessLog?: boolean;
}

export interface GatewayStats {
  pool: PoolCounters;
  /** The holder index: servers indexed, catalogues and entries held, fetches. */
  index: HolderIndexStats;
  requests: RequestCounters;
  transfers: TransferCounters & { active: number };
  /**
   * The read-ahead budget: bytes held now and at most, its limit, how often transfers queued for it;
   * `collections`: full GCs run to free garbage chunk buffers (see BufferCollector).
   */
  readAhead: ReadAheadBudgetStats & { collections: number };
  udp: DatagramCounters;
  /** Chunk MD5s checked on the main thread and on the worker thread. */
  md5: { hashedHere: number; hashedInWorker: number };
  limits: LimitCounters & { transfersInProgress: number; connectionsOpen: number };
  cache: CacheStats;
  servers: Array<{ key: string; name: string; state: string; draining: boolean; inFlight: number; window: number; srttMs: number | undefined; minRttMs: number | undefined; rtoMs: number; deliveryBytesPerS: number | undefined; answers: number; timeouts: number; retransmissions: number; badChunks: number; bytes: number }>;
}

export interface Gateway {
  readonly httpAddress: { address: string; port: number };
  readonly udpAddress: { address: string; port: number };
  readonly pool: ServerPool;
  /** Prometheus metrics (its own registry) and the cache's hook, setCacheSource. */
  readonly metrics: GatewayMetrics;
  /** HTTP requests in progress and the last finished ones. */
  readonly activity: RequestActivity;
  /** The admin listener, when `admin` was given. */
  readonly admin: AdminListener | undefined;
  stats(): GatewayStats;
  /** Resolves once `count` servers are in the pool. */
  waitForServers(count: number): Promise<void>;
  /** Applies run-time changes (SIGHUP); throws a RangeError, changing nothing, when one is invalid. */
  reconfigure(changes: GatewayChanges): void;
  /** Serving and not draining, with a server registered (GET /readyz). */
  readiness(): { ready: boolean; reason?: string };
  /**
   * Graceful shutdown: /readyz turns 503, new requests get 503, transfers in flight may finish for
   * `timeoutMs`; then what is left is cut and the gateway stops. Resolves with the count cut.
   */
  drain(timeoutMs: number): Promise<{ finished: boolean; cut: number }>;
  stop(): Promise<void>;
}

export { DEFAULT_CHUNK_SIZE };

/** Starts a gateway: the UDP side file servers register with, and the HTTP side clients download from. */
export async function createGateway(init: GatewayInit = {}): Promise<Gateway> {
  const logger = init.logger ?? silentLogger;
  const address = init.address ?? '0.0.0.0';
  const chunkSize = init.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new RangeError(`chunk size must be an integer in ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`);
  }
  const maxDatagramSize = init.maxDatagramSize ?? defaultMaxDatagramSize(chunkSize);
  if (!isDatagramSize(maxDatagramSize) || chunkDatagramBytes(chunkSize) > maxDatagramSize) {
    throw new RangeError(`max datagram size must be an integer of at least the chunk size plus ${chunkDatagramBytes(0)} bytes (${chunkDatagramBytes(chunkSize)}), and at most 65507`);
  }
  const codec = createFrameCodec({ key: init.key });
  const pool = new ServerPool({ ...init.pool, window: { max: init.window ?? 64 }, logger: logger.child('pool') });

  const limits = resolveHttpLimits(init.limits);
  const http: Server = createServer(httpServerOptions(limits));
  const guard = new HttpGuard(limits, logger.child('limits'), PROBE_PATHS);
  guard.attach(http);
  await listen(http, init.httpPort ?? 8080, address);
  const httpPort = (http.address() as AddressInfo).port;

  let tracker: RequestTracker | undefined;
  let registrar: Registrar | undefined;
  const answers = new AnswerQueue({
    worker: init.md5Worker ?? true,
    ...(init.md5Workers !== undefined ? { workers: init.md5Workers } : {}),
    wanted: (answer, from) => tracker?.expects(answer.requestId, from) ?? false,
    deliver: (answer, from, digestOk) => tracker?.onAnswer(answer, from, digestOk),
    logger,
  });
  const udp = await DatagramEndpoint.open({
    address,
    port: init.udpPort ?? httpPort,
    codec,
    socketBufferBytes: init.socketBufferBytes ?? 4 * 1024 * 1024,
    maxDatagramRate: init.maxDatagramRate ?? DEFAULT_MAX_DATAGRAM_RATE,
    logger,
    onPacket: (packet, from, port, bytes) => {
      if (registrar?.handle(packet, from, port, bytes)) return;
      const key = serverKey(from, port);
      const server = pool.get(key);
      if (server) pool.touch(server);
      if ('requestId' in packet && (packet.type === 'meta' || packet.type === 'chunk' || packet.type === 'list' || packet.type === 'catalog' || packet.type === 'error')) answers.push(packet, key);
    },
  }).catch(async (error: unknown) => {
    await new Promise((resolve) => http.close(resolve));
    throw error;
  });
  tracker = new RequestTracker({ pool, transmit: (server, packet) => udp.send(packet, server.address, server.port) });
  const indexFrom = init.indexFrom ?? 32;
  const index = new HolderIndex({ pool, tracker, logger: logger.child('index'), maxDatagramSize, activeFrom: indexFrom });
  registrar = new Registrar({
    pool,
    logger: logger.child('registrar'),
    reply: (packet, to, port) => udp.send(packet, to, port),
    sizeOf: (packet) => codec.encode(packet).length,
    onCatalog: (server, generation) => index.noteGeneration(server, generation),
  });
  const requests = tracker;
  pool.removed.add((server) => requests.dropServer(server));

  const cacheInit = init.cache ?? {};
  const disk = cacheInit.dir ? await DiskTier.open({ dir: cacheInit.dir, maxBytes: cacheInit.dirBytes ?? 10 * 1024 ** 3, logger: logger.child('cache') }) : undefined;
  const cache = new ChunkCache({
    chunkSize,
    memoryBytes: cacheInit.memoryBytes ?? defaultCacheBytes(),
    ...(disk ? { disk } : {}),
    serveStale: cacheInit.serveStale ?? true,
    staleMaxAgeMs: cacheInit.staleMaxAgeMs ?? 24 * 3_600_000,
    logger: logger.child('cache'),
  });
  const lookup = new FileLookup({ pool, tracker, logger, chunkSize, index, indexFrom, cacheMs: init.metaCacheMs ?? 1_000, onVersion: (file) => cache.validated(file, file.checkedAt) });
  const transfers = new Transfers(
    {
      chunkSize,
      readAheadBytes: init.readAheadBytes ?? 8 * 1024 * 1024,
      readAheadBudgetBytes: init.readAheadBudgetBytes ?? defaultReadAheadBudgetBytes(),
      stallTimeoutMs: init.stallTimeoutMs ?? 10_000,
      hedging: init.hedging ?? true,
      cache,
    },
    pool,
    tracker,
    logger.child('transfer'),
  );
  const collector = init.collectBuffers === false ? undefined : new BufferCollector({ budget: transfers.budget, heldBytes: () => cache.memory?.bytes ?? 0 });
  const lister = new DirectoryLister({ pool, tracker, index, indexFrom, logger: logger.child('listing'), cacheMs: init.metaCacheMs ?? 1_000, maxDatagramSize });
  const staleVersion = async (path: string, answered: readonly string[]) => {
    const record = await cache.staleVersion(path, answered);
    if (!record) return undefined;
    cache.counters.stale++;
    logger.warn('no server holding the file answered: serving it from the cache', { path, version: record.version, ageS: Math.round((Date.now() - record.validatedAt) / 1000) });
    return { path, size: record.size, mtimeMs: record.mtimeMs, version: record.version, servers: [], checkedAt: record.validatedAt };
  };
  const activity = new RequestActivity();
  let draining = false;
  const readiness = () => {
    if (draining) return { ready: false, reason: 'draining' };
    if (pool.size === 0) return { ready: false, reason: 'no file server registered' };
    return { ready: true };
  };
  const httpLogger = logger.child('http');
  const app = createHttpApp({
    lookup,
    transfers,
    staleVersion,
    logger: httpLogger,
    serveListing: createListingRoute(lister),
    maxUrlBytes: () => guard.currentLimits.maxUrlBytes,
    readiness,
    observe: activity.middleware(),
  });
  const accessLog = { enabled: init.accessLog ?? true };
  http.on('request', withAccessLog(guard.admit(app.callback()), logger.child('access'), accessLog));

  const httpAddress = { address, port: httpPort };
  let stopping: Promise<void> | undefined;
  const udpAddress = udp.address;
  logger.info(`listening http=${formatHostPort(address, httpPort)} udp=${formatHostPort(udpAddress.address, udpAddress.port)}`, {
    chunkSize,
    maxDatagramSize,
    readAheadBudget: transfers.budget.limitBytes,
    cache: cache.memory?.maxBytes ?? 0,
    cacheDir: cacheInit.dir,
    auth: codec.authenticated ? 'hmac-sha256' : 'off',
  });
  if (!codec.authenticated) logger.warn('no secret configured: anyone who can reach the UDP port can register a file server (see --secret-file)');

  const stats = (): GatewayStats => ({
      pool: { ...pool.counters },
      index: index.stats(),
      requests: { ...requests.counters },
      transfers: { ...transfers.counters, active: transfers.active },
      readAhead: { ...transfers.budget.stats, collections: collector?.collections ?? 0 },
      udp: { ...udp.counters },
      md5: { ...answers.counters },
      cache: cache.stats(),
      limits: { ...guard.counters, transfersInProgress: guard.transfersInProgress, connectionsOpen: guard.connectionsOpen },
      servers: pool.list().map((server) => ({
        key: server.key,
        name: server.name,
        state: server.state,
        draining: server.draining,
        inFlight: server.inFlight,
        window: server.window.size,
        srttMs: server.rtt.smoothedMs,
        minRttMs: server.rtt.minMs,
        rtoMs: server.rtt.rtoMs,
        deliveryBytesPerS: server.delivery.bytesPerMs === undefined ? undefined : Math.round(server.delivery.bytesPerMs * 1000),
        ...server.stats,
      })),
  });
  const metrics = createGatewayMetrics({ stats, pool, activity, maxServers: init.pool?.maxServers ?? 1_024, processMetrics: init.admin !== undefined });
  if (cache.stores) metrics.setCacheSource(() => cache.tierStats());
  let admin: AdminListener | undefined;
  try {
    admin = init.admin ? await startAdminListener(init.admin, { pool, activity, metrics, stats, logger: logger.child('admin') }) : undefined;
  } catch (error) {
    transfers.stop();
    collector?.stop();
    await new Promise((resolve) => http.close(resolve));
    requests.close();
    answers.close();
    pool.close();
    await udp.close();
    throw error;
  }

  const stop = (): Promise<void> => {
    // Once: a second call (a signal during shutdown, a test's cleanup) waits for the first.
    stopping ??= (async () => {
      transfers.stop();
      collector?.stop();
      await admin?.close();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      requests.close();
      answers.close();
      index.close();
      // Goodbye: every registered server hears that this gateway no longer knows it (the protocol's
      // `heartbeat-ack known=false`), so it goes back to registering at once instead of waiting out
      // missed heartbeats; the datagrams go out before the socket closes.
      for (const server of pool.list()) udp.send({ type: 'heartbeat-ack', known: false }, server.address, server.port);
      await new Promise<void>((resolve) => setImmediate(resolve));
      pool.close();
      await udp.close();
      // Writes already queued finish: what the cache has on disk is whole.
      await disk?.close();
      logger.info('stopped');
    })();
    return stopping;
  };

  return {
    httpAddress,
    udpAddress,
    pool,
    metrics,
    activity,
    admin,
    stats,
    waitForServers: (count) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (pool.size < count) return;
          pool.changed.delete(check);
          resolve();
        };
        pool.changed.add(check);
        check();
      }),
    readiness,
    reconfigure(changes) {
      // Check everything first, so a bad change leaves the gateway as it was.
      const nextLimits = changes.limits ? resolveHttpLimits(changes.limits) : undefined;
      if (changes.readAheadBudgetBytes !== undefined && !(Number.isSafeInteger(changes.readAheadBudgetBytes) && changes.readAheadBudgetBytes >= 0)) throw new RangeError('readAheadBudgetBytes must be an integer of 0 or more');
      if (changes.stallTimeoutMs !== undefined && !(changes.stallTimeoutMs > 0)) throw new RangeError('stallTimeoutMs must be positive');
      if (nextLimits) guard.update(nextLimits);
      if (changes.readAheadBudgetBytes !== undefined) transfers.budget.resize(changes.readAheadBudgetBytes);
      if (changes.stallTimeoutMs !== undefined) transfers.setStallTimeout(changes.stallTimeoutMs);
      if (changes.accessLog !== undefined) accessLog.enabled = changes.accessLog;
    },
    async drain(timeoutMs) {
      draining = true;
      guard.drain();
      // Idle keep-alive connections stay: a request on one gets 503 and `Connection: close`
      // (closing "idle" connections would also cut clients that just connected, before their request).
      const inFlight = () => guard.transfersInProgress;
      logger.info('draining', { transfers: inFlight(), timeoutMs });
      const deadline = performance.now() + timeoutMs;
      while (inFlight() > 0 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - performance.now()))));
      }
      const cut = inFlight();
      if (cut > 0) logger.warn('drain timeout: cutting the transfers left', { transfers: cut, timeoutMs });
      else logger.info('drained: no transfer in flight');
      await stop();
      return { finished: cut === 0, cut };
    },
    stop,
  };
}

function listen(server: Server, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
