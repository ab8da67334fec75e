import { chunkDigestMatches, silentLogger, type Logger, type Packet } from '@httpgw/protocol';
import { GatewayError } from './errors.js';
import type { FileVersion } from './file-lookup.js';
import type { RequestTracker } from './request-tracker.js';
import type { PoolServer, ServerPool } from './server-pool.js';

export interface ChunkFetcherInit {
  file: FileVersion;
  /** Byte range wanted, inclusive at both ends (HTTP's convention). */
  firstByte: number;
  lastByte: number;
  chunkSize: number;
  /** Chunks requested or held beyond the next one to deliver: bounds memory per transfer. */
  readAheadChunks: number;
  /** A transfer that delivers nothing for this long fails (and its response is cut). */
  stallTimeoutMs: number;
  /** Ask a second server for chunks still missing at the end of a transfer. */
  hedging?: boolean;
  pool: ServerPool;
  tracker: RequestTracker;
  logger?: Logger;
  now?: () => number;
}

export interface TransferStats {
  requests: number;
  retransmissions: number;
  hedges: number;
  badChunks: number;
}

interface Outstanding {
  /** Request id → server key, for each copy of this chunk's request in flight. */
  requests: Map<number, string>;
  sentAt: number;
  hedged: boolean;
}

const TICK_MS = 10;

/**
 * Fetches one byte range of one file version as an async generator of buffers in order.
 * Requests go round-robin to every server holding the version, as many in flight as each server's
 * congestion window allows and at most `readAheadChunks` ahead of delivery; answers are reordered,
 * checked against their MD5 and yielded in order. Lost or bad chunks are asked again from another
 * server; at the end, slow chunks are hedged on a second server.
 */
export class ChunkFetcher {
  readonly serversUsed = new Set<string>();
  bytesDelivered = 0;
  readonly stats: TransferStats = { requests: 0, retransmissions: 0, hedges: 0, badChunks: 0 };
  private readonly init: ChunkFetcherInit;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly firstChunk: number;
  private readonly lastChunk: number;
  private readonly candidates: string[];
  private roundRobin = 0;
  private nextToDeliver: number;
  private nextNew: number;
  /** Chunks to ask again, lowest first, with the server to avoid this time. */
  private readonly retry = new Map<number, string | undefined>();
  private readonly received = new Map<number, Buffer>();
  private readonly outstanding = new Map<number, Outstanding>();
  private lastProgressAt: number;
  private failure: Error | undefined;
  private wakeUp: (() => void) | undefined;
  private pumpScheduled = false;
  private finished = false;

  constructor(init: ChunkFetcherInit) {
    this.init = init;
    this.logger = init.logger ?? silentLogger;
    this.now = init.now ?? (() => performance.now());
    this.firstChunk = Math.floor(init.firstByte / init.chunkSize);
    this.lastChunk = init.lastByte < init.firstByte ? this.firstChunk - 1 : Math.floor(init.lastByte / init.chunkSize);
    this.candidates = [...init.file.servers];
    this.nextToDeliver = this.firstChunk;
    this.nextNew = this.firstChunk;
    this.lastProgressAt = this.now();
  }

  async *stream(): AsyncGenerator<Buffer, void, undefined> {
    const onPoolChange = () => this.schedulePump();
    this.init.pool.on('change', onPoolChange);
    const ticker = setInterval(() => this.tick(), TICK_MS);
    try {
      while (this.nextToDeliver <= this.lastChunk) {
        const data = this.received.get(this.nextToDeliver);
        if (data) {
          this.received.delete(this.nextToDeliver);
          const chunk = this.nextToDeliver++;
          this.lastProgressAt = this.now();
          this.schedulePump();
          const piece = this.trim(chunk, data);
          this.bytesDelivered += piece.length;
          yield piece;
          continue;
        }
        if (this.failure) throw this.failure;
        this.pump();
        if (!this.received.has(this.nextToDeliver) && !this.failure) await new Promise<void>((resolve) => (this.wakeUp = resolve));
      }
    } finally {
      this.finished = true;
      clearInterval(ticker);
      this.init.pool.off('change', onPoolChange);
      for (const outstanding of this.outstanding.values()) for (const id of outstanding.requests.keys()) this.init.tracker.cancel(id);
      this.outstanding.clear();
      this.received.clear();
    }
  }

