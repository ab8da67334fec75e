import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@httpgw/runtime';
import { ServerPool, type PoolServer } from '../src/pool/server-pool.js';

// The pool with an injected clock; the heartbeat sweep (a timer) runs under fake timers.

const pools: ServerPool[] = [];
afterEach(() => {
  for (const pool of pools.splice(0)) pool.close();
  vi.useRealTimers();
});

function poolAt(clock: { t: number }, init: ConstructorParameters<typeof ServerPool>[0] = {}): ServerPool {
  const pool = new ServerPool({ now: () => clock.t, ...init });
  pools.push(pool);
  return pool;
}

/** `count` timeout events, each for a request sent after the previous event was noticed. */
function timeoutEvents(pool: ServerPool, server: PoolServer, clock: { t: number }, count: number): void {
  for (let i = 0; i < count; i++) {
    const sentAt = clock.t + 1;
    clock.t += 100;
    pool.onTimeout(server, sentAt);
  }
}

describe('ServerPool: passive health from timeouts', () => {
  it('cools a server down after maxFails timeout events in a row', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxFails: 3, coolDownMs: 500 });
    const server = pool.admit('127.0.0.1', 9001, 'a')!;
    timeoutEvents(pool, server, clock, 2);
    expect(server.state).toBe('active');
    timeoutEvents(pool, server, clock, 1);
    expect(server.state).toBe('cooling');
    expect(pool.counters.coolDowns).toBe(1);
    expect(pool.size).toBe(1);
  });

  it('counts a burst of timeouts from one event once', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxFails: 2 });
    const server = pool.admit('127.0.0.1', 9001, 'a')!;
    // 20 requests sent before the first timeout was noticed: one event, one backoff.
    const rtoBefore = server.rtt.rtoMs;
    clock.t = 2_000;
    for (let sentAt = 1_000; sentAt < 1_020; sentAt++) pool.onTimeout(server, sentAt);
    expect(server.consecutiveTimeouts).toBe(1);
    expect(server.rtt.rtoMs).toBe(rtoBefore * 2);
    expect(server.state).toBe('active');
    expect(server.stats.timeouts).toBe(20);
  });

  it('forgets the timeouts when an answer comes', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxFails: 3 });
    const server = pool.admit('127.0.0.1', 9001, 'a')!;
    timeoutEvents(pool, server, clock, 2);
    pool.onAnswer(server, clock.t, 5);
    timeoutEvents(pool, server, clock, 2);
    expect(server.state).toBe('active');
  });

  it('lets a cooling server take one probe at a time, and takes it back when the probe is answered', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxFails: 1, coolDownMs: 10_000 });
    const server = pool.admit('127.0.0.1', 9001, 'a')!;
    timeoutEvents(pool, server, clock, 1);
    expect(server.state).toBe('cooling');
    expect(server.hasRoom).toBe(true);
    server.inFlight = 1;
    expect(server.hasRoom).toBe(false);
    const changes = vi.fn();
    pool.changed.add(changes);
    pool.onAnswer(server, clock.t, 5);
    expect(server.state).toBe('active');
    expect(changes).toHaveBeenCalled();
  });

  it('tries a cooling server again once the cool-down is over (heartbeat or sweep)', () => {
    vi.useFakeTimers();
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxFails: 1, coolDownMs: 3_000, heartbeatMs: 1_000 });
    const a = pool.admit('127.0.0.1', 9001, 'a')!;
    const b = pool.admit('127.0.0.1', 9002, 'b')!;
    timeoutEvents(pool, a, clock, 1);
    timeoutEvents(pool, b, clock, 1);
    expect([a.state, b.state]).toEqual(['cooling', 'cooling']);
    clock.t += 1_000;
    pool.touch(a); // a heartbeat during the cool-down changes nothing
    expect(a.state).toBe('cooling');
    clock.t += 2_100;
    pool.touch(a); // a heartbeat after it ends it
    expect(a.state).toBe('active');
    b.lastSeen = clock.t; // b heartbeats too, but its sweep ends its cool-down
    vi.advanceTimersByTime(500);
    expect(b.state).toBe('active');
    expect(a.consecutiveTimeouts).toBe(0);
  });

  it('never removes a server for timeouts: the only one stays through a slow chunk and a cool-down', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxFails: 6 });
    const only = pool.admit('127.0.0.1', 9001, 'only')!;
    timeoutEvents(pool, only, clock, 1); // one slow chunk
    expect(only.state).toBe('active');
    expect(pool.usable()).toEqual([only]);
    timeoutEvents(pool, only, clock, 20);
    expect(only.state).toBe('cooling');
    expect(pool.size).toBe(1);
    expect(pool.usable()).toEqual([only]); // nothing else: still asked
    expect(pool.counters.evicted + pool.counters.dropped).toBe(0);
  });

  it('leaves metadata requests to active servers while others cool down', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxFails: 1 });
    const a = pool.admit('127.0.0.1', 9001, 'a')!;
    const b = pool.admit('127.0.0.1', 9002, 'b')!;
    timeoutEvents(pool, a, clock, 1);
    expect(pool.usable()).toEqual([b]);
  });
});

