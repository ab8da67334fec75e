import { MAX_CHUNKS_PER_REQUEST } from '@httpgw/protocol';
import type { PoolServer, ServerPool } from '../pool/server-pool.js';

/** Chunks per block of server affinity (see SourceChoice.forRun): a full run at the largest default window. */
export const AFFINITY_BLOCK = 16;
/** `io` errors from one server in one transfer before it is no longer asked: a disk error repeats. */
const READ_ERRORS_TO_DROP = 3;

export type DropReason = 'stale' | 'not-found' | 'unreadable' | 'io' | 'bad data';

export interface Run {
  server: PoolServer;
  count: number;
}

/**
 * Which server one transfer asks: its candidates (the servers holding its file version, in the
 * lookup's order) and, over them, the affinity order, the round-robin position, and which of them
 * stopped serving the version. Every choice walks the candidates in round-robin order (`first`).
 */
export class SourceChoice {
  private readonly candidates: string[];
  /** The candidates in a fixed order (by key), so block n has the same owner in every download. */
  private readonly affinity: string[];
  /** Servers that said once that they lack this version: a second time and they are dropped. */
  private readonly doubted = new Set<string>();
  private readonly readErrors = new Map<string, number>();

  /**
   * @param roundRobin where round-robin starts: each transfer one further (Transfers counts), so
   * one-chunk files spread over the servers too.
   */
  constructor(
    servers: readonly string[],
    private readonly pool: ServerPool,
    private roundRobin = 0,
  ) {
    this.candidates = [...servers];
    this.affinity = [...servers].sort();
  }

  /** Whether a candidate is still in the pool. */
  anyInPool(): boolean {
    for (const key of this.candidates) if (this.pool.get(key)) return true;
    return false;
  }

  get isEmpty(): boolean {
    return this.candidates.length === 0;
  }

  /** The best smoothed round trip among the candidates (10 ms while none has one). */
  bestRttMs(): number {
    let best = Number.POSITIVE_INFINITY;
    for (const key of this.candidates) best = Math.min(best, this.pool.get(key)?.rtt.smoothedMs ?? Number.POSITIVE_INFINITY);
    return Number.isFinite(best) ? best : 10;
  }

  /**
   * Who asks for the next run of new chunks from chunk `first` on, and how many. Each block of
   * AFFINITY_BLOCK chunks belongs to one server (by block number, over the sorted candidates), so
   * every download of a file asks each server for the same chunks: their MD5s and pages are cached
   * there from the first download on, as a CDN's consistent hashing keeps an object on one cache.
   * Another server takes the run only when the owner is gone or cooling, or when it would otherwise
   * run dry itself.
   *
   * Unequal servers: a server is asked only for what it will deliver by the time the client needs it
   * (`due`: see RunTiming), by its delivery rate and round trip, so a slow or distant server gets
   * chunks far enough ahead, or none. When nobody would be in time, the run goes to whoever will be
   * first, if it has room; else the transfer waits for room (earliest completion first, as in
   * multipath TCP's ECF scheduler). Among equals nothing changes: all are in time.
   */
  forRun(first: number, available: number, remaining: number, timing?: RunTiming): Run | undefined {
    const toBlockEnd = AFFINITY_BLOCK - (first % AFFINITY_BLOCK);
    const inBlock = Math.min(available, toBlockEnd);
    const neededInBlock = Math.min(remaining, toBlockEnd);
    const ownerKey = this.affinity[Math.floor(first / AFFINITY_BLOCK) % this.affinity.length];
    const owner = ownerKey === undefined ? undefined : this.pool.get(ownerKey);
    const ownerUsable = owner !== undefined && owner.state === 'active' && !owner.draining;
    const dueMs = timing === undefined ? Number.POSITIVE_INFINITY : this.dueMs(timing);
    const chunkBytes = timing?.chunkBytes ?? 0;
    const ownerInTime = owner === undefined ? 0 : inTime(owner, dueMs, chunkBytes);
    if (owner) {
      const run = runFor(owner, inBlock, neededInBlock, ownerInTime);
      if (run) return run;
      // Not in time by its estimate, but idle and not asked lately: a probe of two chunks, whose answers
      // are a sample that can raise the estimate (one that never gets work would never be measured again).
      if (timing && ownerUsable && owner.inFlight === 0 && owner.room >= PROBE_CHUNKS && timing.now - owner.lastAskedAt >= PROBE_INTERVAL_MS && inBlock >= PROBE_CHUNKS) return { server: owner, count: PROBE_CHUNKS };
    }
    // An owner that is busy but in time keeps its block unless another server would run dry.
    const ownerWillServe = ownerUsable && ownerInTime > 0;
    const run = this.first((server) => (server === owner || (ownerWillServe && server.inFlight >= runLengthOf(server)) ? undefined : runFor(server, inBlock, neededInBlock, inTime(server, dueMs, chunkBytes))), true);
    if (run) return run;
    // Late whoever takes it: the one that will be least late, for what it delivers before the next best would.
    const { soonest, nextBestMs } = this.soonest(chunkBytes);
    if (!soonest?.hasRoom) return undefined;
    return { server: soonest, count: Math.min(soonest.room, inBlock, runLengthOf(soonest), Math.max(1, inTime(soonest, nextBestMs, chunkBytes))) };
  }

