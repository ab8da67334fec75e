import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MetaPacket } from '@httpgw/protocol';
import type { Logger } from '@httpgw/runtime';
import { LRUCache } from 'lru-cache';
import PQueue from 'p-queue';
import { ask } from '../udp/ask.js';
import type { RequestTracker } from '../udp/request-tracker.js';
import type { PoolServer, ServerPool } from '../pool/server-pool.js';
import type { HolderIndex } from './holder-index.js';

/** One version of a file and the servers that hold exactly that version. */
export interface FileVersion {
  path: string;
  size: number;
  mtimeMs: number;
  version: string;
  servers: string[];
  /** When servers reported this version (ms since the epoch): a cached response's age counts from it. */
  checkedAt?: number;
}

export type LookupResult =
  | { kind: 'file'; file: FileVersion }
  | { kind: 'directory'; servers: string[]; mtimeMs: number }
  | { kind: 'unreadable' }
  /** `answered`: the servers that said they do not have it. */
  | { kind: 'none'; answered?: string[] }
  | { kind: 'no-servers' };

export interface FileLookupInit {
  pool: ServerPool;
  tracker: RequestTracker;
  logger: Logger;
  /** The chunk size transfers ask for: servers compute a file's version from its chunks at this size. */
  chunkSize: number;
  /** How long an answer is reused for the same path; 0 asks the servers for every request. */
  cacheMs?: number;
  /**
   * For as long again after that, a file's answer is still used while a new lookup runs in the
   * background (RFC 5861's stale-while-revalidate): the requests of a hot file never all wait for a
   * round of questions once per `cacheMs`. Default true.
   */
  staleWhileRevalidate?: boolean;
  /**
   * Once one server has answered, the others get as long again as it took, time for one retransmission
   * (twice their RTO), and at least this long; then the lookup decides with the answers it has, so hung
   * servers cost a request milliseconds, not seconds.
   */
  graceMs?: number;
  /** A server still computing a file's digest (`busy`) is asked again until this long after the lookup began. */
  busyDeadlineMs?: number;
  /**
   * What each server holds (see HolderIndex). With a pool of at least `indexFrom` servers, a lookup
   * asks only the best LOOKUP_HOLDERS holders the index names and the servers it does not index yet;
   * a smaller pool is asked whole (it is cheap, and sees a new file at once).
   */
  index?: HolderIndex;
  /** Pool size from which the index narrows lookups (default 32). */
  indexFrom?: number;
  /** Told of every version a lookup decides on (the cache drops chunks of a file's older versions). */
  onVersion?: (file: FileVersion) => void;
  now?: () => number;
}

/**
 * Metadata requests in flight at most, all lookups together: a burst of lookups over a large pool
 * queues rather than sending thousands of datagrams at once (and overflowing the receive buffer
 * with the answers). A lookup decided early drops its queued asks.
 */
export const LOOKUP_FAN_OUT = 256;

/** Holders of a path asked in one lookup at most, when the index names more: half the fastest, half at random. */
export const LOOKUP_HOLDERS = 8;
/** Holders drawn at random from a path's many holders before choosing LOOKUP_HOLDERS of them (by RTT and at random). */
const HOLDER_SAMPLE = 64;
/** Holders of a path's last decided version asked first by the next lookup of it. */
const RECENT_HOLDERS = 2;
/** Holders agreeing on a version that decide a lookup the index planned, without waiting for the rest. */
const QUORUM = 2;
/** Asks queued per event-loop turn: a lookup over thousands of servers never blocks the loop for long. */
const ASKS_PER_TURN = 256;

type ServerAnswer = { server: PoolServer; meta: MetaPacket } | { server: PoolServer; unreadable: true };

/**
 * Asks every usable server at once what it holds at a path and picks one version: the one most
 * servers hold, the newest on a tie. A version is a digest of the content, so servers that disagree
 * on a single byte report different versions, and only holders of the chosen version serve it.
 */
