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
});
