import { Listeners, formatHostPort, type Logger, silentLogger } from '@httpgw/runtime';
import { CongestionWindow, type CongestionWindowInit } from '../udp/congestion-window.js';
import { DeliveryRate } from '../udp/delivery-rate.js';
import { RttEstimator, type RttEstimatorInit } from '../udp/rtt-estimator.js';

export interface ServerPoolInit {
  /** Timeout events in a row, with no answer between, that send a server to cool down (nginx max_fails). */
  maxFails?: number;
  /** How long a failing server rests before it is tried again (nginx fail_timeout). */
  coolDownMs?: number;
  /**
   * Bad chunks (wrong MD5, length or number) of one file a server may send beyond its good ones before
   * it loses that file (it is not asked for it again for `banMs`): each bad chunk counts one up, each
   * good one one down, never below zero. A server that only lies about a file loses it after this
   * many; a path that corrupts a few percent never does.
   */
  maxBadChunks?: number;
  /** Files a server may lose for bad data (within `banMs` of each other) before it is dropped and banned whole. */
  maxBadFiles?: number;
  banMs?: number;
  /** Interval file servers are told to heartbeat at; three missed ones and a server leaves the pool. */
  heartbeatMs?: number;
  /**
   * Heartbeats per second the whole pool may send (default 400): a larger pool is told a longer
   * interval (1,000 servers: 2.5 s, 10,000: 25 s), so that keeping it costs the gateway the same
   * whatever its size (a heartbeat and its ack cost the gateway about 100 µs on the bench machine).
   */
  maxHeartbeatRate?: number;
  maxServers?: number;
  rtt?: RttEstimatorInit;
  window?: CongestionWindowInit;
  logger?: Logger;
  now?: () => number;
}

export type ServerState = 'active' | 'cooling';
/** Why a server left: it said goodbye, missed its heartbeats, or was banned for bad data. */
export type RemovalReason = 'left' | 'evicted' | 'dropped';

/** One registered file server, addressed at the source address its registration came from. */
export class PoolServer {
  readonly key: string;
  state: ServerState = 'active';
  /** Set by an operator (admin API): no new chunk requests go to it; those in flight finish. */
  draining = false;
  coolingUntil = 0;
  inFlight = 0;
  /** When a chunk request last went to it (the scheduler probes a server it has not asked lately). */
  lastAskedAt = Number.NEGATIVE_INFINITY;
  consecutiveTimeouts = 0;
  /** When the last timeout was noticed: requests sent before it belong to the same loss event. */
  lastTimeoutAt = Number.NEGATIVE_INFINITY;
  /** Per file path, bad chunks not yet outweighed by good ones (see `maxBadChunks`). */
  readonly badChunksByPath = new Map<string, number>();
  /** Files this server lost for bad data, until when (see `maxBadFiles`). */
  readonly distrusted = new Map<string, number>();
  lastSeen: number;
  /** The heartbeat interval this server was told last: it is evicted after three of them in silence. */
  heartbeatMs = 0;
  readonly rtt: RttEstimator;
  readonly window: CongestionWindow;
  /** Bytes per ms of chunk data it delivered lately: scheduling sends each server what it will deliver in time. */
  readonly delivery = new DeliveryRate();
  readonly stats = { answers: 0, timeouts: 0, retransmissions: 0, badChunks: 0, bytes: 0 };

  constructor(
    readonly address: string,
    readonly port: number,
    readonly name: string,
    now: number,
    init: ServerPoolInit,
  ) {
    this.key = serverKey(address, port);
    this.lastSeen = now;
    this.rtt = new RttEstimator(init.rtt);
    this.window = new CongestionWindow(init.window);
  }

  /** Requests that may be sent now: the open part of the window, or one probe when cooling and idle; none when draining. */
  get room(): number {
    if (this.draining) return 0;
    if (this.state === 'active') return Math.max(0, this.window.size - this.inFlight);
    return this.inFlight === 0 ? 1 : 0;
  }

  get hasRoom(): boolean {
    return this.room > 0;
  }
}

/** `address:port`, `[v6]:port` for IPv6: the server's name in the pool, its logs and the stats. */
export function serverKey(address: string, port: number): string {
  return formatHostPort(address, port);
}

