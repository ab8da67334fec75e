import { chunkDigestMatches, type Packet } from '@httpgw/protocol';
import { GatewayError, type GatewayErrorCode } from '../errors.js';
import { markFreeable } from './chunk-memory.js';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { CacheOutcome } from './transfers.js';
import type { ChunkRange } from './chunk-range.js';
import { resolveFetcherInit, type ChunkFetcherInit, type FetcherOptions, type TransferOutcome } from './fetcher-init.js';
import { planHedges, type Outstanding } from './hedge-plan.js';
import type { ReadAheadShare } from './read-ahead-budget.js';
import { ReceiveRate } from './receive-rate.js';
import { RetryQueue } from './retry-queue.js';
import { AFFINITY_BLOCK, SourceChoice, type DropReason } from './source-choice.js';
import type { RequestHandlers } from '../udp/request-tracker.js';
import type { PoolServer } from '../pool/server-pool.js';

export type { ChunkFetcherInit } from './fetcher-init.js';

export interface TransferStats {
  requests: number;
  /** Chunks taken from the cache's memory, and chunks another transfer's fetch brought. */
  cachedChunks: number;
  sharedChunks: number;
  retransmissions: number;
  hedges: number;
  badChunks: number;
}

/**
 * How late a server may be for a chunk before the scheduler gives it to another: more than a timer's
 * grain, as much as a busy gateway's event loop delays answers, so servers that differ by such noise
 * stay equals (round-robin, block affinity) and only a really slow or distant one loses near chunks.
 */
const DUE_SLACK_MS = 20;

/** A chunk waited for from another transfer's fetch is asked for here too after this long. */
const JOINED_OVERDUE_MS = 3_000;

/** Why the last server holding the version stopped serving it → how the transfer fails. */
const FAILURE_OF: Record<DropReason, GatewayErrorCode> = {
  stale: 'GW_ERR_FILE_CHANGED',
  'not-found': 'GW_ERR_SOURCES_GONE',
  unreadable: 'GW_ERR_UNREADABLE',
  io: 'GW_ERR_SOURCES_GONE',
  'bad data': 'GW_ERR_SOURCES_GONE',
};

/**
 * Fetches one byte range of one file version as an async generator of buffers in order.
 * Requests go round-robin to every server holding the version (see SourceChoice), as many in
 * flight as each server's congestion window allows and at most `readAheadChunks` ahead of
 * delivery; answers are reordered, checked against their MD5 and yielded in order. Lost or bad
 * chunks are asked again from another server; late chunks are hedged on other servers (see
 * planHedges). Fails with GW_ERR_SOURCES_GONE once every server holding the version left the
 * pool, and with GW_ERR_STALLED when the client has waited `stallTimeoutMs` for its next chunk.
 */
export class ChunkFetcher {
  readonly serversUsed = new Set<string>();
  bytesDelivered = 0;
  /** How the cache took part (set by Transfers when there is one): for Cache-Status and the log. */
  cacheOutcome: CacheOutcome | undefined;
  readonly stats: TransferStats = { requests: 0, cachedChunks: 0, sharedChunks: 0, retransmissions: 0, hedges: 0, badChunks: 0 };

  /** Chunk requests sent again so far (the access log's figure). */
  get retransmissions(): number {
    return this.stats.retransmissions;
  }
  private readonly init: FetcherOptions;
  private readonly range: ChunkRange;
  private readonly sources: SourceChoice;
  private nextToDeliver: number;
  private nextNew: number;
  private readonly retries = new RetryQueue();
  private readonly receiveRate = new ReceiveRate();
  private readonly received = new Map<number, Buffer>();
  private readonly outstanding = new Map<number, Outstanding>();
  /** When the client began to wait for the chunk it needs next. */
  private waitingSince = 0;
  private failure: Error | undefined;
  private failing: AbortController | undefined;
  /**
   * Aborted when the transfer fails: a writer waiting for a slow client to drain stops waiting, so the
   * response is cut at once instead of after the read-ahead already fetched has trickled out. Made on
   * first use: most responses never wait for a client (an AbortController costs ~10 µs on Node 20).
   */
  get failed(): AbortSignal {
    if (!this.failing) {
      this.failing = new AbortController();
      if (this.failure) this.failing.abort(this.failure);
    }
    return this.failing.signal;
  }
  private wakeUp: (() => void) | undefined;
  private pumpScheduled = false;
  /** This transfer's place in the pool's queue for room (see ServerPool.waitForRoom). */
  private readonly pumpWhenRoom = () => this.pump();
  private readonly onTick = () => this.tick();
  private readonly onAbort = () => this.cancel();
  private finished = false;
  private cancelled = false;

