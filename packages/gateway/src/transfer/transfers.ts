import type { Logger } from '@httpgw/runtime';
import { CachedProgress, cachedChunks } from '../cache/cached-read.js';
import type { ChunkCache } from '../cache/chunk-cache.js';
import { ChunkFetcher } from './chunk-fetcher.js';
import type { TransferOutcome } from './fetcher-init.js';
import { ChunkRange } from './chunk-range.js';
import { GatewayError } from '../errors.js';
import type { FileVersion } from '../lookup/file-lookup.js';
import { integerOption, positiveOption } from './options.js';
import { ReadAheadBudget } from './read-ahead-budget.js';
import { Ticker } from './ticker.js';
import type { RequestTracker } from '../udp/request-tracker.js';
import type { ServerPool } from '../pool/server-pool.js';

export interface TransferSettings {
  chunkSize: number;
  /** Bytes a transfer may fetch ahead of what its client has taken. */
  readAheadBytes: number;
  /** Bytes all transfers together may fetch ahead of their clients (see ReadAheadBudget). */
  readAheadBudgetBytes: number;
  stallTimeoutMs: number;
  hedging: boolean;
  /** The gateway's chunk cache: hits are served from it, fetches shared through it. */
  cache?: ChunkCache;
}

/**
 * How the cache took part in a response (RFC 9211 Cache-Status): `hit`, every chunk from it;
 * `partial`, some; `miss`, none; `collapsed`, some came from another transfer's fetch in flight.
 */
export type CacheOutcome = 'hit' | 'partial' | 'miss' | 'collapsed';

/** What a response shows of its transfer: bytes, servers, failure, and the cache's part. */
export interface TransferView {
  bytesDelivered: number;
  readonly serversUsed: Set<string>;
  readonly failed?: AbortSignal | undefined;
  /** Chunk requests sent again (the access log's figure). */
  readonly retransmissions?: number;
  cacheOutcome?: CacheOutcome;
}

export interface TransferCounters {
  started: number;
  completed: number;
  failed: number;
  retransmissions: number;
  hedges: number;
  badChunks: number;
}

/**
 * Starts chunk fetchers with the gateway's settings and adds their figures to the gateway's
 * counters. What the fetchers share lives here: the read-ahead budget, the ticker, where the next
 * one starts its round-robin, and the gateway's stop.
 */
export class Transfers {
  readonly counters: TransferCounters = { started: 0, completed: 0, failed: 0, retransmissions: 0, hedges: 0, badChunks: 0 };
  /** Transfers in progress, each with the controller that ends it. */
  private readonly running = new Set<ChunkFetcher>();
  /** The one read-ahead budget every transfer of the gateway takes from. */
  readonly budget: ReadAheadBudget;
  /** The one interval that runs every transfer's tick. */
  private readonly ticker = new Ticker();
  /** Aborted when the gateway stops. */
  /** stop() was called: transfers asked for from now on end at once. */
  private stopped = false;
  /** Where the next transfer starts its round-robin: each one further, so one-chunk files spread over the servers too. */
  private nextStart = 0;
  private readonly readAheadChunks: number;

  get active(): number {
    return this.running.size;
  }

  constructor(
    private settings: TransferSettings,
    private readonly pool: ServerPool,
    private readonly tracker: RequestTracker,
    private readonly logger: Logger,
  ) {
    const chunkSize = integerOption('chunkSize', settings.chunkSize, 1);
    positiveOption('stallTimeoutMs', settings.stallTimeoutMs);
    this.readAheadChunks = Math.max(2, Math.ceil(positiveOption('readAheadBytes', settings.readAheadBytes) / chunkSize));
    this.budget = new ReadAheadBudget({ limitBytes: settings.readAheadBudgetBytes, chunkBytes: chunkSize });
  }

  /** Applies a new stall timeout to transfers started from now on (SIGHUP). */
  setStallTimeout(ms: number): void {
    this.settings = { ...this.settings, stallTimeoutMs: positiveOption('stallTimeoutMs', ms) };
  }

  /** Ends every transfer in progress, and any asked for later at once (the gateway is stopping). */
  stop(): void {
    this.stopped = true;
    for (const fetcher of this.running) fetcher.cancel();
  }