export interface PoolCounters {
  admitted: number;
  readmitted: number;
  left: number;
  evicted: number;
  dropped: number;
  coolDowns: number;
  /** Times a server lost one file for bad data (see onBadChunk). */
  filesLost: number;
  /** Registrations refused because the pool was full (`--max-servers`). */
  refusedFull: number;
}

/**
 * The servers in the pool and their health, in the manner of an nginx upstream: passive health from
 * timeouts and bad data, active health from heartbeats. A failing server cools down and is tried
 * again, never removed for good; lacking a file is no failure. `removed` fires (server, reason) when
 * a server leaves, and `changed` when one joins, leaves or is back from a cool-down, so waiting
 * transfers can go on.
 */
export class ServerPool {
  /** A server joined, left, or is back from a cool-down. */
  readonly changed = new Listeners<[]>();
  /** A server left the pool, and why. */
  readonly removed = new Listeners<[PoolServer, RemovalReason]>();
  /** A server joined the pool. */
  readonly added = new Listeners<[PoolServer]>();
  private readonly servers = new Map<string, PoolServer>();
  private readonly banned = new Map<string, number>();
  private readonly known = new Set<string>();
  private readonly init: ServerPoolInit;
  private readonly logger: Logger;
  private readonly now: () => number;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Transfers waiting for room, in the order they came (see waitForRoom). */
  private readonly roomWaiters = new Set<() => void>();
  readonly counters: PoolCounters = { admitted: 0, readmitted: 0, left: 0, evicted: 0, dropped: 0, coolDowns: 0, filesLost: 0, refusedFull: 0 };
  readonly heartbeatMs: number;

  constructor(init: ServerPoolInit = {}) {
    this.init = init;
    this.logger = init.logger ?? silentLogger;
    this.now = init.now ?? (() => performance.now());
    this.heartbeatMs = init.heartbeatMs ?? 1_000;
  }

  get size(): number {
    return this.servers.size;
  }

  get maxServers(): number {
    return this.init.maxServers ?? 1_024;
  }

  /** The interval servers are told now: the configured one, longer when the pool would heartbeat faster than maxHeartbeatRate. */
  get currentHeartbeatMs(): number {
    const byRate = Math.ceil((this.servers.size / (this.init.maxHeartbeatRate ?? 400)) * 10) * 100;
    return Math.max(this.heartbeatMs, byRate);
  }

  /** Whether a server not in the pool would be refused now. */
  isFull(address: string, port: number): boolean {
    return !this.servers.has(serverKey(address, port)) && this.servers.size >= this.maxServers;
  }

  get(key: string): PoolServer | undefined {
    return this.servers.get(key);
  }

  list(): PoolServer[] {
    return [...this.servers.values()];
  }

  /** Servers worth asking for metadata: everything registered that is not cooling down (nor draining, ever). */
  usable(): PoolServer[] {
    const open = this.list().filter((server) => !server.draining);
    const usable = open.filter((server) => server.state === 'active');
    return usable.length > 0 ? usable : open;
  }

  /**
   * An operator takes `server` out of rotation (HAProxy's `drain`): it gets no new requests and no
   * new lookups; requests in flight finish. It stays registered (heartbeats keep it) until it leaves
   * or is evicted; a server that registers again after leaving starts undrained.
   */
  drain(server: PoolServer): void {
    if (server.draining) return;
    server.draining = true;
    this.logger.info('server draining', { server: server.key, inFlight: server.inFlight });
    this.changed.emit();
  }

  isBanned(address: string, port: number): boolean {
    const until = this.banned.get(serverKey(address, port));
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.banned.delete(serverKey(address, port));
    return false;
  }