  /**
   * In how many ms the client will need chunk `ahead` places past the one it waits for: at the rate
   * this transfer receives (or, before that is measured, the candidates' delivery rates together, or
   * before any is, PRIOR_RATE).
   */
  private dueMs(timing: RunTiming): number {
    let rate = timing.receiveRate;
    if (rate === undefined) {
      let sum = 0;
      for (const key of this.candidates) sum += this.pool.get(key)?.delivery.bytesPerMs ?? 0;
      if (sum > 0) rate = sum;
    }
    return (timing.ahead * timing.chunkBytes) / (rate ?? PRIOR_RATE) + (timing.slackMs ?? DUE_SLACK_MS);
  }

  /** The usable candidate whose next chunk would arrive first (waiting for room included), and when the next best's would. */
  private soonest(chunkBytes: number): { soonest: PoolServer | undefined; nextBestMs: number } {
    let soonest: PoolServer | undefined;
    let bestMs = Number.POSITIVE_INFINITY;
    let nextBestMs = Number.POSITIVE_INFINITY;
    for (const key of this.candidates) {
      const server = this.pool.get(key);
      if (!server || server.state !== 'active' || server.draining) continue;
      const ms = arrivalMs(server, 1, chunkBytes);
      if (ms < bestMs) {
        [soonest, nextBestMs, bestMs] = [server, bestMs, ms];
      } else nextBestMs = Math.min(nextBestMs, ms);
    }
    return { soonest, nextBestMs };
  }

  /**
   * Next candidate with room, round-robin; `avoid` only when nothing else has room, unless `strict`.
   * With `chunkBytes` (a chunk asked again: the client may wait for it), the one with room whose
   * answer would come first by its queue and delivery rate, as among equals round-robin still does.
   */
  withRoom(avoid: string | undefined, strict = false, chunkBytes?: number): PoolServer | undefined {
    let fallback: PoolServer | undefined;
    let best: PoolServer | undefined;
    let bestMs = Number.POSITIVE_INFINITY;
    const found = this.first((server) => {
      if (!server.hasRoom) return undefined;
      if (server.key === avoid) {
        fallback = server;
        return undefined;
      }
      if (chunkBytes === undefined || server.delivery.bytesPerMs === undefined) return server;
      const ms = arrivalMs(server, 1, chunkBytes);
      if (ms < bestMs) [best, bestMs] = [server, ms];
      return undefined;
    }, true);
    return found ?? best ?? (strict ? undefined : fallback);
  }

  /** An active candidate not yet asked for a chunk (`asked`: request id → server key), one with room first. */
  forHedge(asked: ReadonlyMap<number, string>): PoolServer | undefined {
    let fallback: PoolServer | undefined;
    const found = this.first((server) => {
      if (server.state !== 'active' || server.draining || isAsked(asked, server.key)) return undefined;
      if (server.hasRoom) return server;
      fallback ??= server;
      return undefined;
    }, false);
    return found ?? fallback;
  }

  /**
   * An error answer from `server`: the reason to drop it, when that answer makes one. Permissions
   * will not change between two asks: `unreadable` is believed at once, and never the server's fault.
   */
  judge(server: PoolServer, code: string): DropReason | undefined {
    if (code === 'stale' || code === 'not-found') return this.doubt(server, code);
    if (code === 'unreadable') return 'unreadable';
    if (code === 'io' && this.countReadError(server)) return 'io';
    return undefined;
  }

  /** A good chunk from `server`: it holds the version after all. */
  trust(server: PoolServer): void {
    if (this.doubted.size > 0) this.doubted.delete(server.key);
  }