  private readonly cache: ChunkCache | undefined;
  /** The cache keys of this version's chunks: this prefix and the chunk's number. */
  private readonly keyPrefix: string;
  /** The highest chunk counted as asked for in the cache's admission filter. */
  private countedUpTo = -1;
  /** Chunks this transfer claimed in the cache's shared fetches (others may wait for them). */
  private readonly claimed = new Set<number>();
  /** Chunks another transfer is fetching for this one too, and since when this one waits. */
  private readonly joined = new Map<number, number>();

  /** This transfer's part of the gateway's read-ahead budget: chunks nextToDeliver..nextNew-1. */
  private readonly readAhead: ReadAheadShare | undefined;

  /** Read-ahead freed before a new run is asked for, while the client has plenty ahead (see pump). */
  private readonly batchChunks: number;

  constructor(init: ChunkFetcherInit) {
    this.init = resolveFetcherInit(init);
    this.batchChunks = Math.min(AFFINITY_BLOCK, Math.floor(this.init.readAheadChunks / 4));
    this.range = this.init.range;
    this.readAhead = this.init.budget?.open(this.pumpWhenRoom);
    this.sources = new SourceChoice(this.init.file.servers, this.init.pool, this.init.roundRobinStart);
    this.cache = this.init.cache;
    this.keyPrefix = this.cache?.keyPrefix(this.init.file) ?? '';
    this.nextToDeliver = this.range.firstChunk;
    this.nextNew = this.range.firstChunk;
  }

  async *stream(): AsyncGenerator<Buffer, void, undefined> {
    const onPoolChange = () => {
      this.checkSources();
      this.schedulePump();
    };
    const signal = this.init.signal;
    if (signal?.aborted) this.cancelled = true;
    signal?.addEventListener('abort', this.onAbort);
    this.init.pool.changed.add(onPoolChange);
    this.init.ticker.add(this.onTick);
    this.init.lifecycle?.started();
    let outcome: TransferOutcome = 'abandoned';
    let failure: unknown;
    try {
      this.checkSources();
      while (this.nextToDeliver <= this.range.lastChunk && !this.cancelled) {
        // A failed transfer ends now, read-ahead or not: the client resumes against what is there now.
        if (this.failure) throw this.failure;
        const data = this.received.get(this.nextToDeliver);
        if (data) {
          this.received.delete(this.nextToDeliver);
          const chunk = this.nextToDeliver++;
          // Handed to the client: its budget goes first to a transfer queued for it, then back to this one.
          this.readAhead?.release(1);
          this.schedulePump();
          // The writer frees it once the socket took it (see chunk-memory.ts), not V8's next full GC.
          markFreeable(data);
          const piece = this.range.trim(chunk, data);
          this.bytesDelivered += piece.length;
          yield piece;
          continue;
        }
        if (this.failure) throw this.failure;
        this.pump();
        if (!this.received.has(this.nextToDeliver) && !this.failure && !this.cancelled) {
          this.waitingSince = this.init.now();
          await new Promise<void>((resolve) => (this.wakeUp = resolve));
        }
      }
      if (!this.cancelled) outcome = 'completed';
    } catch (error) {
      outcome = 'failed';
      failure = error;
      throw error;
    } finally {
      this.finished = true;
      this.init.ticker.delete(this.onTick);
      signal?.removeEventListener('abort', this.onAbort);
      this.init.pool.changed.delete(onPoolChange);
      this.init.pool.stopWaitingForRoom(this.pumpWhenRoom);
      this.readAhead?.close();
      this.abandonClaims();
      // Requests in flight run their course (see onAnswer); their handlers now do nothing but account.
      this.outstanding.clear();
      this.received.clear();
      this.init.lifecycle?.settled(outcome, failure);
    }
  }

  /** Ends the stream early (the client left, the gateway stops): as the signal's abort does. */
  cancel(): void {
    this.cancelled = true;
    this.wake();
  }

  /** Whether the signal or cancel() ended the stream early. */
  get wasCancelled(): boolean {
    return this.cancelled;
  }

  private wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.failing?.abort(error);
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

