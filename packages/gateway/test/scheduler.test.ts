import { randomBytes } from 'node:crypto';
import { chunkDigest, type ChunkPacket, type ChunkRequestPacket, type Packet } from '@httpgw/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChunkFetcher, type ChunkFetcherInit } from '../src/transfer/chunk-fetcher.js';
import { GatewayError } from '../src/errors.js';
import { RequestTracker } from '../src/udp/request-tracker.js';
import { ServerPool, type PoolServer } from '../src/pool/server-pool.js';

// The chunk fetcher over a real pool and tracker whose network is this test: requests are recorded,
// answers are handed to the tracker by hand, time is fake. Initial RTO 100 ms, minimum 20 ms.

const CHUNK = 1_024;

interface Sent {
  server: PoolServer;
  packet: ChunkRequestPacket;
}

type Setup = Partial<Pick<ChunkFetcherInit, 'readAheadChunks' | 'stallTimeoutMs' | 'hedging' | 'firstByte' | 'lastByte'>> & { servers?: number; size?: number; initialWindow?: number };

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  vi.useRealTimers();
});

function setup(options: Setup = {}) {
  vi.useFakeTimers();
  const now = () => Date.now();
  const size = options.size ?? 8 * CHUNK + 100;
  const data = randomBytes(size);
  const pool = new ServerPool({ now, heartbeatMs: 3_600_000, rtt: { initialRtoMs: 100, minRtoMs: 20, granularityMs: 1 }, window: { initial: options.initialWindow ?? 8 } });
  /** One entry per chunk asked for: a request for a run of `count` chunks is split as the server would answer it. */
  const sent: Sent[] = [];
  /** The chunk-request datagrams themselves. */
  const datagrams: Sent[] = [];
  const tracker = new RequestTracker({
    pool,
    now,
    transmit: (server, packet) => {
      if (packet.type !== 'chunk-request') return;
      datagrams.push({ server, packet });
      const { count = 1, ...single } = packet;
      for (let i = 0; i < count; i++) sent.push({ server, packet: { ...single, requestId: packet.requestId + i, chunk: packet.chunk + i } });
    },
  });
  pool.removed.add((server: PoolServer) => tracker.dropServer(server)); // as the gateway wires them
  cleanups.push(() => {
    tracker.close();
    pool.close();
  });
  const servers = Array.from({ length: options.servers ?? 2 }, (_, i) => pool.admit('127.0.0.1', 9001 + i, `s${i}`)!);
  /** The client of `fetcher`: aborting it is the client leaving. */
  const client = new AbortController();
  const fetcherInit: ChunkFetcherInit = {
    file: { path: 'f.bin', size, mtimeMs: 0, version: 'v1', servers: servers.map((server) => server.key) },
    firstByte: options.firstByte ?? 0,
    lastByte: options.lastByte ?? size - 1,
    chunkSize: CHUNK,
    readAheadChunks: options.readAheadChunks ?? 64,
    stallTimeoutMs: options.stallTimeoutMs ?? 1_000,
    hedging: options.hedging ?? true,
    pool,
    tracker,
    now,
  };
  const fetcher = new ChunkFetcher({ ...fetcherInit, signal: client.signal });

  const answered = new Set<number>();
  /** The right chunk for a request, changed by `lie`; false when the tracker no longer wanted it. */
  const answer = (request: Sent, lie: Partial<ChunkPacket> | Packet = {}): boolean => {
    answered.add(request.packet.requestId);
    const { chunk } = request.packet;
    const piece = data.subarray(chunk * CHUNK, Math.min(size, (chunk + 1) * CHUNK));
    const honest: ChunkPacket = { type: 'chunk', requestId: request.packet.requestId, chunk, hasNext: (chunk + 1) * CHUNK < size, md5: chunkDigest(piece), data: piece };
    const packet = 'type' in lie && lie.type !== 'chunk' ? lie : { ...honest, ...lie };
    return tracker.onAnswer({ ...packet, requestId: request.packet.requestId } as Packet & { requestId: number }, request.server.key);
  };
  /** Requests sent and not yet answered by this test. */
  const unanswered = () => sent.filter((request) => !answered.has(request.packet.requestId));
  /** Answers every request `pick` accepts (default all), again and again as new ones go out. */
  const serve = async (pick: (request: Sent) => boolean = () => true, rounds = 50) => {
    for (let i = 0; i < rounds; i++) {
      const batch = unanswered().filter(pick);
      if (batch.length === 0) return;
      for (const request of batch) answer(request);
      await vi.advanceTimersByTimeAsync(0);
    }
  };

  const outcome: { body?: Buffer; error?: unknown; settled: boolean } = { settled: false };
  const read = async (from: ChunkFetcher = fetcher) => {
    const parts: Buffer[] = [];
    try {
      for await (const part of from.stream()) parts.push(part);
      outcome.body = Buffer.concat(parts);
    } catch (error) {
      outcome.error = error;
    } finally {
      outcome.settled = true;
    }
  };
  /** Another download of the same file, through the same pool and tracker, ended by `signal`. */
  const again = (signal?: AbortSignal) => new ChunkFetcher({ ...fetcherInit, signal });
  return { pool, tracker, servers, sent, datagrams, data, fetcher, client, again, answer, unanswered, serve, outcome, read };
}

