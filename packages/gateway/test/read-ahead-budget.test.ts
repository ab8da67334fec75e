import { randomBytes } from 'node:crypto';
import { chunkDigest } from '@httpgw/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChunkFetcher } from '../src/transfer/chunk-fetcher.js';
import { ReadAheadBudget, defaultReadAheadBudgetBytes, type ReadAheadShare } from '../src/transfer/read-ahead-budget.js';
import { RequestTracker } from '../src/udp/request-tracker.js';
import { ServerPool } from '../src/pool/server-pool.js';

const CHUNK = 1_000;
const MIB = 1024 * 1024;
const microtasks = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A budget of `chunks` chunks; each share logs its wake-ups and, woken, asks again (as a transfer's pump does). */
function setup(chunks: number, minimumChunks = 2) {
  const budget = new ReadAheadBudget({ limitBytes: chunks * CHUNK, chunkBytes: CHUNK, minimumChunks });
  const woken: string[] = [];
  type Share = ReadAheadShare & { wants: number; closed: boolean };
  const share = (name: string): Share => {
    const s = budget.open(() => {
      woken.push(name);
      ask(s);
    }) as Share;
    s.wants = 0;
    s.closed = false;
    return s;
  };
  /** Takes what is affordable of what it wants; queues when it still wants more. Returns chunks taken. */
  const ask = (s: Share) => {
    let taken = 0;
    while (s.wants > 0 && !s.closed) {
      const n = s.affordable(s.wants);
      if (n === 0) {
        s.waitForBudget();
        break;
      }
      s.take(n);
      s.wants -= n;
      taken += n;
    }
    return taken;
  };
  const want = (s: Share, n: number) => {
    s.wants += n;
    return ask(s);
  };
  const close = (s: Share) => {
    s.closed = true;
    s.close();
  };
  return { budget, share, want, close, woken, reserved: () => budget.stats.reservedBytes / CHUNK };
}

describe('ReadAheadBudget', () => {
  it('reserves up to its limit, gives back what is released, and counts its peak', () => {
    const t = setup(10);
    const a = t.share('a');
    const b = t.share('b');
    expect(t.want(a, 6)).toBe(6);
    expect(t.want(b, 6)).toBe(4); // only 4 left: b queues for 2 more
    expect(t.reserved()).toBe(10);
    expect(t.budget.stats).toMatchObject({ waits: 1, waiting: 1 });
    t.close(a);
    expect(t.reserved()).toBe(4);
    t.close(b);
    expect(t.budget.stats).toEqual({ limitBytes: 10 * CHUNK, reservedBytes: 0, peakBytes: 10 * CHUNK, waits: 1, waiting: 0 });
  });

  it('keeps every share\'s minimum within the limit while they fit in it', () => {
    const t = setup(10);
    const [a, b, c] = ['a', 'b', 'c'].map((name) => t.share(name)) as Array<ReturnType<typeof t.share>>;
    expect(t.want(a!, 1)).toBe(1); // a asked: 2 chunks are kept for its minimum from now on
    expect(a!.affordable(100)).toBe(9); // itself included
    expect(b!.affordable(100)).toBe(8); // b asked too: 1 more for a, 2 for b
    expect(t.want(c!, 100)).toBe(6); // and c: 10 - 1 (a holds) - 1 (a lacks) - 2 (b lacks)
    expect(t.want(a!, 1)).toBe(1);
    expect(t.want(b!, 2)).toBe(2);
    expect(t.reserved()).toBe(10); // never above the limit
    t.close(b!);
    expect(t.reserved()).toBe(8);
  });

  it('lets every share hold its minimum when the budget is spent, and no more', () => {
    const t = setup(4);
    const a = t.share('a');
    expect(t.want(a, 10)).toBe(4);
    const shares = Array.from({ length: 5 }, (_, i) => t.share(`s${i}`));
    for (const s of shares) expect(t.want(s, 10)).toBe(2); // its minimum, though nothing is free
    expect(t.reserved()).toBe(4 + 5 * 2); // over the limit by the minimums only
    for (const s of shares) expect(s.affordable(10)).toBe(0);
    // A share below its minimum tops up to it, others queued or not.
    shares[0]!.release(1);
    expect(shares[0]!.affordable(10)).toBe(1);
    for (const s of [a, ...shares]) t.close(s);
    expect(t.reserved()).toBe(0);
  });

  it('hands released budget to the shares queued, first come first, before the one that released', async () => {
    const t = setup(14);
    const holder = t.share('holder');
    expect(t.want(holder, 8)).toBe(8);
    const [a, b, c] = ['a', 'b', 'c'].map((name) => t.share(name)) as [ReturnType<typeof t.share>, ReturnType<typeof t.share>, ReturnType<typeof t.share>];
    for (const s of [a, b, c]) expect(t.want(s, 2)).toBe(2); // the budget is spent now
    for (const s of [a, b, c]) expect(t.want(s, 3)).toBe(0); // queued, in this order
    expect(t.budget.stats).toMatchObject({ waits: 3, waiting: 3, reservedBytes: 14 * CHUNK });
    holder.release(1);
    // The holder asks again at once: a is first in line, so the holder gets nothing (it holds more than its minimum).
    expect(holder.affordable(1)).toBe(0);
    await microtasks();
    expect(t.woken).toEqual(['a']);
    expect(a.wants).toBe(2); // took the chunk released, then queued again behind b and c
    holder.release(2);
    await microtasks();
    expect(t.woken).toEqual(['a', 'b', 'c']);
    expect([b.wants, c.wants]).toEqual([1, 3]); // b took both chunks; c's turn found none and it queued again
    holder.release(3);
    await microtasks();
    expect(t.woken).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect([a.wants, b.wants, c.wants]).toEqual([0, 0, 3]); // c's turn came when a and b had taken all
    expect(t.reserved()).toBe(14);
  });

  it('passes on a turn its share did not use, and the turn of a share that ends before it runs', async () => {
    const t = setup(4, 0);
    const holder = t.share('holder');
    t.want(holder, 4);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => t.share(name)) as Array<ReturnType<typeof t.share>>;
    for (const s of [a!, b!, c!, d!]) expect(t.want(s, 1)).toBe(0);
    a!.wants = 0; // a no longer wants anything when its turn comes
    t.close(b!); // b ends while queued: never woken
    holder.release(1);
    await microtasks();
    expect(t.woken).toEqual(['a', 'c']); // a's unused turn went to c
    expect(c!.wants).toBe(0);
    holder.release(1); // d's turn is due ...
    t.close(d!); // ... but d ends first: nobody left to pass it to
    await microtasks();
    expect(t.woken).toEqual(['a', 'c', 'd']);
    expect(t.budget.stats).toMatchObject({ waiting: 0, reservedBytes: 3 * CHUNK });
    // Nobody queued and no turn pending: anyone may take what is free.
    expect(t.want(a!, 5)).toBe(1);
  });

  it('sizes its default to the machine: 1/32 of memory, between 64 MiB and 1 GiB', () => {
    const bytes = defaultReadAheadBudgetBytes();
    expect(bytes).toBeGreaterThanOrEqual(64 * MIB);
    expect(bytes).toBeLessThanOrEqual(1024 * MIB);
  });
});