  /** Every tick: the stall deadline, hedges (time-driven, so not on the per-chunk path), and room freed by other transfers. */
  private tick(): void {
    if (this.finished || this.failure || this.cancelled) return;
    if (this.wakeUp && this.init.now() - this.waitingSince > this.init.stallTimeoutMs) {
      if (!this.sources.anyInPool()) this.fail(new GatewayError('GW_ERR_SOURCES_GONE'));
      else this.fail(new GatewayError('GW_ERR_STALLED', `no chunk arrived for ${this.init.stallTimeoutMs} ms`));
      return;
    }
    this.pump();
    if (this.init.hedging) this.hedge();
    if (this.joined.size > 0) this.checkJoined();
  }

  /**
   * Fails the transfer as soon as every server holding its version left the pool: said goodbye, was
   * dropped, or was evicted for missed heartbeats (a server back from a blackout registers anew, and
   * the client resumes against it with a Range request).
   */
  private checkSources(): void {
    if (this.finished || this.failure || this.sources.anyInPool()) return;
    this.fail(new GatewayError('GW_ERR_SOURCES_GONE'));
  }

  /**
   * Sends as many requests as windows, read-ahead and the gateway's read-ahead budget allow: retries
   * first (lowest chunk first, one per request; their chunks are already counted), then runs of new
   * chunks. Blocked by full windows, the transfer queues for room (ServerPool.waitForRoom), so it
   * gets the next room freed even while others keep theirs busy; blocked by the budget, it queues
   * for budget (ReadAheadBudget), the same way.
   */
  private pump(): void {
    if (this.finished || this.failure || this.cancelled) return;
    for (;;) {
      const chunk = this.retries.first;
      if (chunk === undefined) break;
      const server = this.sources.withRoom(this.retries.avoiding(chunk), false, this.range.chunkSize);
      if (!server) return this.init.pool.waitForRoom(this.pumpWhenRoom);
      this.retries.shift();
      this.stats.retransmissions++;
      server.stats.retransmissions++;
      this.request(chunk, 1, server);
    }
    for (;;) {
      const end = Math.min(this.range.lastChunk + 1, this.nextToDeliver + this.init.readAheadChunks);
      if (this.nextNew >= end) return;
      const wanted = end - this.nextNew;
      const remaining = this.range.lastChunk + 1 - this.nextNew;
      // Silly-window avoidance (RFC 1122 4.2.3.3): while half the read-ahead is still ahead, wait
      // until a run's worth is free rather than ask for each chunk as it is delivered: runs stay long
      // and blocks stay with their servers, however many servers hold the file.
      if (wanted < remaining && wanted < this.batchChunks && this.nextNew - this.nextToDeliver >= this.init.readAheadChunks / 2) return;
      // The gateway's budget may allow fewer: then a shorter run goes out, to a busy server too, so a
      // transfer held to its minimum still moves. None allowed: queued until budget is released.
      const allowed = this.readAhead ? this.readAhead.affordable(wanted) : wanted;
      if (allowed === 0) return this.readAhead!.waitForBudget();
      if (this.cache && this.fromCache(this.nextNew)) {
        this.readAhead?.take(1);
        this.nextNew++;
        continue;
      }
      // A run stops before a chunk the cache has or another transfer is fetching (looked up no further
      // than a run can go: to its affinity block's end).
      const limit = this.cache ? this.uncachedRun(this.nextNew, Math.min(allowed, AFFINITY_BLOCK - (this.nextNew % AFFINITY_BLOCK))) : allowed;
      const timing = { ahead: this.nextNew - this.nextToDeliver, chunkBytes: this.range.chunkSize, receiveRate: this.receiveRate.bytesPerMs, now: this.init.now(), slackMs: DUE_SLACK_MS };
      const run = this.sources.forRun(this.nextNew, limit, limit < wanted ? Math.min(limit, remaining) : remaining, timing);
      if (!run) return this.init.pool.waitForRoom(this.pumpWhenRoom);
      this.readAhead?.take(run.count);
      if (this.cache) for (let i = 0; i < run.count; i++) this.claim(this.nextNew + i);
      this.request(this.nextNew, run.count, run.server);
      this.nextNew += run.count;
    }
  }

