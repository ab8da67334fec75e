import { MAX_CHUNKS_PER_REQUEST, chunkDigestMatches, type Packet } from '@httpgw/protocol';
import { silentLogger, type Logger } from '@httpgw/runtime';
import { GatewayError, type GatewayErrorCode } from '../errors.js';
import { markFreeable } from './chunk-memory.js';
import type { FileVersion } from '../lookup/file-lookup.js';
import type { ReadAheadBudget, ReadAheadShare } from './read-ahead-budget.js';
import type { RequestHandlers, RequestTracker } from '../udp/request-tracker.js';
import type { PoolServer, ServerPool } from '../pool/server-pool.js';

export interface ChunkFetcherInit {
  file: FileVersion;
  /** Byte range wanted, inclusive at both ends (HTTP's convention). */
  firstByte: number;
  lastByte: number;
  chunkSize: number;
  /** Chunks requested or held beyond the next one to deliver: bounds memory per transfer. */
  readAheadChunks: number;
  /** The gateway's read-ahead budget, shared by all transfers (none: only `readAheadChunks` bounds this one). */
  budget?: ReadAheadBudget;
  /** A transfer whose client waits this long for its next chunk fails (and its response is cut). */
  stallTimeoutMs: number;
  /** Ask a second server for a chunk that is late: the one the client waits for, or any at the end. */
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
  /** When the oldest and the newest copy in flight were sent. */
  sentAt: number;
  lastSentAt: number;
}

const TICK_MS = 10;
/** Chunks per block of server affinity (see pickServerForRun): a full run at the largest default window. */
const AFFINITY_BLOCK = 16;
let nextStart = 0;
/** Copies of the request for the chunk the client waits for, in flight at once, each to another server. */
const MAX_COPIES = 3;
/** `io` errors from one server in one transfer before it is no longer asked: a disk error repeats. */
const READ_ERRORS_TO_DROP = 3;