export class FileLookup {
  private readonly cache: LRUCache<string, { result: LookupResult; freshUntil: number }> | undefined;
  private readonly cacheMs: number;
  /** Lookups in progress: concurrent requests for one path share one round of questions. */
  private readonly inProgress = new Map<string, Promise<LookupResult>>();
  private readonly init: FileLookupInit;
  private readonly now: () => number;
  private readonly fanOut = new PQueue({ concurrency: LOOKUP_FAN_OUT });
  /** Per path, the holders of the version decided last (a few): asked first next time. */
  private readonly recentHolders = new LRUCache<string, string[]>({ max: 10_000 });

  constructor(init: FileLookupInit) {
    this.init = init;
    this.now = init.now ?? (() => performance.now());
    this.cacheMs = init.cacheMs ?? 1_000;
    const keepMs = (init.staleWhileRevalidate ?? true) ? 2 * this.cacheMs : this.cacheMs;
    this.cache = this.cacheMs > 0 ? new LRUCache({ max: 10_000, ttl: keepMs, ttlAutopurge: false }) : undefined;
  }

  lookup(path: string): Promise<LookupResult> {
    let cached = this.cache?.get(path);
    // A version whose holders all left the pool is not what the servers report now, fresh or not:
    // ask again (no answer then means no server, and the cache may serve it stale, if allowed).
    if (cached?.result.kind === 'file' && !cached.result.file.servers.some((key) => this.init.pool.get(key))) {
      this.cache?.delete(path);
      cached = undefined;
    }
    if (cached && this.now() < cached.freshUntil) return Promise.resolve(cached.result);
    const pending = this.refresh(path);
    // Expired but young enough: a file's answer serves while the new one is asked for.
    return cached?.result.kind === 'file' ? Promise.resolve(cached.result) : pending;
  }

  /** One round of questions for `path` (shared by everyone who needs it meanwhile); its answer is cached. */
  private refresh(path: string): Promise<LookupResult> {
    let pending = this.inProgress.get(path);
    if (!pending) {
      pending = this.ask(path).then((result) => {
        if (result.kind !== 'no-servers') this.cache?.set(path, { result, freshUntil: this.now() + this.cacheMs });
        else this.cache?.delete(path);
        return result;
      });
      pending.finally(() => this.inProgress.delete(path)).catch(() => {});
      this.inProgress.set(path, pending);
    }
    return pending;
  }

  /** Forgets what is known of a path (its file changed under a transfer). */
  forget(path: string): void {
    this.cache?.delete(path);
  }

  /** Whom to ask: every usable server, or (a large pool with an index) the likely holders and the unindexed. */
  private candidates(path: string): { servers: PoolServer[]; byIndex: boolean; quorum: number } {
    const { pool, index } = this.init;
    if (!index || pool.size < (this.init.indexFrom ?? 32)) return { servers: pool.usable().filter((server) => !pool.distrusts(server, path)), byIndex: false, quorum: 0 };
    const open = (server: PoolServer) => !server.draining && !pool.distrusts(server, path);
    let { holders, unindexed } = index.plan(path, HOLDER_SAMPLE);
    // A sample of only draining or distrusted holders says nothing of the others: look at them all.
    if (!holders.some(open)) ({ holders, unindexed } = index.plan(path));
    const active = (server: PoolServer) => open(server) && server.state === 'active';
    const pick = (servers: PoolServer[]) => (servers.some(active) ? servers.filter(active) : servers.filter(open));
    // The holders that served this path last come first (their handles and digests are warm, as
    // the transfers' affinity keeps them), then a choice among the others.
    const recent = (this.recentHolders.get(path) ?? []).flatMap((key) => {
      const server = pool.get(key);
      return server && active(server) && index.holds(key, path) ? [server] : [];
    });
    const others = recent.length > 0 ? pick(holders).filter((server) => !recent.includes(server)) : pick(holders);
    const chosen = [...recent, ...chooseHolders(others, LOOKUP_HOLDERS - recent.length)];
    // Two holders agreeing decide (one when only one is asked), unless unindexed servers are asked too.
    const unindexedAsked = pick(unindexed);
    return { servers: [...chosen, ...unindexedAsked], byIndex: true, quorum: unindexedAsked.length === 0 ? Math.min(QUORUM, chosen.length) : 0 };
  }

