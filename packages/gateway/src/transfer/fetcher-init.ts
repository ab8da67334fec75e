import { silentLogger, type Logger } from '@httpgw/runtime';
import type { ChunkCache } from '../cache/chunk-cache.js';
import { ChunkRange } from './chunk-range.js';
import type { FileVersion } from '../lookup/file-lookup.js';
import { integerOption, positiveOption } from './options.js';
import type { ReadAheadBudget } from './read-ahead-budget.js';
import { Ticker } from './ticker.js';
import type { RequestTracker } from '../udp/request-tracker.js';
import type { ServerPool } from '../pool/server-pool.js';

export interface ChunkFetcherInit {
  file: FileVersion;
  /** Byte range wanted, inclusive at both ends (HTTP's convention). */
  firstByte: number;
  lastByte: number;
  chunkSize: number;
  /** Chunks requested or held beyond the next one to deliver: bounds memory per transfer (1 or more). */
  readAheadChunks: number;
  /** The gateway's read-ahead budget, shared by all transfers (none: only `readAheadChunks` bounds this one). */
  budget?: ReadAheadBudget;
  /** A transfer whose client waits this long for its next chunk fails (and its response is cut). */
  stallTimeoutMs: number;
  /** Ask a second server for a chunk that is late: the one the client waits for, or any at the end. */
  hedging?: boolean;
  /**
   * Ends the stream at once (its client left, or the gateway stops): a stream waiting for a chunk
   * returns now instead of at its stall timeout, and nothing more is asked for.
   */
  signal?: AbortSignal;
  /** The ticker all transfers share (default: one of its own). */
  ticker?: Ticker;
  /** Where round-robin over the servers starts (Transfers gives each transfer the next one). */
  roundRobinStart?: number;
  /**
   * The gateway's chunk cache: chunks in memory are taken from it, chunks another transfer is
   * fetching are waited for rather than asked again, and chunks fetched are offered to it.
   */
  cache?: ChunkCache;
  pool: ServerPool;
  tracker: RequestTracker;
  logger?: Logger;
  now?: () => number;
  /** Told when the stream starts and how it ended (Transfers counts and logs transfers with it). */
  lifecycle?: TransferLifecycle;
}

/** How a transfer's stream ended: every byte delivered, an error, or its consumer stopped (or it was cancelled). */
export type TransferOutcome = 'completed' | 'failed' | 'abandoned';

export interface TransferLifecycle {
  started(): void;
  /** `error`: what a failed stream threw (it is thrown on to the consumer as well). */
  settled(outcome: TransferOutcome, error?: unknown): void;
}

/** A ChunkFetcherInit with its defaults filled in and its numbers checked. */
export interface FetcherOptions extends Required<Omit<ChunkFetcherInit, 'firstByte' | 'lastByte' | 'chunkSize' | 'budget' | 'signal' | 'cache' | 'lifecycle'>> {
  range: ChunkRange;
  lifecycle: TransferLifecycle | undefined;
  budget: ReadAheadBudget | undefined;
  signal: AbortSignal | undefined;
  cache: ChunkCache | undefined;
}

/** Fills in the defaults and checks the numbers: a RangeError names the first bad one. */
export function resolveFetcherInit(init: ChunkFetcherInit): FetcherOptions {
  return {
    file: init.file,
    range: new ChunkRange(init.firstByte, init.lastByte, init.chunkSize, init.file.size),
    readAheadChunks: integerOption('readAheadChunks', init.readAheadChunks, 1),
    budget: init.budget,
    stallTimeoutMs: positiveOption('stallTimeoutMs', init.stallTimeoutMs),
    hedging: init.hedging ?? true,
    signal: init.signal,
    cache: init.cache,
    ticker: init.ticker ?? new Ticker(),
    roundRobinStart: integerOption('roundRobinStart', init.roundRobinStart ?? 0, 0),
    pool: init.pool,
    tracker: init.tracker,
    logger: init.logger ?? silentLogger,
    now: init.now ?? (() => performance.now()),
    lifecycle: init.lifecycle,
  };
}