  /** Admits (or refreshes) a server that proved its address. Returns undefined when the pool is full. */
  admit(address: string, port: number, name: string): PoolServer | undefined {
    const key = serverKey(address, port);
    const existing = this.servers.get(key);
    if (existing) {
      existing.lastSeen = this.now();
      return existing;
    }
    if (this.servers.size >= this.maxServers) {
      // Counted, not logged one by one: the registrar sums refusals up in one line per interval.
      this.counters.refusedFull++;
      return undefined;
    }
    const server = new PoolServer(address, port, name, this.now(), this.init);
    this.servers.set(key, server);
    const again = this.known.has(key);
    this.known.add(key);
    if (again) this.counters.readmitted++;
    else this.counters.admitted++;
    this.logger.info(again ? 'server admitted again' : 'server admitted', { server: key, serverName: name, servers: this.servers.size });
    this.startSweeping();
    this.added.emit(server);
    this.changed.emit();
    return server;
  }

  /** Any datagram from a server proves it alive; a heartbeat also ends a cool-down that has run out. */
  touch(server: PoolServer): void {
    server.lastSeen = this.now();
    this.endCoolDownIfDue(server);
  }

  remove(server: PoolServer, reason: RemovalReason, detail: string): void {
    if (this.servers.get(server.key) !== server) return;
    this.servers.delete(server.key);
    this.counters[reason]++;
    this.logger.warn(`server ${reason}`, { server: server.key, why: detail, servers: this.servers.size });
    if (this.servers.size === 0) this.stopSweeping();
    this.removed.emit(server, reason);
    this.changed.emit();
  }

  /**
   * An answer, `rttMs` after its request went out at `sentAt`. `unqueued`: nothing else was in
   * flight to the server then. `pathOnly`: a metadata answer that overtook chunk requests waiting
   * at the server: it tells the path's round trip, not what a chunk request waits (the RTO), so only
   * the least round trip learns from it. `data`: a chunk; only data grows the window (an error such
   * as `busy` comes back at once and says nothing of how much the server can take). Positional, not
   * an options object: this runs once per chunk.
   */
  onAnswer(server: PoolServer, sentAt: number, rttMs: number, unqueued = false, pathOnly = false, data = true): void {
    server.stats.answers++;
    server.consecutiveTimeouts = 0;
    if (pathOnly) server.rtt.sampleMin(rttMs, this.now());
    else server.rtt.sample(rttMs, this.now(), unqueued);
    // Grown only while it limits what is in flight (RFC 7661): a window the scheduler leaves half
    // empty would otherwise grow without bound, and a burst of retries could fill it to any depth.
    if (data && server.inFlight + 1 >= server.window.size / 2) server.window.onAnswer(sentAt, rttMs - (server.rtt.minMs ?? rttMs));
    if (server.state === 'cooling') this.endCoolDown(server, 'answered');
  }

  onTimeout(server: PoolServer, sentAt: number): void {
    server.stats.timeouts++;
    server.window.onLoss(sentAt, this.now());
    // A burst of timeouts from one event (a blackout, a full socket buffer) counts once towards
    // backoff and health: only requests sent after the previous timeout was noticed count again.
    if (sentAt <= server.lastTimeoutAt) return;
    server.lastTimeoutAt = this.now();
    server.consecutiveTimeouts++;
    server.rtt.onTimeout();
    const maxFails = this.init.maxFails ?? 6;
    if (server.state === 'active' && server.consecutiveTimeouts >= maxFails) {
      server.state = 'cooling';
      server.coolingUntil = this.now() + (this.init.coolDownMs ?? 3_000);
      this.counters.coolDowns++;
      this.logger.warn('server cooling down after timeouts', { server: server.key, timeouts: server.consecutiveTimeouts, ms: this.init.coolDownMs ?? 3_000 });
    }
  }

  /**
   * A request given up on by timeout was answered after all, `rttMs` after it was sent: a round trip
   * the RTO must learn, and no failure; the window it cost is given back.
   */
  onSpuriousTimeout(server: PoolServer, sentAt: number, rttMs: number): void {
    server.rtt.sample(rttMs, this.now());
    server.window.undoLoss(sentAt);
    server.consecutiveTimeouts = 0;
  }

  /** A loss inferred from reordering: the window shrinks, but it says nothing about the server's health. */
  onLoss(server: PoolServer, sentAt: number): void {
    server.window.onLoss(sentAt, this.now());
  }