  private ask(path: string): Promise<LookupResult> {
    const { servers, byIndex, quorum } = this.candidates(path);
    if (servers.length === 0) {
      // The complete index says nobody holds it: a "none" without a datagram. Every indexed server
      // counts as having answered (news of a deletion, for the stale cache).
      if (byIndex && this.init.pool.size > 0) return Promise.resolve({ kind: 'none', answered: [...(this.init.index?.indexedKeys() ?? [])] });
      return Promise.resolve({ kind: 'no-servers' });
    }
    const startedAt = this.now();
    const graceMs = this.init.graceMs ?? 25;
    return new Promise<LookupResult>((resolve) => {
      const answers: ServerAnswer[] = [];
      let decided = false;
      let grace: NodeJS.Timeout | undefined;
      const waitingFor = new Set(servers);
      /** Aborted once decided with servers still asked: their asks stop (no retransmission, no more `busy` rounds). */
      const stopAsking = new AbortController();
      // One listener per server asked (the queue's and ask's): a large pool is no leak.
      setMaxListeners(0, stopAsking.signal);
      let chosen: LookupResult | undefined;
      const decide = (stop = true) => {
        if (decided) return;
        decided = true;
        clearTimeout(grace);
        if (stop && waitingFor.size > 0) stopAsking.abort();
        // Decided early: the other holders get a second to join, then their asks stop too.
        else if (waitingFor.size > 0) setTimeout(() => stopAsking.abort(), 1_000).unref();
        chosen = this.decide(path, answers);
        resolve(chosen);
      };
      const versionKey = (meta: MetaPacket) => `${meta.version}|${meta.size}`;
      const askOne = (server: PoolServer) => {
        const asked = this.fanOut.add(() => this.askServer(server, path, startedAt, stopAsking.signal), { signal: stopAsking.signal });
        void asked.catch(() => undefined).then((answer) => {
          waitingFor.delete(server);
          if (decided) {
            // A holder answering after an early decision still joins the version it holds (for the
            // lookups the answer is cached for), and is then no longer asked.
            if (chosen?.kind === 'file' && answer && 'meta' in answer && answer.meta.kind === 'file' && versionKey(answer.meta) === `${chosen.file.version}|${chosen.file.size}`) {
              if (!chosen.file.servers.includes(server.key)) chosen.file.servers.push(server.key);
            }
            return;
          }
          if (answer) answers.push(answer);
          if (waitingFor.size === 0) return decide();
          if (!answer) return;
          // The holders the index named agree: decide on the first consistent answers, without
          // waiting out the slowest of them (the others may still join, above).
          if (quorum > 0 && 'meta' in answer && answer.meta.kind === 'file') {
            const key = versionKey(answer.meta);
            if (answers.filter((other) => 'meta' in other && other.meta.kind === 'file' && versionKey(other.meta) === key).length >= quorum) return decide(false);
          }
          if (grace) return;
          let rtoMs = 0;
          for (const other of waitingFor) rtoMs = Math.max(rtoMs, other.rtt.rtoMs);
          grace = setTimeout(decide, Math.max(graceMs, this.now() - startedAt, 2 * rtoMs));
        });
      };
      // A few hundred asks per turn of the event loop: HTTP and the answers get their turns between.
      const enqueue = (from: number) => {
        if (decided) return;
        for (const server of servers.slice(from, from + ASKS_PER_TURN)) askOne(server);
        if (from + ASKS_PER_TURN < servers.length) setImmediate(() => enqueue(from + ASKS_PER_TURN));
      };
      enqueue(0);
    }).then((result) => {
      if (byIndex && result.kind === 'none') return { kind: 'none' as const, answered: [...(result.answered ?? []), ...(this.init.index?.indexedKeys() ?? [])] };
      return result;
    });
  }