describe('ServerPool: bad data', () => {
  it('a server that sends only bad chunks of a file loses that file after maxBadChunks, for banMs', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxBadChunks: 3, banMs: 60_000 });
    const liar = pool.admit('127.0.0.1', 9001, 'liar')!;
    expect([pool.onBadChunk(liar, 'a'), pool.onBadChunk(liar, 'a'), pool.onBadChunk(liar, 'a')]).toEqual([false, false, true]);
    expect(pool.distrusts(liar, 'a')).toBe(true);
    expect(pool.distrusts(liar, 'b')).toBe(false);
    expect(pool.size).toBe(1);
    expect(pool.counters).toMatchObject({ filesLost: 1, dropped: 0 });
    clock.t += 60_001;
    expect(pool.distrusts(liar, 'a')).toBe(false);
  });

  it('drops and bans a server that loses maxBadFiles files for bad data; loudly when it is the last one', () => {
    const clock = { t: 1_000 };
    const lines: string[] = [];
    const pool = poolAt(clock, { maxBadChunks: 3, maxBadFiles: 3, banMs: 60_000, logger: createLogger({ name: 'pool', write: (line, level) => lines.push(`${level} ${line}`) }) });
    const liar = pool.admit('127.0.0.1', 9001, 'liar')!;
    const removed = vi.fn();
    pool.removed.add(removed);
    for (const path of ['a', 'b']) for (let i = 0; i < 3; i++) pool.onBadChunk(liar, path);
    expect(pool.size).toBe(1);
    for (let i = 0; i < 3; i++) pool.onBadChunk(liar, 'c');
    expect(pool.size).toBe(0);
    expect(lines.some((line) => line.startsWith('error') && line.includes('banning the last server'))).toBe(true);
    expect(pool.counters.dropped).toBe(1);
    expect(removed).toHaveBeenCalledWith(liar, 'dropped');
    expect(pool.isBanned('127.0.0.1', 9001)).toBe(true);
    expect(pool.isBanned('127.0.0.1', 9002)).toBe(false);
    clock.t += 60_001;
    expect(pool.isBanned('127.0.0.1', 9001)).toBe(false);
  });

  it('keeps a server whose bad chunks are outweighed by good ones (a path that corrupts a little)', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock, { maxBadChunks: 3 });
    const server = pool.admit('127.0.0.1', 9001, 'a')!;
    for (let i = 0; i < 1_000; i++) {
      if (i % 10 === 0) pool.onBadChunk(server, 'f');
      else pool.onGoodChunk(server, 'f', 100);
    }
    pool.onBadChunk(server, 'f');
    pool.onBadChunk(server, 'f'); // two in a row after a long good run: still below three
    expect(pool.size).toBe(1);
    expect(pool.distrusts(server, 'f')).toBe(false);
    expect(server.stats.badChunks).toBe(102);
    expect(server.stats.bytes).toBe(900 * 100);
  });
});