type DropReason = 'stale' | 'not-found' | 'unreadable' | 'io' | 'bad data';
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
 * Requests go round-robin to every server holding the version, as many in flight as each server's
 * congestion window allows and at most `readAheadChunks` ahead of delivery; answers are reordered,
 * checked against their MD5 and yielded in order. Lost or bad chunks are asked again from another
 * server; late chunks are hedged on other servers (see `hedge`). Fails with GW_ERR_SOURCES_GONE
 * once every server holding the version left the pool, and with GW_ERR_STALLED when the client has
 * waited `stallTimeoutMs` for its next chunk.
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
  /** The candidates in a fixed order (by key), so block n has the same owner in every download. */
  private readonly affinity: string[];
  /** Where round-robin starts: each transfer one further, so one-chunk files spread over the servers too. */
  private roundRobin = nextStart++;
  private nextToDeliver: number;
  private nextNew: number;
  /** Chunks to ask again, with the server to avoid this time; `retryOrder` holds them lowest first. */
  private readonly retry = new Map<number, string | undefined>();
  private readonly retryOrder: number[] = [];
  /** Servers that said once that they lack this version: a second time and they are dropped. */
  private readonly doubted = new Set<string>();
  private readonly readErrors = new Map<string, number>();
  private readonly received = new Map<number, Buffer>();
  private readonly outstanding = new Map<number, Outstanding>();
  /** When the client began to wait for the chunk it needs next. */
  private waitingSince = 0;
  private failure: Error | undefined;
  private readonly failing = new AbortController();
  /**
   * Aborted when the transfer fails: a writer waiting for a slow client to drain stops waiting, so the
   * response is cut at once instead of after the read-ahead already fetched has trickled out.
   */
  readonly failed: AbortSignal = this.failing.signal;
  private wakeUp: (() => void) | undefined;
  private pumpScheduled = false;
  /** This transfer's place in the pool's queue for room (see ServerPool.waitForRoom). */
  private readonly pumpWhenRoom = () => this.pump();
  private finished = false;
  private cancelled = false;

  /** This transfer's part of the gateway's read-ahead budget: chunks nextToDeliver..nextNew-1. */
  private readonly readAhead: ReadAheadShare | undefined;

  constructor(init: ChunkFetcherInit) {
    this.init = init;
    this.readAhead = init.budget?.open(this.pumpWhenRoom);
    this.logger = init.logger ?? silentLogger;
    this.now = init.now ?? (() => performance.now());
    this.firstChunk = Math.floor(init.firstByte / init.chunkSize);
    this.lastChunk = init.lastByte < init.firstByte ? this.firstChunk - 1 : Math.floor(init.lastByte / init.chunkSize);
    this.candidates = [...init.file.servers];
    this.affinity = [...this.candidates].sort();
    this.nextToDeliver = this.firstChunk;
    this.nextNew = this.firstChunk;
  }

  async *stream(): AsyncGenerator<Buffer, void, undefined> {
    const onPoolChange = () => {
      this.checkSources();
      this.schedulePump();
    };
    this.init.pool.changed.add(onPoolChange);
    const ticker = setInterval(() => this.tick(), TICK_MS);
    try {
      this.checkSources();
      while (this.nextToDeliver <= this.lastChunk && !this.cancelled) {
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
          const piece = this.trim(chunk, data);
          this.bytesDelivered += piece.length;
          yield piece;
          continue;
        }
        if (this.failure) throw this.failure;
        this.pump();
        if (!this.received.has(this.nextToDeliver) && !this.failure && !this.cancelled) {
          this.waitingSince = this.now();
          await new Promise<void>((resolve) => (this.wakeUp = resolve));
        }
      }
    } finally {
      this.finished = true;
      clearInterval(ticker);
      this.init.pool.changed.delete(onPoolChange);
      this.init.pool.stopWaitingForRoom(this.pumpWhenRoom);
      this.readAhead?.close();
      // Requests in flight run their course (see onAnswer); their handlers now do nothing but account.
      this.outstanding.clear();
      this.received.clear();
    }
  }

  /** Whether `cancel` ended the stream early. */
  get wasCancelled(): boolean {
    return this.cancelled;
  }

  /**
   * Ends the stream at once (its client left, or the gateway stops): a stream waiting for a chunk
   * returns now instead of at its stall timeout, and nothing more is asked for.
   */
  cancel(): void {
    if (this.finished || this.cancelled) return;
    this.cancelled = true;
    this.wake();
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
    if (this.failure) return;
    this.failure = error;
    this.failing.abort(error);
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

  /** Every TICK_MS: the stall deadline, hedges (time-driven, so not on the per-chunk path), and room freed by other transfers. */
  private tick(): void {
    if (this.finished || this.failure || this.cancelled) return;
    if (this.wakeUp && this.now() - this.waitingSince > this.init.stallTimeoutMs) {
      if (!this.anySourceInPool()) this.fail(new GatewayError('GW_ERR_SOURCES_GONE'));
      else this.fail(new GatewayError('GW_ERR_STALLED', `no chunk arrived for ${this.init.stallTimeoutMs} ms`));
      return;
    }
    this.pump();
    if (this.init.hedging !== false) this.hedge();
  }

  /**
   * Fails the transfer as soon as every server holding its version left the pool: said goodbye, was
   * dropped, or was evicted for missed heartbeats (a server back from a blackout registers anew, and
   * the client resumes against it with a Range request).
   */
  private checkSources(): void {
    if (this.finished || this.failure || this.anySourceInPool()) return;
    this.fail(new GatewayError('GW_ERR_SOURCES_GONE'));
  }

  private anySourceInPool(): boolean {
    for (const key of this.candidates) if (this.init.pool.get(key)) return true;
    return false;
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
      const chunk = this.retryOrder[0];
      if (chunk === undefined) break;
      const server = this.pickServer(this.retry.get(chunk));
      if (!server) return this.init.pool.waitForRoom(this.pumpWhenRoom);
      this.retryOrder.shift();
      this.retry.delete(chunk);
      this.stats.retransmissions++;
      this.request(chunk, 1, server);
    }
    for (;;) {
      const end = Math.min(this.lastChunk + 1, this.nextToDeliver + this.init.readAheadChunks);
      if (this.nextNew >= end) return;
      const wanted = end - this.nextNew;
      const remaining = this.lastChunk + 1 - this.nextNew;
      // The gateway's budget may allow fewer: then a shorter run goes out, to a busy server too, so a
      // transfer held to its minimum still moves. None allowed: queued until budget is released.
      const allowed = this.readAhead ? this.readAhead.affordable(wanted) : wanted;
      if (allowed === 0) return this.readAhead!.waitForBudget();
      const run = this.pickServerForRun(allowed, allowed < wanted ? Math.min(allowed, remaining) : remaining);
      if (!run) return this.init.pool.waitForRoom(this.pumpWhenRoom);
      this.readAhead?.take(run.count);
      this.request(this.nextNew, run.count, run.server);
      this.nextNew += run.count;
    }
  }

  /**
   * Who asks for the next run of new chunks, and how many. Each block of AFFINITY_BLOCK chunks
   * belongs to one server (by block number, over the sorted candidates), so every download of a
   * file asks each server for the same chunks: their MD5s and pages are cached there from the first
   * download on, as a CDN's consistent hashing keeps an object on one cache. Another server takes
   * the run only when the owner is gone or cooling, or when it would otherwise run dry itself.
   */
  private pickServerForRun(available: number, remaining: number): { server: PoolServer; count: number } | undefined {
    const toBlockEnd = AFFINITY_BLOCK - (this.nextNew % AFFINITY_BLOCK);
    const inBlock = Math.min(available, toBlockEnd);
    const neededInBlock = Math.min(remaining, toBlockEnd);
    const ownerKey = this.affinity[Math.floor(this.nextNew / AFFINITY_BLOCK) % this.affinity.length];
    const owner = ownerKey === undefined ? undefined : this.init.pool.get(ownerKey);
    const ownerUsable = owner !== undefined && owner.state === 'active';
    if (owner) {
      const run = runFor(owner, inBlock, neededInBlock);
      if (run) return run;
    }
    for (let i = 0; i < this.candidates.length; i++) {
      const index = (this.roundRobin + i) % this.candidates.length;
      const server = this.init.pool.get(this.candidates[index]!);
      if (!server || server === owner || (ownerUsable && server.inFlight >= runLengthOf(server))) continue;
      const run = runFor(server, inBlock, neededInBlock);
      if (!run) continue;
      this.roundRobin = index + 1;
      return run;
    }
    return undefined;
  }

  /**
   * A chunk still missing after twice the best round trip is asked of another server too, so one
   * slow or dead server cannot hold the stream. For the chunk the client waits for, at any time:
   * once more each time every copy in flight is that late again, up to MAX_COPIES, each copy to
   * another server and, like QUIC's probes, past a full congestion window. For every other chunk
   * in the endgame, once all are asked for ("stuck at 99.9%"): one second copy, window permitting.
   */
  private hedge(): void {
    const delay = 2 * this.bestRttMs() + 2;
    const now = this.now();
    const critical = this.outstanding.get(this.nextToDeliver);
    if (critical && critical.requests.size < MAX_COPIES && now - critical.lastSentAt >= delay * critical.requests.size) {
      const server = this.pickHedgeServer(critical);
      if (server) this.sendHedge(this.nextToDeliver, server);
    }
    if (this.nextNew <= this.lastChunk || this.retryOrder.length > 0) return;
    for (const [chunk, outstanding] of this.outstanding) {
      if (chunk === this.nextToDeliver || outstanding.requests.size !== 1 || now - outstanding.sentAt < delay) continue;
      const server = this.pickServer(outstanding.requests.values().next().value, true);
      if (!server) return;
      this.sendHedge(chunk, server);
    }
  }

  private sendHedge(chunk: number, server: PoolServer): void {
    this.stats.hedges++;
    this.request(chunk, 1, server);
  }

  /** An active server not yet asked for this chunk, one with room first. */
  private pickHedgeServer(outstanding: Outstanding): PoolServer | undefined {
    let fallback: PoolServer | undefined;
    for (let i = 0; i < this.candidates.length; i++) {
      const index = (this.roundRobin + i) % this.candidates.length;
      const server = this.init.pool.get(this.candidates[index]!);
      if (!server || server.state !== 'active' || isAsked(outstanding, server.key)) continue;
      if (server.hasRoom) return server;
      fallback ??= server;
    }
    return fallback;
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

  /** Asks `server` for chunks `first..first+count-1` in one datagram. */
  private request(first: number, count: number, server: PoolServer): void {
    const { path, version } = this.init.file;
    const chunkSize = this.init.chunkSize;
    const handlers: RequestHandlers[] = [];
    for (let i = 0; i < count; i++) {
      const chunk = first + i;
      handlers.push({
        onAnswer: (answer, from, digestOk) => this.onAnswer(chunk, firstId + i, answer, from, digestOk),
        onLost: (_reason, from) => this.onLost(chunk, firstId + i, from),
      });
    }
    const firstId = this.init.tracker.sendRun(server, (requestId) => ({ type: 'chunk-request', requestId, path, version, chunk: first, chunkSize, ...(count > 1 ? { count } : {}) }), handlers);
    this.stats.requests += count;
    const now = this.now();
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
    if (!this.retry.has(chunk)) {
      // Lowest first: the chunk that blocks delivery goes out before the others.
      let at = this.retryOrder.length;
      while (at > 0 && this.retryOrder[at - 1]! > chunk) at--;
      this.retryOrder.splice(at, 0, chunk);
    }
    this.retry.set(chunk, avoid);
    this.schedulePump();
  }

  private onLost(chunk: number, id: number, server: PoolServer): void {
    this.forgetRequest(chunk, id);
    this.requeue(chunk, server.key);
  }

  private onAnswer(chunk: number, id: number, answer: Packet, server: PoolServer, digestOk: boolean | undefined): void {
    this.forgetRequest(chunk, id);
    if (this.finished) return;
    if (answer.type === 'error') {
      if (answer.code === 'stale' || answer.code === 'not-found') this.doubt(server, answer.code);
      // Permissions will not change between two asks: believed at once, and never the server's fault.
      else if (answer.code === 'unreadable') this.dropCandidate(server, 'unreadable');
      else if (answer.code === 'io' && this.countReadError(server)) this.dropCandidate(server, 'io');
      this.requeue(chunk, server.key);
      return;
    }
    if (answer.type !== 'chunk' || answer.chunk !== chunk || !this.hasExpectedShape(chunk, answer.data, answer.hasNext) || !(digestOk ?? chunkDigestMatches(answer.data, answer.md5))) {
      this.stats.badChunks++;
      this.logger.warn('bad chunk discarded', { server: server.key, path: this.init.file.path, chunk });
      if (this.init.pool.onBadChunk(server, this.init.file.path)) this.dropCandidate(server, 'bad data');
      this.requeue(chunk, server.key);
      return;
    }
    this.init.pool.onGoodChunk(server, this.init.file.path, answer.data.length);
    if (this.doubted.size > 0) this.doubted.delete(server.key);
    if (this.isDone(chunk)) return;
    this.serversUsed.add(server.key);
    // Other copies of this request stay in flight: their server works on them anyway, and their
    // answer or timeout is what the pool learns that server's health and speed from.
    this.outstanding.delete(chunk);
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

  /**
   * The server says it lacks this version. Believed the second time in a row only: a request the
   * network corrupted (path, version or chunk number) draws the same answer once.
   */
  private doubt(server: PoolServer, why: 'stale' | 'not-found'): void {
    if (this.doubted.delete(server.key)) this.dropCandidate(server, why);
    else this.doubted.add(server.key);
  }

  /** Read errors (`io`) a server answered in this transfer; true when that makes READ_ERRORS_TO_DROP. */
  private countReadError(server: PoolServer): boolean {
    const errors = (this.readErrors.get(server.key) ?? 0) + 1;
    this.readErrors.set(server.key, errors);
    return errors >= READ_ERRORS_TO_DROP;
  }

  /**
   * The server cannot serve this version (it changed there, is gone, unreadable, or sent bad data):
   * never ask it again in this transfer. The last one gone fails the transfer at once, not at the stall timeout.
   */
  private dropCandidate(server: PoolServer, why: DropReason): void {
    const index = this.candidates.indexOf(server.key);
    if (index < 0) return;
    this.candidates.splice(index, 1);
    this.affinity.splice(this.affinity.indexOf(server.key), 1);
    this.logger.warn('server no longer serves the file version', { server: server.key, path: this.init.file.path, why });
    if (this.candidates.length === 0) this.fail(new GatewayError(FAILURE_OF[why]));
  }
}

/** A quarter of the server's window: one datagram asks for this many chunks. */
function runLengthOf(server: PoolServer): number {
  return Math.min(MAX_CHUNKS_PER_REQUEST, Math.max(1, Math.floor(server.window.size / 4)));
}

/** A run for `server` of up to `available` chunks; shorter than a full run only when it is idle or fewer are `needed`. */
function runFor(server: PoolServer, available: number, needed: number): { server: PoolServer; count: number } | undefined {
  const runLength = runLengthOf(server);
  const count = Math.min(server.room, available, runLength);
  if (count === 0 || (count < Math.min(runLength, needed) && server.inFlight > 0)) return undefined;
  return { server, count };
}

function isAsked(outstanding: Outstanding, serverKey: string): boolean {
  for (const key of outstanding.requests.values()) if (key === serverKey) return true;
  return false;
}