describe('ChunkFetcher with a read-ahead budget', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    vi.useRealTimers();
  });

  /** One server whose answers this test sends by hand; transfers of `chunks` chunks each, 16 chunks of read-ahead. */
  function setup(budgetChunks: number) {
    vi.useFakeTimers();
    const now = () => Date.now();
    const pool = new ServerPool({ now, heartbeatMs: 3_600_000, rtt: { initialRtoMs: 10_000, minRtoMs: 10_000, granularityMs: 1 }, window: { initial: 64 } });
    const sent: Array<{ path: string; chunk: number; requestId: number }> = [];
    const tracker = new RequestTracker({
      pool,
      now,
      transmit: (_server, packet) => {
        if (packet.type !== 'chunk-request') return;
        for (let i = 0; i < (packet.count ?? 1); i++) sent.push({ path: packet.path, chunk: packet.chunk + i, requestId: packet.requestId + i });
      },
    });
    cleanups.push(() => {
      tracker.close();
      pool.close();
    });
    const server = pool.admit('127.0.0.1', 9001, 's0')!;
    const budget = new ReadAheadBudget({ limitBytes: budgetChunks * CHUNK, chunkBytes: CHUNK });
    const data = randomBytes(40 * CHUNK);
    const transfer = (path: string) =>
      new ChunkFetcher({
        file: { path, size: data.length, mtimeMs: 0, version: 'v1', servers: [server.key] },
        firstByte: 0,
        lastByte: data.length - 1,
        chunkSize: CHUNK,
        readAheadChunks: 16,
        stallTimeoutMs: 60_000,
        hedging: false,
        budget,
        pool,
        tracker,
        now,
      }).stream();
    const answered = new Set<number>();
    /** Answers every request of `path` sent so far. */
    const answer = (path: string) => {
      for (const request of sent) {
        if (request.path !== path || answered.has(request.requestId)) continue;
        answered.add(request.requestId);
        const piece = data.subarray(request.chunk * CHUNK, (request.chunk + 1) * CHUNK);
        tracker.onAnswer({ type: 'chunk', requestId: request.requestId, chunk: request.chunk, hasNext: (request.chunk + 1) * CHUNK < data.length, md5: chunkDigest(piece), data: piece }, server.key);
      }
    };
    const asked = (path: string) => sent.filter((request) => request.path === path).length;
    const settle = () => vi.advanceTimersByTimeAsync(0);
    return { budget, transfer, answer, asked, settle, reserved: () => budget.stats.reservedBytes / CHUNK };
  }

  it('asks for no more than the budget allows, and gets it back as chunks reach the client', async () => {
    const t = setup(6);
    const a = t.transfer('a');
    const first = a.next();
    await t.settle();
    expect(t.asked('a')).toBe(6); // 16 of read-ahead wanted, 6 allowed
    t.answer('a');
    expect((await first).value?.length).toBe(CHUNK);
    await t.settle();
    expect(t.asked('a')).toBe(7); // one chunk reached the client: one more asked for
    expect(t.reserved()).toBe(6);
    for (let i = 0; i < 10; i++) {
      t.answer('a');
      await a.next();
      await t.settle();
      expect(t.reserved()).toBeLessThanOrEqual(6);
    }
    expect(t.asked('a')).toBe(17);
  });

  it('returns everything a transfer holds when it ends, chunks in flight too', async () => {
    const t = setup(6);
    const a = t.transfer('a');
    const first = a.next();
    await t.settle();
    t.answer('a');
    await first;
    await t.settle();
    expect(t.reserved()).toBe(6); // 5 received, 1 in flight
    await a.return(); // the client left
    expect(t.reserved()).toBe(0);
    t.answer('a'); // the answer in flight, dropped
    expect(t.reserved()).toBe(0);
  });

  it('shares the budget a client frees with the transfers queued for it, in turn', async () => {
    const t = setup(8);
    const a = t.transfer('a');
    const firstA = a.next();
    await t.settle();
    expect(t.asked('a')).toBe(8); // 16 of read-ahead wanted, 8 allowed: a queues for more
    const b = t.transfer('b');
    const firstB = b.next();
    await t.settle();
    expect(t.asked('b')).toBe(2); // its minimum, beyond the budget; then it queues, behind a
    expect(t.budget.stats).toMatchObject({ waiting: 2, reservedBytes: 10 * CHUNK });
    t.answer('a');
    await firstA;
    const asked: Array<[number, number]> = [];
    for (let i = 1; i < 6; i++) {
      await t.settle();
      asked.push([t.asked('a'), t.asked('b')]);
      await a.next(); // a's client takes one more chunk
    }
    await t.settle();
    asked.push([t.asked('a'), t.asked('b')]);
    // The first two chunks taken only bring the budget back to its limit (b's minimum went past it);
    // then each chunk a's client takes goes to the first in line: a, b, a, b (each queues again after its turn).
    expect(asked).toEqual([[8, 2], [8, 2], [9, 2], [9, 3], [10, 3], [10, 4]]);
    t.answer('b');
    await firstB;
    await a.return();
    await b.return();
    expect(t.reserved()).toBe(0);
  });
});