describe('ServerPool: membership', () => {
  it('evicts a server that missed three heartbeats, and keeps one that heartbeats', () => {
    vi.useFakeTimers();
    const pool = new ServerPool({ heartbeatMs: 1_000, now: () => Date.now() });
    pools.push(pool);
    const silent = pool.admit('127.0.0.1', 9001, 'silent')!;
    const alive = pool.admit('127.0.0.1', 9002, 'alive')!;
    const removed = vi.fn();
    pool.removed.add(removed);
    for (let i = 0; i < 8; i++) {
      vi.advanceTimersByTime(500);
      pool.touch(alive);
    }
    expect(pool.list()).toEqual([alive]);
    expect(pool.counters.evicted).toBe(1);
    expect(removed).toHaveBeenCalledWith(silent, 'evicted');
  });

  it('counts first admissions and re-admissions apart, and refreshes a known server without counting', () => {
    const clock = { t: 1_000 };
    const pool = poolAt(clock);
    const first = pool.admit('127.0.0.1', 9001, 'a')!;
    expect(pool.admit('127.0.0.1', 9001, 'a')).toBe(first);
    expect(pool.counters).toMatchObject({ admitted: 1, readmitted: 0 });
    pool.remove(first, 'left', 'bye');
    const again = pool.admit('127.0.0.1', 9001, 'a')!;
    expect(again).not.toBe(first);
    expect(pool.counters).toMatchObject({ admitted: 1, readmitted: 1, left: 1 });
    expect(again.state).toBe('active');
  });

  it('refuses servers beyond maxServers, and counts the refusals', () => {
    const pool = poolAt({ t: 0 }, { maxServers: 1 });
    expect(pool.admit('127.0.0.1', 9001, 'a')).toBeDefined();
    expect(pool.admit('127.0.0.1', 9002, 'b')).toBeUndefined();
    expect(pool.admit('127.0.0.1', 9002, 'b')).toBeUndefined();
    expect(pool.counters.refusedFull).toBe(2);
    expect([pool.isFull('127.0.0.1', 9002), pool.isFull('127.0.0.1', 9001)]).toEqual([true, false]);
  });

  it('tells a growing pool a longer heartbeat interval, and evicts each server after three of the intervals it was told', () => {
    vi.useFakeTimers();
    const pool = new ServerPool({ heartbeatMs: 1_000, maxHeartbeatRate: 10, maxServers: 1_000, now: () => Date.now() });
    pools.push(pool);
    const servers = Array.from({ length: 25 }, (_, i) => pool.admit('127.0.0.1', 9000 + i, `s${i}`)!);
    // 25 servers at 10 heartbeats a second at most: every 2.5 s.
    expect(pool.currentHeartbeatMs).toBe(2_500);
    const [told, old] = servers as [PoolServer, PoolServer];
    told.heartbeatMs = pool.currentHeartbeatMs;
    old.heartbeatMs = 1_000;
    for (const server of servers.slice(2)) server.heartbeatMs = pool.currentHeartbeatMs;
    vi.advanceTimersByTime(4_000);
    for (const server of servers.slice(2)) pool.touch(server);
    // After 4 s of silence the server told 1 s is gone; the one told 2.5 s is not (yet).
    expect(pool.get(old.key)).toBeUndefined();
    expect(pool.get(told.key)).toBe(told);
    vi.advanceTimersByTime(4_000);
    expect(pool.get(told.key)).toBeUndefined();
    expect(new ServerPool({ heartbeatMs: 1_000 }).currentHeartbeatMs).toBe(1_000);
  });
});