  /** The server sent a chunk of `path` that checked out. */
  onGoodChunk(server: PoolServer, path: string, bytes: number): void {
    server.stats.bytes += bytes;
    if (server.badChunksByPath.size === 0) return;
    const bad = server.badChunksByPath.get(path);
    if (bad === undefined) return;
    if (bad <= 1) server.badChunksByPath.delete(path);
    else server.badChunksByPath.set(path, bad - 1);
  }

  /**
   * The server answered with a chunk of `path` that failed its MD5, or had the wrong length or number.
   * Proportionate: it loses that file first (returns true then), and only a server that keeps sending
   * bad data of several files is dropped and banned. One file's trouble never costs the others.
   */
  onBadChunk(server: PoolServer, path: string): boolean {
    server.stats.badChunks++;
    // Answers to requests sent before it lost the file are still on their way: they count once.
    if (this.distrusts(server, path)) return true;
    const bad = (server.badChunksByPath.get(path) ?? 0) + 1;
    if (bad < (this.init.maxBadChunks ?? 3)) {
      server.badChunksByPath.set(path, bad);
      return false;
    }
    server.badChunksByPath.delete(path);
    const banMs = this.init.banMs ?? 60_000;
    const now = this.now();
    server.distrusted.set(path, now + banMs);
    for (const [lost, until] of server.distrusted) if (until <= now) server.distrusted.delete(lost);
    this.counters.filesLost++;
    this.logger.warn('server lost a file for bad data', { server: server.key, path, ms: banMs, filesLost: server.distrusted.size });
    if (server.distrusted.size >= (this.init.maxBadFiles ?? 3)) this.ban(server, banMs, `bad data in ${server.distrusted.size} files`);
    return true;
  }

  /** Whether `server` lost `path` for bad data (and is not to be asked for it yet). */
  distrusts(server: PoolServer, path: string): boolean {
    if (server.distrusted.size === 0) return false;
    const until = server.distrusted.get(path);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    server.distrusted.delete(path);
    return false;
  }

  private ban(server: PoolServer, banMs: number, why: string): void {
    this.banned.set(server.key, this.now() + banMs);
    if (this.servers.size === 1) {
      // Never silently: an empty pool answers 503 to every request until someone registers again.
      this.logger.error('banning the last server in the pool: every request fails until a server registers', { server: server.key, why });
    }
    this.remove(server, 'dropped', `${why}; banned for ${banMs} ms`);
  }

  close(): void {
    this.stopSweeping();
    this.servers.clear();
    this.roomWaiters.clear();
  }

  /**
   * Queues a transfer that found no room in the windows (`pump` retries it). Each request that
   * settles hands its room to the transfer at the head of the queue first, before the transfer that
   * owned the request can take it back, so concurrent downloads share the windows instead of the
   * first ones keeping them. A transfer still blocked queues itself again, at the back.
   */
  waitForRoom(pump: () => void): void {
    this.roomWaiters.add(pump);
  }

  stopWaitingForRoom(pump: () => void): void {
    this.roomWaiters.delete(pump);
  }

  /** A request settled (the tracker says so): room may be open. */
  roomFreed(): void {
    const next = this.roomWaiters.values().next();
    if (next.done) return;
    this.roomWaiters.delete(next.value);
    queueMicrotask(next.value);
  }

  private endCoolDownIfDue(server: PoolServer): void {
    if (server.state === 'cooling' && this.now() >= server.coolingUntil) this.endCoolDown(server, 'cool-down over');
  }

  private endCoolDown(server: PoolServer, why: string): void {
    server.state = 'active';
    server.consecutiveTimeouts = 0;
    this.logger.info('server back in rotation', { server: server.key, why });
    this.changed.emit();
  }

  /** Removes servers that stopped heartbeating; ends cool-downs that ran out. */
  private sweep(): void {
    const now = this.now();
    for (const server of this.list()) {
      if (server.lastSeen < now - 3 * Math.max(this.heartbeatMs, server.heartbeatMs)) this.remove(server, 'evicted', 'missed 3 heartbeats');
      else this.endCoolDownIfDue(server);
    }
  }

  private startSweeping(): void {
    if (this.sweepTimer) return;
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(50, this.heartbeatMs / 2));
    this.sweepTimer.unref();
  }

  private stopSweeping(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }
}
