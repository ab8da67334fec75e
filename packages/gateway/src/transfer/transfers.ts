import type { Logger } from '@httpgw/runtime';
import { ChunkFetcher } from './chunk-fetcher.js';
import { GatewayError } from '../errors.js';
import type { FileVersion } from '../lookup/file-lookup.js';
import { ReadAheadBudget } from './read-ahead-budget.js';
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
}

export interface TransferCounters {
  started: number;
  completed: number;
  failed: number;
  retransmissions: number;
  hedges: number;
  badChunks: number;
}

/** Starts chunk fetchers with the gateway's settings and adds their figures to the gateway's counters. */
export class Transfers {
  readonly counters: TransferCounters = { started: 0, completed: 0, failed: 0, retransmissions: 0, hedges: 0, badChunks: 0 };
  private readonly running = new Set<ChunkFetcher>();
  /** The one read-ahead budget every transfer of the gateway takes from. */
  readonly budget: ReadAheadBudget;

  get active(): number {
    return this.running.size;
  }

  constructor(
    private readonly settings: TransferSettings,
    private readonly pool: ServerPool,
    private readonly tracker: RequestTracker,
    private readonly logger: Logger,
  ) {
    this.budget = new ReadAheadBudget({ limitBytes: settings.readAheadBudgetBytes, chunkBytes: settings.chunkSize });
  }

  /** Ends every transfer in progress (the gateway is stopping). */
  cancelAll(): void {
    for (const fetcher of this.running) fetcher.cancel();
  }

  /** A fetcher for bytes `firstByte..lastByte` (inclusive) of one file version. */
  fetch(file: FileVersion, firstByte: number, lastByte: number): { fetcher: ChunkFetcher; chunks: AsyncGenerator<Buffer, void, undefined> } {
    const { chunkSize, readAheadBytes, stallTimeoutMs, hedging } = this.settings;
    const fetcher = new ChunkFetcher({
      file,
      firstByte,
      lastByte,
      chunkSize,
      readAheadChunks: Math.max(2, Math.ceil(readAheadBytes / chunkSize)),
      stallTimeoutMs,
      hedging,
      budget: this.budget,
      pool: this.pool,
      tracker: this.tracker,
      logger: this.logger,
    });
    return { fetcher, chunks: this.accounted(fetcher, file, lastByte - firstByte + 1) };
  }

  private async *accounted(fetcher: ChunkFetcher, file: FileVersion, length: number): AsyncGenerator<Buffer, void, undefined> {
    this.counters.started++;
    this.running.add(fetcher);
    let outcome: 'completed' | 'failed' | 'abandoned' = 'abandoned';
    try {
      yield* fetcher.stream();
      if (!fetcher.wasCancelled) outcome = 'completed';
    } catch (error) {
      outcome = 'failed';
      // Once bytes went out, the only way to tell the client is to cut the connection short: say here why.
      this.logger[fetcher.bytesDelivered > 0 ? 'error' : 'warn']('transfer failed', {
        path: file.path,
        code: error instanceof GatewayError ? error.code : undefined,
        error: error instanceof Error ? error.message : String(error),
        delivered: fetcher.bytesDelivered,
        of: length,
        servers: [...fetcher.serversUsed].join(','),
      });
      throw error;
    } finally {
      this.running.delete(fetcher);
      if (outcome !== 'abandoned') this.counters[outcome]++;
      this.counters.retransmissions += fetcher.stats.retransmissions;
      this.counters.hedges += fetcher.stats.hedges;
      this.counters.badChunks += fetcher.stats.badChunks;
    }
  }
}