  /** Never asks `key` again in this transfer; false when it was no candidate (any more). */
  drop(key: string): boolean {
    const index = this.candidates.indexOf(key);
    if (index < 0) return false;
    this.candidates.splice(index, 1);
    this.affinity.splice(this.affinity.indexOf(key), 1);
    return true;
  }

  /**
   * The candidates in the pool in round-robin order, from the current position: the first thing
   * `visit` returns for one of them. `advance`: the next walk starts after the one it came from.
   */
  private first<T>(visit: (server: PoolServer) => T | undefined, advance: boolean): T | undefined {
    const count = this.candidates.length;
    for (let i = 0; i < count; i++) {
      const index = (this.roundRobin + i) % count;
      const server = this.pool.get(this.candidates[index]!);
      if (!server) continue;
      const found = visit(server);
      if (found === undefined) continue;
      if (advance) this.roundRobin = index + 1;
      return found;
    }
    return undefined;
  }

  /**
   * The server says it lacks this version. Believed the second time in a row only: a request the
   * network corrupted (path, version or chunk number) draws the same answer once.
   */
  private doubt(server: PoolServer, why: 'stale' | 'not-found'): DropReason | undefined {
    if (this.doubted.delete(server.key)) return why;
    this.doubted.add(server.key);
    return undefined;
  }

  /** Read errors (`io`) a server answered in this transfer; true when that makes READ_ERRORS_TO_DROP. */
  private countReadError(server: PoolServer): boolean {
    const errors = (this.readErrors.get(server.key) ?? 0) + 1;
    this.readErrors.set(server.key, errors);
    return errors >= READ_ERRORS_TO_DROP;
  }
}

/** A quarter of the server's window: one datagram asks for this many chunks. */
export function runLengthOf(server: PoolServer): number {
  return Math.min(MAX_CHUNKS_PER_REQUEST, Math.max(1, Math.floor(server.window.size / 4)));
}

/**
 * A run for `server` of up to `available` chunks, and at most `inTime` (what it delivers in time);
 * shorter than a full run only when it is idle, fewer are `needed`, or more would come too late.
 */
function runFor(server: PoolServer, available: number, needed: number, inTime = Number.POSITIVE_INFINITY): Run | undefined {
  const runLength = runLengthOf(server);
  const count = Math.min(server.room, available, runLength, inTime);
  if (count <= 0 || (count < Math.min(runLength, needed, inTime) && server.inFlight > 0)) return undefined;
  return { server, count };
}

/** How this transfer's timing looks to the scheduler (see SourceChoice.forRun). */
export interface RunTiming {
  /** Chunks between the one the client waits for and the run's first. */
  ahead: number;
  chunkBytes: number;
  /** Bytes per ms this transfer received lately; undefined until measured. */
  receiveRate: number | undefined;
  /** The clock of the pool's servers' `lastAskedAt`. */
  now: number;
  /** Leeway on due times (default DUE_SLACK_MS): how late a server may be before it loses a chunk. */
  slackMs?: number;
}

/** An idle owner not asked for this long is probed with PROBE_CHUNKS chunks, in time or not. */
const PROBE_INTERVAL_MS = 100;
const PROBE_CHUNKS = 2;

/** Bytes per ms assumed before any rate is measured (100 MB/s): due times for a fresh gateway's first transfer. */
const PRIOR_RATE = 100_000;

/** Leeway on the due time: a timer's grain and the answer's trip through the gateway. */
const DUE_SLACK_MS = 2;

/** When a run of `count` chunks asked of `server` now would be in: behind what it has in flight, at its delivery rate. */
function arrivalMs(server: PoolServer, count: number, chunkBytes: number): number {
  const rate = server.delivery.bytesPerMs;
  const base = server.rtt.minMs ?? 0;
  return rate === undefined ? base : base + ((server.inFlight + count) * chunkBytes) / rate;
}

/**
 * How many more chunks `server` would deliver by `dueMs`. While its rate is unknown: any number if
 * its round trip is in time (it gets work, and so a rate), else none.
 */
function inTime(server: PoolServer, dueMs: number, chunkBytes: number): number {
  const rate = server.delivery.bytesPerMs;
  const base = server.rtt.minMs ?? 0;
  if (rate === undefined || !Number.isFinite(dueMs)) return base <= dueMs ? Number.POSITIVE_INFINITY : 0;
  return Math.floor(((dueMs - base) * rate) / chunkBytes) - server.inFlight;
}

function isAsked(asked: ReadonlyMap<number, string>, serverKey: string): boolean {
  for (const key of asked.values()) if (key === serverKey) return true;
  return false;
}