const codeOf = (error: unknown) => (error instanceof GatewayError ? error.code : String(error));

describe('ChunkFetcher', () => {
  it('delivers chunks in order whatever order the answers come in', async () => {
    const t = setup();
    const reading = t.read();
    expect(t.sent.map((s) => s.packet.chunk)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(new Set(t.sent.map((s) => s.server))).toEqual(new Set(t.servers)); // round-robin
    // Out of order, but never three places on one server (that would count as a loss): chunks 0-7
    // went to the owner of their block, 8 to the other server (idle, it took the rest).
    for (const chunk of [1, 0, 3, 2, 5, 4, 7, 6, 8]) t.answer(t.sent[chunk]!);
    await reading;
    expect(t.outcome.body?.equals(t.data)).toBe(true);
    expect(t.fetcher.stats).toMatchObject({ requests: 9, retransmissions: 0, hedges: 0, badChunks: 0 });
  });

  it('trims the first and last chunk to the byte range asked for', async () => {
    const t = setup({ firstByte: 1_500, lastByte: 5_000 });
    const reading = t.read();
    expect(t.sent.map((s) => s.packet.chunk)).toEqual([1, 2, 3, 4]);
    await t.serve();
    await reading;
    expect(t.outcome.body?.equals(t.data.subarray(1_500, 5_001))).toBe(true);
  });

  it('asks another server for a chunk whose request timed out', async () => {
    const t = setup({ hedging: false });
    const [a, b] = t.servers;
    const reading = t.read();
    const lostOnA = t.sent.filter((s) => s.server === a).map((s) => s.packet.chunk);
    const before = t.sent.length;
    // a never answers; b answers at once. a's oldest request times out after its RTO (100 ms), the
    // others after the doubled one (RFC 6298 5.5), all asked of b.
    for (let i = 0; i < 100 && !t.outcome.settled; i++) {
      await t.serve((s) => s.server === b);
      await vi.advanceTimersByTimeAsync(5);
    }
    await reading;
    const retries = t.sent.slice(before);
    expect(retries.map((s) => s.packet.chunk).sort()).toEqual(lostOnA.sort());
    expect(retries.every((s) => s.server === b)).toBe(true);
    expect(t.outcome.body?.equals(t.data)).toBe(true);
    expect(t.fetcher.stats.retransmissions).toBe(lostOnA.length);
  });

  it('asks a server for a run of chunks in one datagram, and tracks and retries each chunk on its own', async () => {
    const t = setup({ initialWindow: 32, size: 64 * CHUNK, hedging: false });
    const reading = t.read();
    // A quarter of the window per datagram; each block of 16 chunks to the server that owns it.
    const [a, b] = t.servers;
    expect(t.datagrams.slice(0, 6).map((d) => [d.server.key, d.packet.chunk, d.packet.count])).toEqual([
      [a!.key, 0, 8],
      [a!.key, 8, 8],
      [b!.key, 16, 8],
      [b!.key, 24, 8],
      [a!.key, 32, 8],
      [a!.key, 40, 8],
    ]);
    expect(t.sent.map((s) => s.packet.chunk)).toEqual(Array.from({ length: t.sent.length }, (_, i) => i));
    // a loses chunk 2 of its first run: the three after it are answered, so it counts as lost at once
    // (packet threshold) and goes alone, to b.
    const before = t.datagrams.length;
    const lost = t.sent[2];
    await t.serve((s) => s !== lost);
    await reading;
    const retry = t.datagrams.slice(before).find((d) => d.packet.chunk === 2);
    expect(retry).toMatchObject({ server: b, packet: { chunk: 2 } });
    expect(retry?.packet.count).toBeUndefined();
    expect(t.outcome.body?.equals(t.data)).toBe(true);
    expect(t.fetcher.stats).toMatchObject({ requests: 65, retransmissions: 1 });
    expect(t.tracker.counters.reordered).toBe(1);
    expect(t.datagrams.length).toBeLessThan(20);
  });

  it('asks each server for the same blocks of chunks in every download of a file (cache affinity)', async () => {
    const t = setup({ initialWindow: 64, size: 64 * CHUNK, servers: 3 });
    const owners = async (read: Promise<void>) => {
      const from = t.sent.length;
      await t.serve();
      await read;
      expect(t.outcome.body?.equals(t.data)).toBe(true);
      return new Map(t.sent.slice(from).map((s) => [s.packet.chunk, s.server.key]));
    };
    const first = await owners(t.read());
    const second = await owners(t.read(t.again()));
    expect(second).toEqual(first);
    // Blocks of 16 chunks, dealt over the servers in key order.
    const keys = t.servers.map((server) => server.key).sort();
    for (const [chunk, key] of first) expect(key).toBe(keys[Math.floor(chunk / 16) % 3]);
  });

  it('hands the room a download frees to another that waits for some, not only back to itself', async () => {
    const t = setup({ size: 64 * CHUNK, readAheadChunks: 64, hedging: false });
    void t.read();
    const before = t.sent.length; // the windows are full
    const secondClient = new AbortController();
    const second = t.again(secondClient.signal);
    const secondRead = (async () => {
      for await (const part of second.stream()) void part;
    })();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.sent).toHaveLength(before); // no room: the second download queues for it
    // Two answers for the first download, one per event-loop turn as datagrams come, and no timer
    // tick: the room they free is shared.
    for (const request of t.sent.slice(0, 2)) {
      t.answer(request);
      await vi.advanceTimersByTimeAsync(0);
    }
    expect(t.sent.slice(before).map((s) => s.packet.chunk)).toContain(0); // the second download's first chunk
    secondClient.abort();
    t.client.abort();
    await vi.advanceTimersByTimeAsync(0);
    await secondRead;
  });

  it('asks again, elsewhere, for a chunk that failed its MD5 or had the wrong length', async () => {
    const t = setup();
    const [a] = t.servers;
    const reading = t.read();
    const [first, second] = t.sent.filter((s) => s.server === a);
    t.answer(first!, { md5: Buffer.alloc(16) });
    t.answer(second!, { data: Buffer.alloc(10), md5: chunkDigest(Buffer.alloc(10)) });
    await vi.advanceTimersByTimeAsync(0);
    expect(t.fetcher.stats.badChunks).toBe(2);
    expect(t.unanswered().filter((s) => s.packet.chunk === first!.packet.chunk || s.packet.chunk === second!.packet.chunk).every((s) => s.server !== a)).toBe(true);
    await t.serve();
    await reading;
    expect(t.outcome.body?.equals(t.data)).toBe(true);
    expect(t.pool.counters.dropped).toBe(0);
  });

  it('finishes from the honest server when the other only lies, which loses the file (not its place in the pool)', async () => {
    const t = setup({ size: 20 * CHUNK });
    const [liar] = t.servers;
    const reading = t.read();
    for (let round = 0; round < 50 && !t.outcome.settled; round++) {
      for (const request of t.unanswered()) t.answer(request, request.server === liar ? { md5: Buffer.alloc(16) } : {});
      await vi.advanceTimersByTimeAsync(0);
    }
    await reading;
    expect(t.outcome.body?.equals(t.data)).toBe(true);
    expect(t.pool.counters).toMatchObject({ filesLost: 1, dropped: 0 });
    expect(t.pool.distrusts(liar!, t.fetcher['init'].file.path)).toBe(true);
    expect(t.fetcher.stats.badChunks).toBeGreaterThanOrEqual(3);
    expect(t.fetcher.serversUsed).toEqual(new Set([t.servers[1]!.key]));
  });

  it('hedges the chunk the client waits for on another server when its server is slow', async () => {
    // Not the endgame (only that chunk is hedged); read-ahead reaches the fast server's first block.
    const t = setup({ size: 80 * CHUNK, readAheadChunks: 24 });
    const [slow, fast] = t.servers; // the slow one owns block 0 (the first key in order)
    const reading = t.read();
    const stuck = t.sent.find((s) => s.server === slow && s.packet.chunk === 0)!;
    await t.serve((s) => s.server === fast);
    expect(t.outcome.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(10); // one tick, well before the slow server's RTO
    const hedge = t.unanswered().find((s) => s.packet.chunk === 0 && s !== stuck);
    expect(hedge?.server).toBe(fast);
    expect(t.fetcher.stats).toMatchObject({ hedges: 1, retransmissions: 0 });
    await t.serve((s) => s.server === fast);
    // The first copy stays in flight: its late answer is the slow server's, and delivers nothing twice.
    const slowAnswers = slow!.stats.answers;
    expect(t.answer(stuck)).toBe(true);
    expect(slow!.stats.answers).toBe(slowAnswers + 1);
    // Each chunk of the silent server is hedged in turn as the client comes to wait for it.
    for (let i = 0; i < 100 && !t.outcome.settled; i++) {
      await t.serve((s) => s.server === fast);
      await vi.advanceTimersByTimeAsync(10);
    }
    await reading;
    expect(t.outcome.body?.equals(t.data)).toBe(true);
    expect(t.fetcher.stats.hedges).toBeGreaterThan(5);
  });

  it('hedges every late chunk in the endgame, and never without a second server', async () => {
    const t = setup({ size: 4 * CHUNK });
    const reading = t.read();
    const held = t.sent.filter((s) => s.packet.chunk === 1 || s.packet.chunk === 3);
    await t.serve((s) => !held.includes(s));
    await vi.advanceTimersByTimeAsync(10);
    const hedges = t.unanswered().filter((s) => !held.includes(s));
    expect(hedges.map((s) => s.packet.chunk).sort()).toEqual([1, 3]);
    for (const hedge of hedges) expect(hedge.server).not.toBe(held.find((s) => s.packet.chunk === hedge.packet.chunk)!.server);
    await t.serve();
    await reading;
    expect(t.outcome.body?.equals(t.data)).toBe(true);

    const single = setup({ servers: 1, size: 2 * CHUNK });
    const alone = single.read();
    await single.serve((s) => s.packet.chunk === 0);
    await vi.advanceTimersByTimeAsync(50);
    expect(single.fetcher.stats.hedges).toBe(0);
    await vi.advanceTimersByTimeAsync(100);
    await single.serve();
    await alone;
    expect(single.outcome.body?.equals(single.data)).toBe(true);
  });

  it('keeps at most readAheadChunks ahead of the chunk being delivered', async () => {
    const t = setup({ size: 20 * CHUNK, readAheadChunks: 4 });
    const stream = t.fetcher.stream();
    const first = stream.next();
    expect(t.sent.map((s) => s.packet.chunk)).toEqual([0, 1, 2, 3]);
    await t.serve();
    expect((await first).value?.equals(t.data.subarray(0, CHUNK))).toBe(true);
    await vi.advanceTimersByTimeAsync(50);
    expect(Math.max(...t.sent.map((s) => s.packet.chunk))).toBe(4);
    await stream.return();
  });

  it('fails with GW_ERR_STALLED when the client has waited stallTimeoutMs for its next chunk', async () => {
    const t = setup({ servers: 1, stallTimeoutMs: 1_000 });
    const reading = t.read();
    await vi.advanceTimersByTimeAsync(900);
    expect(t.outcome.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    await reading;
    expect(codeOf(t.outcome.error)).toBe('GW_ERR_STALLED');
    expect(t.fetcher.stats.requests).toBe(t.sent.length);
    await vi.advanceTimersByTimeAsync(10_000); // what was in flight runs out, and nothing more is sent
    expect(t.tracker.inFlight).toBe(0);
    expect(t.fetcher.stats.requests).toBe(t.sent.length);
  });

  it('ends at once when cancelled while waiting for a chunk, and asks for nothing more', async () => {
    const t = setup({ stallTimeoutMs: 10_000 });
    const reading = t.read();
    await vi.advanceTimersByTimeAsync(5); // nothing answered: the stream waits for chunk 0
    expect(t.outcome.settled).toBe(false);
    t.client.abort();
    await vi.advanceTimersByTimeAsync(0);
    await reading;
    expect(t.outcome).toMatchObject({ settled: true, body: Buffer.alloc(0) });
    expect(t.fetcher.wasCancelled).toBe(true);
    const sent = t.sent.length;
    await vi.advanceTimersByTimeAsync(1_000); // requests time out: none is asked again
    expect(t.sent.length).toBe(sent);
  });

  it('does not count a slow client as a stall', async () => {
    const t = setup({ servers: 1, stallTimeoutMs: 1_000, readAheadChunks: 2 });
    const stream = t.fetcher.stream();
    const first = stream.next();
    await t.serve();
    await first;
    await vi.advanceTimersByTimeAsync(5_000); // the client takes its time
    const rest: Buffer[] = [];
    for (;;) {
      const next = stream.next();
      await t.serve();
      const { done, value } = await next;
      if (done) break;
      rest.push(value);
    }
    expect(Buffer.concat(rest).equals(t.data.subarray(CHUNK))).toBe(true);
  });

  it('fails with GW_ERR_SOURCES_GONE at once when every server holding the file left for good', async () => {
    const t = setup();
    const reading = t.read();
    t.pool.remove(t.servers[0]!, 'left', 'test');
    await vi.advanceTimersByTimeAsync(0);
    expect(t.outcome.settled).toBe(false);
    t.pool.remove(t.servers[1]!, 'dropped', 'test');
    await vi.advanceTimersByTimeAsync(0);
    await reading;
    expect(codeOf(t.outcome.error)).toBe('GW_ERR_SOURCES_GONE');
  });

  it('fails with GW_ERR_SOURCES_GONE at once when its last server is evicted, not at the stall timeout', async () => {
    const gone = setup({ servers: 1, stallTimeoutMs: 10_000 });
    const failing = gone.read();
    gone.pool.remove(gone.servers[0]!, 'evicted', 'test');
    await vi.advanceTimersByTimeAsync(0);
    await failing;
    expect(codeOf(gone.outcome.error)).toBe('GW_ERR_SOURCES_GONE');
  });

  it('fails with GW_ERR_UNREADABLE at once when its only server cannot read the file, without retrying', async () => {
    const t = setup({ servers: 1, stallTimeoutMs: 10_000 });
    const reading = t.read();
    for (const request of t.unanswered()) t.answer(request, { type: 'error', requestId: request.packet.requestId, code: 'unreadable', message: 'permission denied' });
    await vi.advanceTimersByTimeAsync(0);
    await reading;
    expect(codeOf(t.outcome.error)).toBe('GW_ERR_UNREADABLE');
    expect(t.fetcher.stats.retransmissions).toBe(0);
  });

  it('believes "stale" from a server only the second time in a row', async () => {
    const t = setup({ size: 12 * CHUNK });
    const [a, b] = t.servers;
    const reading = t.read();
    const stale = (request: Sent): Packet => ({ type: 'error', requestId: request.packet.requestId, code: 'stale', message: 'changed' });
    const onA = t.sent.filter((s) => s.server === a);
    t.answer(onA[0]!, stale(onA[0]!)); // once (a corrupted request?): a stays
    t.answer(onA[1]!);
    t.answer(onA[2]!, stale(onA[2]!));
    await vi.advanceTimersByTimeAsync(0);
    expect(t.fetcher.stats.requests).toBeGreaterThan(12);
    t.answer(onA[3]!, stale(onA[3]!)); // twice in a row: a no longer holds the version
    await vi.advanceTimersByTimeAsync(0);
    const after = t.sent.length;
    await t.serve((s) => s.server === b);
    await vi.advanceTimersByTimeAsync(200);
    await t.serve((s) => s.server === b);
    await reading;
    expect(t.outcome.body?.equals(t.data)).toBe(true);
    expect(t.sent.slice(after).every((s) => s.server === b)).toBe(true);

    const lone = setup({ servers: 1 });
    const failing = lone.read();
    for (let round = 0; round < 5 && !lone.outcome.settled; round++) {
      for (const request of lone.unanswered()) lone.answer(request, stale(request));
      await vi.advanceTimersByTimeAsync(0);
    }
    await failing;
    expect(codeOf(lone.outcome.error)).toBe('GW_ERR_FILE_CHANGED');
  });
});