  /** Sends the hedges planHedges asks for: the waited-for chunk's to a server not yet asked, past full windows; the endgame's, window permitting. */
  private hedge(): void {
    const endgame = this.nextNew > this.range.lastChunk && this.retries.size === 0;
    const plan = planHedges({ now: this.init.now(), bestRttMs: this.sources.bestRttMs(), outstanding: this.outstanding, next: this.nextToDeliver, endgame });
    const critical = plan.critical === undefined ? undefined : this.outstanding.get(plan.critical);
    if (critical) {
      const server = this.sources.forHedge(critical.requests);
      if (server) this.sendHedge(this.nextToDeliver, server);
    }
    for (const chunk of plan.late) {
      const askedOf = this.outstanding.get(chunk)?.requests.values().next().value;
      if (askedOf === undefined) continue;
      const server = this.sources.withRoom(askedOf, true, this.range.chunkSize);
      if (!server) return;
      this.sendHedge(chunk, server);
    }
  }

  private sendHedge(chunk: number, server: PoolServer): void {
    this.stats.hedges++;
    this.request(chunk, 1, server);
  }

  /** Asks `server` for chunks `first..first+count-1` in one datagram. */
  private request(first: number, count: number, server: PoolServer): void {
    const { path, version } = this.init.file;
    const chunkSize = this.range.chunkSize;
    const handlers: RequestHandlers[] = [];
    for (let i = 0; i < count; i++) {
      const chunk = first + i;
      const handler: RequestHandlers = {
        onAnswer: (answer, from, digestOk) => this.onAnswer(chunk, firstId + i, answer, from, digestOk),
        onLost: (_reason, from) => this.onLost(chunk, firstId + i, from),
      };
      // The first byte's chunk: its client has nothing yet (time to first byte). The others need no test.
      if (chunk === this.range.firstChunk) handler.urgent = () => this.nextToDeliver === chunk;
      handlers.push(handler);
    }
    const firstId = this.init.tracker.sendRun(server, (requestId) => ({ type: 'chunk-request', requestId, path, version, chunk: first, chunkSize, ...(count > 1 ? { count } : {}) }), handlers);
    this.stats.requests += count;
    const now = this.init.now();
    for (let i = 0; i < count; i++) {
      const outstanding = this.outstanding.get(first + i);
      if (outstanding) {
        outstanding.requests.set(firstId + i, server.key);
        outstanding.lastSentAt = now;
      } else {
        this.outstanding.set(first + i, { requests: new Map([[firstId + i, server.key]]), sentAt: now, lastSentAt: now });
      }
    }
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
    this.retries.add(chunk, avoid);
    this.schedulePump();
  }

  private onLost(chunk: number, id: number, server: PoolServer): void {
    this.forgetRequest(chunk, id);
    // Ended: this transfer will not ask again, so whoever waits for the chunk asks for itself.
    if (this.finished) return this.abandon(chunk);
    this.requeue(chunk, server.key);
  }

  private onAnswer(chunk: number, id: number, answer: Packet, server: PoolServer, digestOk: boolean | undefined): void {
    this.forgetRequest(chunk, id);
    if (this.finished) return this.afterEnd(chunk, answer, digestOk);
    if (answer.type === 'error') {
      const why = this.sources.judge(server, answer.code);
      if (why) this.dropCandidate(server, why);
      this.requeue(chunk, server.key);
      return;
    }
    if (answer.type !== 'chunk' || answer.chunk !== chunk || !this.range.fits(chunk, answer.data, answer.hasNext) || !(digestOk ?? chunkDigestMatches(answer.data, answer.md5))) {
      this.stats.badChunks++;
      this.init.logger.warn('bad chunk discarded', { server: server.key, path: this.init.file.path, chunk });
      if (this.init.pool.onBadChunk(server, this.init.file.path)) this.dropCandidate(server, 'bad data');
      this.requeue(chunk, server.key);
      return;
    }
    this.init.pool.onGoodChunk(server, this.init.file.path, answer.data.length);
    this.sources.trust(server);
    if (this.isDone(chunk)) return;
    this.serversUsed.add(server.key);
    this.receiveRate.add(answer.data.length, this.init.now());
    // Other copies of this request stay in flight: their server works on them anyway, and their
    // answer or timeout is what the pool learns that server's health and speed from.
    this.outstanding.delete(chunk);
    const data = Buffer.from(answer.data.buffer, answer.data.byteOffset, answer.data.length);
    if (this.cache) this.share(chunk, data);
    this.received.set(chunk, data);
    if (chunk === this.nextToDeliver) this.wake();
    this.schedulePump();
  }

