import { afterEach, describe, expect, it } from 'vitest';
import { ServerPool, type PoolServer } from '../src/pool/server-pool.js';
import { AFFINITY_BLOCK, SourceChoice, runLengthOf } from '../src/transfer/source-choice.js';

// SourceChoice over a real pool whose servers' windows this test fills by hand (inFlight).

const pools: ServerPool[] = [];
afterEach(() => {
  for (const pool of pools.splice(0)) pool.close();
});

/** A pool of `count` servers with windows of `window`; their keys sort in admission order. */
function setup(count = 3, window = 8) {
  const pool = new ServerPool({ heartbeatMs: 3_600_000, window: { initial: window } });
  pools.push(pool);
  const servers = Array.from({ length: count }, (_, i) => pool.admit('127.0.0.1', 9001 + i, `s${i}`)!);
  const keys = servers.map((server) => server.key);
  return { pool, servers, keys };
}

const fill = (server: PoolServer) => (server.inFlight = server.window.size);

describe('SourceChoice', () => {
  it('walks the candidates round-robin from the start it is given, avoiding one when another has room', () => {
    const { pool, servers, keys } = setup();
    const [a, b, c] = servers;
    const picks = (choice: SourceChoice, n: number, avoid?: string) => Array.from({ length: n }, () => choice.withRoom(avoid)?.name);
    expect(picks(new SourceChoice(keys, pool), 4)).toEqual(['s0', 's1', 's2', 's0']);
    expect(picks(new SourceChoice(keys, pool, 4), 3)).toEqual(['s1', 's2', 's0']);
    expect(picks(new SourceChoice(keys, pool), 3, b!.key)).toEqual(['s0', 's2', 's0']);
    fill(a!);
    fill(c!);
    // Only the server to avoid has room: it is taken, unless strict.
    expect(new SourceChoice(keys, pool).withRoom(b!.key)).toBe(b);
    expect(new SourceChoice(keys, pool).withRoom(b!.key, true)).toBeUndefined();
    fill(b!);
    expect(new SourceChoice(keys, pool).withRoom(undefined)).toBeUndefined();
  });

  it('gives each block of chunks to the same server, by key order; another takes it only when the owner has no room', () => {
    const { pool, servers, keys } = setup(3, 32);
    const [a, b] = servers;
    const choice = new SourceChoice([...keys].reverse(), pool); // the lookup's order does not matter
    const run = runLengthOf(a!);
    expect(choice.forRun(0, 64, 64)).toEqual({ server: a, count: run });
    expect(choice.forRun(AFFINITY_BLOCK, 64, 64)).toEqual({ server: b, count: run });
    expect(choice.forRun(3 * AFFINITY_BLOCK + 2, 64, 64)).toEqual({ server: a, count: run });
    // A run never crosses into the next block.
    expect(choice.forRun(AFFINITY_BLOCK - 3, 64, 64)).toEqual({ server: a, count: 3 });
    fill(a!);
    const taken = choice.forRun(0, 64, 64);
    expect(taken?.server).not.toBe(a);
    expect(taken?.count).toBe(run);
  });

  it('drops a candidate for good: it owns no block and is never picked again', () => {
    const { pool, servers, keys } = setup(2);
    const [a, b] = servers;
    const choice = new SourceChoice(keys, pool);
    expect(choice.drop(a!.key)).toBe(true);
    expect(choice.drop(a!.key)).toBe(false);
    expect(choice.forRun(0, 8, 8)?.server).toBe(b);
    expect([choice.withRoom(undefined), choice.withRoom(undefined)]).toEqual([b, b]);
    expect(choice.isEmpty).toBe(false);
    choice.drop(b!.key);
    expect(choice.isEmpty).toBe(true);
    expect(choice.anyInPool()).toBe(false);
    expect(choice.withRoom(undefined)).toBeUndefined();
  });

  it('hedges on an active server not yet asked, one with room first, one without if none has room', () => {
    const { pool, servers, keys } = setup();
    const [a, b, c] = servers;
    const choice = new SourceChoice(keys, pool);
    const asked = new Map([[1, a!.key]]);
    expect(choice.forHedge(asked)).toBe(b);
    fill(b!);
    expect(choice.forHedge(asked)).toBe(c);
    fill(c!);
    expect(choice.forHedge(asked)).toBe(b); // past a full window, as QUIC's probes
    c!.state = 'cooling';
    b!.state = 'cooling';
    expect(choice.forHedge(asked)).toBeUndefined();
  });

  it('believes "stale" or "not-found" the second time in a row, "unreadable" at once, "io" the third time', () => {
    const { pool, servers, keys } = setup(2);
    const [a, b] = servers;
    const choice = new SourceChoice(keys, pool);
    expect(choice.judge(a!, 'stale')).toBeUndefined();
    choice.trust(a!); // a good chunk in between: the doubt is gone
    expect(choice.judge(a!, 'stale')).toBeUndefined();
    expect(choice.judge(a!, 'stale')).toBe('stale');
    expect(choice.judge(b!, 'not-found')).toBeUndefined();
    expect(choice.judge(b!, 'not-found')).toBe('not-found');
    expect(choice.judge(a!, 'unreadable')).toBe('unreadable');
    expect([choice.judge(b!, 'io'), choice.judge(b!, 'io'), choice.judge(b!, 'io')]).toEqual([undefined, undefined, 'io']);
    expect(choice.judge(a!, 'busy')).toBeUndefined();
  });

  it('knows the best round trip of its candidates (10 ms before any)', () => {
    const { pool, servers, keys } = setup(2);
    const choice = new SourceChoice(keys, pool);
    expect(choice.bestRttMs()).toBe(10);
    pool.onAnswer(servers[1]!, 0, 4);
    expect(choice.bestRttMs()).toBe(4);
  });

  describe('unequal servers: each is asked only for what it delivers before the client needs it', () => {
    const CHUNK = 60_000;
    /** Teaches `server` a delivery rate (bytes per ms) and an unqueued round trip, as answers would. */
    const measure = (server: PoolServer, bytesPerMs: number, minRttMs = 0.2) => {
      const sent = server.delivery.onSend(0, true);
      server.delivery.onDelivered(sent, bytesPerMs * 10, 10);
      server.rtt.sample(minRttMs, 0, true);
      server.lastAskedAt = 0; // asked lately: no probe (see the probe test)
    };
    // Keys sort in admission order: s0 owns block 0, s1 block 1, s2 block 2.
    const unequal = () => {
      const { pool, servers, keys } = setup(3, 32);
      const [slow1, fast, slow2] = servers;
      measure(slow1!, 10_000);
      measure(fast!, 100_000);
      measure(slow2!, 10_000);
      return { pool, slow1: slow1!, fast: fast!, slow2: slow2!, choice: new SourceChoice(keys, pool) };
    };
    const timing = (ahead: number, receiveRate: number | undefined = 120_000, now = 50) => ({ ahead, chunkBytes: CHUNK, receiveRate, now });

    it('a slow owner keeps the chunks far enough ahead, as many as it delivers in time; the near ones go to the fast server', () => {
      const { fast, slow1, slow2, choice } = unequal();
      // Needed at once (within the 2 ms of slack): the slow owner of block 0 takes 6 ms a chunk; fast delivers 3 in time.
      expect(choice.forRun(0, 16, 1000, timing(0))).toEqual({ server: fast, count: 3 });
      // 100 chunks ahead (50 ms at 120 MB/s): the slow owner delivers 8 of its block in time.
      expect(choice.forRun(0, 16, 1000, timing(100))).toEqual({ server: slow1, count: 8 });
      slow1.inFlight = 6;
      // With 6 in flight, 2 more are in time: a short run, since that is all it delivers in time.
      expect(choice.forRun(0, 16, 1000, timing(100))).toEqual({ server: slow1, count: 2 });
      // Its in-time share taken: the other slow server is in time too (idle), then fast.
      slow1.inFlight = 8;
      expect(choice.forRun(0, 16, 1000, timing(100))).toEqual({ server: slow2, count: 8 });
      slow2.inFlight = 8;
      expect(choice.forRun(0, 16, 1000, timing(100))?.server).toBe(fast);
    });

    it('when nobody is in time the run goes to whoever delivers first, or waits for its room', () => {
      const { fast, slow1, slow2, choice } = unequal();
      fast.inFlight = fast.window.size - 1;
      slow1.inFlight = 4;
      slow2.inFlight = 4;
      // Block 2 (slow2's), needed at once: fast is late too (its queue: 19 ms), but least late (the slow ones: 30 ms), and has room for one.
      expect(choice.forRun(2 * AFFINITY_BLOCK, 16, 1000, timing(0))).toEqual({ server: fast, count: 1 });
      fast.inFlight = fast.window.size;
      // Fast is full: its next slot still beats the slow servers' queues, so the transfer waits for it.
      expect(choice.forRun(2 * AFFINITY_BLOCK, 16, 1000, timing(0))).toBeUndefined();
      // An idle slow server is sooner than fast's queue: it takes what it delivers before fast would (3 chunks in 19 ms).
      slow2.inFlight = 0;
      expect(choice.forRun(2 * AFFINITY_BLOCK, 16, 1000, timing(0))).toEqual({ server: slow2, count: 3 });
    });

    it('among equals, blocks stay with their owners; before any rate is known, nothing changes', () => {
      const { pool, servers, keys } = setup(3, 32);
      for (const server of servers) measure(server, 100_000);
      const choice = new SourceChoice(keys, pool);
      const run = runLengthOf(servers[0]!);
      for (let block = 0; block < 3; block++) expect(choice.forRun(block * AFFINITY_BLOCK, 16, 1000, timing(64, 300_000))).toEqual({ server: servers[block], count: run });
      const fresh = setup(3, 32);
      const unmeasured = new SourceChoice(fresh.keys, fresh.pool);
      expect(unmeasured.forRun(AFFINITY_BLOCK, 16, 1000, timing(0, undefined))).toEqual({ server: fresh.servers[1], count: run });
    });

    it('an idle owner not asked for 100 ms is probed with two chunks, in time or not: its estimate can only be raised by being measured', () => {
      const { slow1, choice } = unequal();
      expect(choice.forRun(0, 16, 1000, timing(0, 120_000, 99))?.server).not.toBe(slow1);
      expect(choice.forRun(0, 16, 1000, timing(0, 120_000, 100))).toEqual({ server: slow1, count: 2 });
      slow1.inFlight = 2;
      expect(choice.forRun(0, 16, 1000, timing(0, 120_000, 500))?.server).not.toBe(slow1);
    });

    it('a distant server (20 ms away) gets no chunk the client needs within its round trip', () => {
      const { pool, servers, keys } = setup(2, 32);
      const [far, near] = servers;
      measure(far!, 100_000, 20);
      measure(near!, 100_000, 0.2);
      const choice = new SourceChoice(keys, pool);
      expect(choice.forRun(0, 16, 1000, timing(0, 200_000))?.server).toBe(near);
      // 100 chunks ahead at 200 MB/s: due in 30 ms, so the far owner's first 10 ms of delivery are in time.
      expect(choice.forRun(0, 16, 1000, timing(100, 200_000))).toEqual({ server: far, count: runLengthOf(far!) });
    });
  });
});