  /**
   * Bytes `firstByte..lastByte` (inclusive) of one file version, ended early when `signal` aborts:
   * from the cache when it holds every chunk of them, otherwise fetched (through the cache).
   */
  fetch(file: FileVersion, firstByte: number, lastByte: number, signal?: AbortSignal, requestId?: string): { fetcher: TransferView; chunks: AsyncGenerator<Buffer, void, undefined> } {
    const cache = this.settings.cache;
    if (!cache?.stores) return this.fetchFromServers(file, firstByte, lastByte, signal, requestId);
    const range = new ChunkRange(firstByte, lastByte, this.settings.chunkSize, file.size);
    const outcome = outcomeOf(cache, file, range);
    if (outcome !== 'hit') {
      const fetched = this.fetchFromServers(file, firstByte, lastByte, signal, requestId);
      cache.counters.misses++;
      fetched.fetcher.cacheOutcome = outcome;
      return fetched;
    }
    cache.counters.hits++;
    const progress = new CachedProgress();
    const fetchRest = (from: number) => this.fetchFromServers(file, from, lastByte, signal, requestId);
    return { fetcher: progress, chunks: cachedChunks(cache, file, range, progress, fetchRest, signal) };
  }

  /** How the cache would take part in sending bytes `firstByte..lastByte` now; undefined without a cache. */
  cacheOutcome(file: FileVersion, firstByte: number, lastByte: number): CacheOutcome | undefined {
    const cache = this.settings.cache;
    if (!cache?.stores) return undefined;
    return outcomeOf(cache, file, new ChunkRange(firstByte, lastByte, this.settings.chunkSize, file.size));
  }

  /** A fetcher for bytes `firstByte..lastByte` (inclusive) of one file version, ended early when `signal` aborts. */
  private fetchFromServers(file: FileVersion, firstByte: number, lastByte: number, signal?: AbortSignal, requestId?: string): { fetcher: ChunkFetcher; chunks: AsyncGenerator<Buffer, void, undefined> } {
    const { chunkSize, stallTimeoutMs, hedging } = this.settings;
    // Ended by the client's signal or by stop(), through fetcher.cancel(): no signal of its own. Not
    // AbortSignal.any([signal, a stop signal]): on Node 20 every signal it makes stays referenced
    // from the gateway's long-lived stop signal (nodejs/node#55351: about 240 bytes per transfer,
    // never freed), and it costs ~35 µs a call; an AbortController per transfer ~10 µs.
    // Every line this transfer logs names its request.
    const logger = requestId === undefined ? this.logger : this.logger.with({ reqId: requestId });
    const fetcher = new ChunkFetcher({
      file,
      firstByte,
      lastByte,
      chunkSize,
      readAheadChunks: this.readAheadChunks,
      stallTimeoutMs,
      hedging,
      ticker: this.ticker,
      roundRobinStart: this.nextStart++,
      budget: this.budget,
      ...(this.settings.cache ? { cache: this.settings.cache } : {}),
      pool: this.pool,
      tracker: this.tracker,
      logger,
      // The client leaving cancels it (the fetcher listens while it streams).
      ...(signal ? { signal } : {}),
      lifecycle: {
        started: () => {
          this.counters.started++;
          this.running.add(fetcher);
        },
        settled: (outcome, error) => this.settled(fetcher, outcome, error, file, lastByte - firstByte + 1, logger),
      },
    });
    if (this.stopped) fetcher.cancel();
    // The fetcher's own stream, not a generator around it: each chunk passes one generator, not two.
    return { fetcher, chunks: fetcher.stream() };
  }

  /** A transfer's stream ended: counted, and a failure logged with what the client got of it. */
  private settled(fetcher: ChunkFetcher, outcome: TransferOutcome, error: unknown, file: FileVersion, length: number, logger: Logger): void {
    this.running.delete(fetcher);
    if (outcome === 'failed') {
      // Once bytes went out, the only way to tell the client is to cut the connection short: say here why.
      logger[fetcher.bytesDelivered > 0 ? 'error' : 'warn']('transfer failed', {
        path: file.path,
        code: error instanceof GatewayError ? error.code : undefined,
        error: error instanceof Error ? error.message : String(error),
        delivered: fetcher.bytesDelivered,
        of: length,
        servers: [...fetcher.serversUsed].join(','),
      });
    }
    if (outcome !== 'abandoned') this.counters[outcome]++;
    this.counters.retransmissions += fetcher.stats.retransmissions;
    this.counters.hedges += fetcher.stats.hedges;
    this.counters.badChunks += fetcher.stats.badChunks;
  }

}

/** Where the range's chunks are now, as a Cache-Status outcome (an empty range is a hit). */
function outcomeOf(cache: ChunkCache, file: FileVersion, range: ChunkRange): CacheOutcome {
  const presence = cache.presence(file, range.firstChunk, range.lastChunk);
  if (presence.missing + presence.inFlight === 0) return 'hit';
  return presence.inFlight > 0 ? 'collapsed' : presence.memory + presence.disk > 0 ? 'partial' : 'miss';
}