  /** An answer after the transfer ended: a good chunk still goes to the cache and to whoever waits for it. */
  private afterEnd(chunk: number, answer: Packet, digestOk: boolean | undefined): void {
    if (!this.claimed.has(chunk)) return;
    if (answer.type === 'chunk' && answer.chunk === chunk && this.range.fits(chunk, answer.data, answer.hasNext) && (digestOk ?? chunkDigestMatches(answer.data, answer.md5))) {
      this.share(chunk, Buffer.from(answer.data.buffer, answer.data.byteOffset, answer.data.length));
    } else this.abandon(chunk);
  }

  /** A chunk checked good: offered to the cache, handed to the transfers waiting for it. */
  private share(chunk: number, data: Buffer): void {
    const key = this.keyPrefix + chunk;
    this.cache!.store(key, data);
    this.cache!.shared.publish(key, data);
    this.claimed.delete(chunk);
  }

  /** Takes chunk `chunk` from the cache's memory, or joins another transfer's fetch of it; false: neither. */
  private fromCache(chunk: number): boolean {
    const key = this.keyPrefix + chunk;
    // Each chunk counts once as asked for, however often the pump comes back to it.
    const data = this.cache!.fromMemory(key, chunk > this.countedUpTo);
    this.countedUpTo = Math.max(this.countedUpTo, chunk);
    if (data) {
      this.stats.cachedChunks++;
      this.received.set(chunk, data);
      if (chunk === this.nextToDeliver) this.wake();
      return true;
    }
    const joined = this.cache!.shared.join(key, (shared) => this.onShared(chunk, shared));
    if (joined) this.joined.set(chunk, this.init.now());
    return joined;
  }

  /** Another transfer's fetch of `chunk` ended: with its data, or without (ask for it here). */
  private onShared(chunk: number, data: Buffer | undefined): void {
    if (!this.joined.delete(chunk) || this.finished) return;
    if (!data) return this.requeue(chunk, undefined);
    this.stats.sharedChunks++;
    this.received.set(chunk, data);
    if (chunk === this.nextToDeliver) this.wake();
    this.schedulePump();
  }

  /** How many chunks from `first` on (at most `most`) are neither in the cache's memory nor fetched by another transfer. */
  private uncachedRun(first: number, most: number): number {
    let count = 1;
    while (count < most) {
      const key = this.keyPrefix + (first + count);
      if (this.cache!.memory?.has(key) || this.cache!.shared.isInFlight(key)) break;
      count++;
    }
    return count;
  }

  private claim(chunk: number): void {
    this.claimed.add(chunk);
    this.cache!.shared.claim(this.keyPrefix + chunk, this);
  }

  private abandon(chunk: number): void {
    if (!this.claimed.delete(chunk)) return;
    this.cache?.shared.abandon(this.keyPrefix + chunk, this);
  }

  /** Ended: claims with no request in flight are given up now (those in flight are given up when they end). */
  private abandonClaims(): void {
    for (const chunk of this.claimed) if (!this.outstanding.has(chunk)) this.abandon(chunk);
    for (const chunk of this.joined.keys()) this.joined.delete(chunk);
  }

  /**
   * A chunk waited for from another transfer's fetch that is long overdue (that transfer's request
   * went astray, its server left): asked for here too, whichever comes first is used.
   */
  private checkJoined(): void {
    // Rare (an owner publishes or abandons every claim): a safety net, slow enough not to double loads that are merely busy.
    const overdue = this.init.now() - Math.max(JOINED_OVERDUE_MS, 8 * this.sources.bestRttMs());
    for (const [chunk, since] of this.joined) {
      if (since > overdue) continue;
      this.joined.delete(chunk);
      this.requeue(chunk, undefined);
    }
  }

  /**
   * The server cannot serve this version (it changed there, is gone, unreadable, or sent bad data):
   * never ask it again in this transfer. The last one gone fails the transfer at once, not at the stall timeout.
   */
  private dropCandidate(server: PoolServer, why: DropReason): void {
    if (!this.sources.drop(server.key)) return;
    this.init.logger.warn('server no longer serves the file version', { server: server.key, path: this.init.file.path, why });
    if (this.sources.isEmpty) this.fail(new GatewayError(FAILURE_OF[why]));
  }
}