  /** Cuts the first and last chunk down to the requested byte range. */
  private trim(chunk: number, data: Buffer): Buffer {
    const chunkStart = chunk * this.init.chunkSize;
    const from = chunk === this.firstChunk ? this.init.firstByte - chunkStart : 0;
    const to = chunk === this.lastChunk ? this.init.lastByte - chunkStart + 1 : data.length;
    return from === 0 && to === data.length ? data : data.subarray(from, to);
  }

  private wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  /** Pumps after the current callback returns, so tracker callbacks never re-enter the tracker. */
  private schedulePump(): void {
    if (this.pumpScheduled || this.finished) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      if (!this.finished) this.pump();
    });
  }

  private tick(): void {
    if (this.now() - this.lastProgressAt > this.init.stallTimeoutMs) {
      this.fail(new GatewayError('GW_ERR_STALLED', `no chunk arrived for ${this.init.stallTimeoutMs} ms`));
      return;
    }
    this.pump();
  }

  /** Sends as many requests as windows and read-ahead allow: retries first, then new chunks, then hedges. */
  private pump(): void {
    if (this.finished || this.failure) return;
    if (this.candidates.length === 0) {
      this.fail(new GatewayError('GW_ERR_SOURCES_GONE'));
      return;
    }
    for (;;) {
      const [retryChunk, avoid] = this.retry.entries().next().value ?? [undefined, undefined];
      const chunk = retryChunk ?? (this.nextNew <= this.lastChunk && this.nextNew < this.nextToDeliver + this.init.readAheadChunks ? this.nextNew : undefined);
      if (chunk === undefined) break;
      const server = this.pickServer(avoid);
      if (!server) return;
      if (retryChunk !== undefined) {
        this.retry.delete(retryChunk);
        this.stats.retransmissions++;
      } else {
        this.nextNew++;
      }
      this.request(chunk, server);
    }
    if (this.init.hedging !== false) this.hedge();
  }

  /**
   * Endgame: once every chunk is asked for, a chunk still missing after twice the best round trip is
   * asked of a second server too, so one slow server cannot hold the end of a download. The same goes
   * for the chunk that blocks delivery when the read-ahead is full.
   */
  private hedge(): void {
    const endgame = this.nextNew > this.lastChunk && this.retry.size === 0;
    const blocked = this.nextNew >= this.nextToDeliver + this.init.readAheadChunks;
    if (!endgame && !blocked) return;
    const delay = 2 * this.bestRttMs() + 2;
    const now = this.now();
    for (const [chunk, outstanding] of this.outstanding) {
      if (!endgame && chunk !== this.nextToDeliver) continue;
      if (outstanding.hedged || outstanding.requests.size !== 1 || now - outstanding.sentAt < delay) continue;
      const busyServer = outstanding.requests.values().next().value;
      const server = this.pickServer(busyServer, true);
      if (!server) return;
      outstanding.hedged = true;
      this.stats.hedges++;
      this.request(chunk, server);
    }
  }

  private bestRttMs(): number {
    let best = Number.POSITIVE_INFINITY;
    for (const key of this.candidates) best = Math.min(best, this.init.pool.get(key)?.rtt.smoothedMs ?? Number.POSITIVE_INFINITY);
    return Number.isFinite(best) ? best : 10;
  }

  /** Next candidate with room, round-robin; `avoid` only when nothing else has room, unless `strict`. */
  private pickServer(avoid: string | undefined, strict = false): PoolServer | undefined {
    let fallback: PoolServer | undefined;
    for (let i = 0; i < this.candidates.length; i++) {
      const index = (this.roundRobin + i) % this.candidates.length;
      const server = this.init.pool.get(this.candidates[index]!);
      if (!server?.hasRoom) continue;
      if (server.key === avoid) {
        fallback = server;
        continue;
      }
      this.roundRobin = index + 1;
      return server;
    }
    return strict ? undefined : fallback;
  }

  private request(chunk: number, server: PoolServer): void {
    const { path, version } = this.init.file;
    const chunkSize = this.init.chunkSize;
    const id = this.init.tracker.send(server, (requestId) => ({ type: 'chunk-request', requestId, path, version, chunk, chunkSize }), {
      onAnswer: (answer, from) => this.onAnswer(chunk, id, answer, from),
      onLost: (_reason, from) => this.onLost(chunk, id, from),
    });
    this.stats.requests++;
    const outstanding = this.outstanding.get(chunk);
    if (outstanding) outstanding.requests.set(id, server.key);
    else this.outstanding.set(chunk, { requests: new Map([[id, server.key]]), sentAt: this.now(), hedged: false });
  }

  private isDone(chunk: number): boolean {
    return chunk < this.nextToDeliver || this.received.has(chunk);
  }

  private forgetRequest(chunk: number, id: number): Outstanding | undefined {
    const outstanding = this.outstanding.get(chunk);
    outstanding?.requests.delete(id);
    if (outstanding && outstanding.requests.size === 0) this.outstanding.delete(chunk);
    return outstanding;
  }

  /** Asks for a chunk again unless it arrived or another copy of its request is still in flight. */
  private requeue(chunk: number, avoid: string | undefined): void {
    if (this.isDone(chunk) || this.outstanding.has(chunk) || this.finished) return;
    this.retry.set(chunk, avoid);
    if (this.retry.size > 1) {
      // Keep retries lowest-first: the chunk that blocks delivery goes out before the others.
      const sorted = [...this.retry.entries()].sort((a, b) => a[0] - b[0]);
      this.retry.clear();
      for (const [key, value] of sorted) this.retry.set(key, value);
    }
    this.schedulePump();
  }

  private onLost(chunk: number, id: number, server: PoolServer): void {
    this.forgetRequest(chunk, id);
    this.requeue(chunk, server.key);
  }

  private onAnswer(chunk: number, id: number, answer: Packet, server: PoolServer): void {
    this.forgetRequest(chunk, id);
    if (this.finished) return;
    if (answer.type === 'error') {
      if (answer.code === 'stale' || answer.code === 'not-found') this.dropCandidate(server, answer.code);
      this.requeue(chunk, server.key);
      return;
    }
    if (answer.type !== 'chunk' || answer.chunk !== chunk || !this.hasExpectedShape(chunk, answer.data, answer.hasNext) || !chunkDigestMatches(answer.data, answer.md5)) {
      this.stats.badChunks++;
      this.logger.warn('bad chunk discarded', { server: server.key, path: this.init.file.path, chunk });
      this.init.pool.onBadChunk(server);
      this.requeue(chunk, server.key);
      return;
    }
    if (this.isDone(chunk)) return;
    this.serversUsed.add(server.key);
    server.stats.bytes += answer.data.length;
    const twins = this.outstanding.get(chunk);
    if (twins) {
      for (const twin of twins.requests.keys()) this.init.tracker.cancel(twin);
      this.outstanding.delete(chunk);
    }
    this.received.set(chunk, Buffer.from(answer.data.buffer, answer.data.byteOffset, answer.data.length));
    if (chunk === this.nextToDeliver) this.wake();
    this.schedulePump();
  }

  private hasExpectedShape(chunk: number, data: Uint8Array, hasNext: boolean): boolean {
    const { size } = this.init.file;
    const offset = chunk * this.init.chunkSize;
    const expected = Math.min(this.init.chunkSize, size - offset);
    return data.length === expected && hasNext === offset + expected < size;
  }

  /** The server no longer holds this version: never ask it again in this transfer. */
  private dropCandidate(server: PoolServer, why: string): void {
    const index = this.candidates.indexOf(server.key);
    if (index < 0) return;
    this.candidates.splice(index, 1);
    this.logger.warn('server no longer holds the file version', { server: server.key, path: this.init.file.path, why });
    if (this.candidates.length === 0) {
      this.fail(new GatewayError(why === 'stale' ? 'GW_ERR_FILE_CHANGED' : 'GW_ERR_SOURCES_GONE'));
    }
  }
}