  /**
   * One server's answer: asked again while it is `busy` computing the file's digest; undefined if it
   * never answers, or once `signal` says the lookup is decided.
   */
  private async askServer(server: PoolServer, path: string, startedAt: number, signal: AbortSignal): Promise<ServerAnswer | undefined> {
    const chunkSize = this.init.chunkSize;
    for (let pause = 10; ; pause = Math.min(2 * pause, 200)) {
      const answer = await ask(this.init.tracker, server, (requestId) => ({ type: 'meta-request', requestId, path, chunkSize }), undefined, signal);
      if (answer?.type === 'meta') return { server, meta: answer };
      if (answer?.type === 'error' && answer.code === 'unreadable') return { server, unreadable: true };
      const busy = answer?.type === 'error' && answer.code === 'busy';
      if (!busy || signal.aborted || this.now() - startedAt > (this.init.busyDeadlineMs ?? 30_000)) return undefined;
      try {
        await sleep(pause, undefined, { signal });
      } catch {
        return undefined; // decided meanwhile
      }
    }
  }

  private decide(path: string, answers: ServerAnswer[]): LookupResult {
    if (answers.length === 0) return { kind: 'no-servers' };
    const metas = answers.filter((answer): answer is { server: PoolServer; meta: MetaPacket } => 'meta' in answer);
    const files = metas.filter(({ meta }) => meta.kind === 'file');
    if (files.length > 0) {
      const file = this.chooseVersion(path, files);
      this.recentHolders.set(path, file.servers.slice(0, RECENT_HOLDERS));
      this.init.onVersion?.(file);
      return { kind: 'file', file };
    }
    if (metas.length < answers.length) {
      this.init.logger.warn('file exists but its servers cannot read it', { path, servers: answers.length - metas.length });
      return { kind: 'unreadable' };
    }
    const directories = metas.filter(({ meta }) => meta.kind === 'directory');
    if (directories.length > 0) {
      return { kind: 'directory', servers: directories.map(({ server }) => server.key), mtimeMs: Math.max(...directories.map(({ meta }) => meta.mtimeMs)) };
    }
    return { kind: 'none', answered: metas.map(({ server }) => server.key) };
  }

  private chooseVersion(path: string, files: Array<{ server: PoolServer; meta: MetaPacket }>): FileVersion {
    // A version is the version string with the size it came with: a server that reports the same
    // string with another size is not mixed in (nor trusted to set the Content-Length).
    const versions = new Map<string, FileVersion>();
    for (const { server, meta } of files) {
      const key = `${meta.version}|${meta.size}`;
      let entry = versions.get(key);
      if (!entry) {
        entry = { path, size: meta.size, mtimeMs: meta.mtimeMs, version: meta.version, servers: [], checkedAt: Date.now() };
        versions.set(key, entry);
      }
      // Copies of the same bytes may carry other times: the newest stands for them all.
      entry.mtimeMs = Math.max(entry.mtimeMs, meta.mtimeMs);
      entry.servers.push(server.key);
    }
    const ranked = [...versions.values()].sort((a, b) => b.servers.length - a.servers.length || b.mtimeMs - a.mtimeMs || (a.version < b.version ? -1 : 1));
    if (ranked.length > 1) {
      this.init.logger.warn('servers disagree about a file; serving one version only', {
        path,
        chosen: ranked[0]!.version,
        versions: ranked.map((entry) => `${entry.version}@${entry.servers.join('+')}`).join(','),
      });
    }
    return ranked[0]!;
  }
}

/**
 * `count` of `holders` at most: half with the lowest smoothed RTT (servers never asked count as
 * slow), the rest at random, so the fastest do not get every lookup and every transfer.
 */
export function chooseHolders(holders: PoolServer[], count: number, random: () => number = Math.random): PoolServer[] {
  if (holders.length <= count) return holders;
  const fastest: PoolServer[] = [];
  const srtt = (server: PoolServer) => server.rtt.smoothedMs ?? Number.POSITIVE_INFINITY;
  const fast = Math.ceil(count / 2);
  for (const server of holders) {
    if (fastest.length < fast) fastest.push(server);
    else if (srtt(server) < srtt(fastest[fast - 1]!)) fastest[fast - 1] = server;
    else continue;
    fastest.sort((a, b) => (srtt(a) === srtt(b) ? 0 : srtt(a) - srtt(b)));
  }
  const chosen = new Set(fastest);
  // Random picks among the rest: a few tries each, so a pool of holders much larger than count costs O(count).
  for (let tries = 0; chosen.size < count && tries < 8 * count; tries++) chosen.add(holders[Math.floor(random() * holders.length)]!);
  return [...chosen];
}
