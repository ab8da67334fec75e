import { randomBytes } from 'node:crypto';
import { chunkDigest } from '@httpgw/protocol';
import { silentLogger } from '@httpgw/runtime';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChunkFetcher, type ChunkFetcherInit } from '../src/transfer/chunk-fetcher.js';
import { ReadAheadBudget } from '../src/transfer/read-ahead-budget.js';
import { Transfers, type TransferSettings } from '../src/transfer/transfers.js';
import { RequestTracker } from '../src/udp/request-tracker.js';
import { ServerPool } from '../src/pool/server-pool.js';

// Transfers over a real pool and tracker whose one server never answers unless told to: how a
// transfer ends (its client's signal, the gateway's stop), what transfers share, and the checks on
// the numbers they are built with.

const CHUNK = 1_024;
const SETTINGS: TransferSettings = { chunkSize: CHUNK, readAheadBytes: 8 * CHUNK, readAheadBudgetBytes: 64 * CHUNK, stallTimeoutMs: 60_000, hedging: true };

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  vi.useRealTimers();
});

function setup(settings: Partial<TransferSettings> = {}) {
  vi.useFakeTimers();
  const now = () => Date.now();
  const pool = new ServerPool({ now, heartbeatMs: 3_600_000, rtt: { initialRtoMs: 60_000, minRtoMs: 60_000, granularityMs: 1 } });
  const sent: Array<{ requestId: number; chunk: number; count: number }> = [];
  const tracker = new RequestTracker({
    pool,
    now,
    transmit: (_server, packet) => {
      if (packet.type === 'chunk-request') sent.push({ requestId: packet.requestId, chunk: packet.chunk, count: packet.count ?? 1 });
    },
  });
  cleanups.push(() => {
    tracker.close();
    pool.close();
  });
  const server = pool.admit('127.0.0.1', 9001, 's0')!;
  const transfers = new Transfers({ ...SETTINGS, ...settings }, pool, tracker, silentLogger);
  const data = randomBytes(4 * CHUNK);
  const file = { path: 'f.bin', size: data.length, mtimeMs: 0, version: 'v1', servers: [server.key] };
  /** Answers every chunk asked for so far. */
  const answerAll = () => {
    for (const { requestId, chunk, count } of sent.splice(0)) {
      for (let i = 0; i < count; i++) {
        const piece = data.subarray((chunk + i) * CHUNK, (chunk + i + 1) * CHUNK);
        tracker.onAnswer({ type: 'chunk', requestId: requestId + i, chunk: chunk + i, hasNext: (chunk + i + 1) * CHUNK < data.length, md5: chunkDigest(piece), data: piece }, server.key);
      }
    }
  };
  /** Reads a transfer to its end: its bytes, or what it threw. */
  const read = async (chunks: AsyncGenerator<Buffer, void, undefined>) => {
    const parts: Buffer[] = [];
    try {
      for await (const part of chunks) parts.push(part);
      return Buffer.concat(parts);
    } catch (error) {
      return error;
    }
  };
  return { pool, tracker, transfers, file, data, sent, answerAll, read };
}

describe('Transfers', () => {
  it('ends a transfer at once when its client\'s signal aborts, counted neither completed nor failed', async () => {
    const t = setup();
    const client = new AbortController();
    const { chunks } = t.transfers.fetch(t.file, 0, t.file.size - 1, client.signal);
    const reading = t.read(chunks);
    await vi.advanceTimersByTimeAsync(5); // waiting for its first chunk
    expect(t.transfers.active).toBe(1);
    client.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(await reading).toEqual(Buffer.alloc(0));
    expect(t.transfers.active).toBe(0);
    expect(t.transfers.counters).toMatchObject({ started: 1, completed: 0, failed: 0 });
  });

  it('ends at once a transfer whose client left before it started', async () => {
    const t = setup();
    const client = new AbortController();
    client.abort();
    const { chunks } = t.transfers.fetch(t.file, 0, t.file.size - 1, client.signal);
    expect(await t.read(chunks)).toEqual(Buffer.alloc(0));
    expect(t.sent).toHaveLength(0);
  });

  it('delivers the bytes asked for and counts the transfer completed', async () => {
    const t = setup();
    const { chunks } = t.transfers.fetch(t.file, 100, 3_000, new AbortController().signal);
    const reading = t.read(chunks);
    for (let i = 0; i < 5; i++) {
      t.answerAll();
      await vi.advanceTimersByTimeAsync(0);
    }
    expect(await reading).toEqual(t.data.subarray(100, 3_001));
    expect(t.transfers.counters).toMatchObject({ started: 1, completed: 1, failed: 0 });
  });

  it('stop() ends every transfer in progress, and any asked for later, with or without a signal', async () => {
    const t = setup();
    const withSignal = t.read(t.transfers.fetch(t.file, 0, t.file.size - 1, new AbortController().signal).chunks);
    const without = t.read(t.transfers.fetch(t.file, 0, t.file.size - 1).chunks);
    await vi.advanceTimersByTimeAsync(5);
    expect(t.transfers.active).toBe(2);
    t.transfers.stop();
    await vi.advanceTimersByTimeAsync(0);
    expect([await withSignal, await without]).toEqual([Buffer.alloc(0), Buffer.alloc(0)]);
    const late = t.transfers.fetch(t.file, 0, t.file.size - 1, new AbortController().signal);
    expect(await t.read(late.chunks)).toEqual(Buffer.alloc(0));
    expect(t.transfers.active).toBe(0);
  });

  it('runs the ticks of all its transfers from one timer', async () => {
    const t = setup();
    const readings = [t.read(t.transfers.fetch(t.file, 0, t.file.size - 1).chunks)];
    await vi.advanceTimersByTimeAsync(5);
    const withOne = vi.getTimerCount(); // the pool's, the tracker's and the transfers' ticker
    readings.push(...[1, 2].map(() => t.read(t.transfers.fetch(t.file, 0, t.file.size - 1).chunks)));
    await vi.advanceTimersByTimeAsync(5);
    expect(t.transfers.active).toBe(3);
    expect(vi.getTimerCount()).toBe(withOne);
    t.transfers.stop();
    await Promise.all(readings);
    expect(vi.getTimerCount()).toBe(withOne - 1); // the ticker stopped with the last transfer
  });
});

describe('the numbers transfers are built with', () => {
  it('Transfers: a RangeError naming the bad setting', () => {
    const t = setup();
    const make = (settings: Partial<TransferSettings>) => () => new Transfers({ ...SETTINGS, ...settings }, t.pool, t.tracker, silentLogger);
    expect(make({ chunkSize: 0 })).toThrow(new RangeError('chunkSize must be an integer of at least 1 (got 0)'));
    expect(make({ chunkSize: 1.5 })).toThrow(/^chunkSize/);
    expect(make({ readAheadBytes: 0 })).toThrow(new RangeError('readAheadBytes must be a number above 0 (got 0)'));
    expect(make({ stallTimeoutMs: Number.NaN })).toThrow(/^stallTimeoutMs must be a number above 0/);
    expect(make({ readAheadBudgetBytes: -1 })).toThrow(/^limitBytes must be 0 or more/);
    expect(make({})).not.toThrow();
  });

  it('ReadAheadBudget: a RangeError naming the bad option', () => {
    expect(() => new ReadAheadBudget({ limitBytes: 10, chunkBytes: 0 })).toThrow(/^chunkBytes must be an integer of at least 1/);
    expect(() => new ReadAheadBudget({ limitBytes: Number.NaN, chunkBytes: 1 })).toThrow(/^limitBytes/);
    expect(() => new ReadAheadBudget({ limitBytes: 10, chunkBytes: 1, minimumChunks: -1 })).toThrow(/^minimumChunks must be an integer of at least 0/);
    expect(() => new ReadAheadBudget({ limitBytes: 10, chunkBytes: 1, minimumChunks: 0 })).not.toThrow();
  });

  it('ChunkFetcher: a RangeError naming the bad option, before anything is asked', () => {
    const t = setup();
    const init: ChunkFetcherInit = { file: t.file, firstByte: 0, lastByte: t.file.size - 1, chunkSize: CHUNK, readAheadChunks: 4, stallTimeoutMs: 1_000, pool: t.pool, tracker: t.tracker };
    const make = (change: Partial<ChunkFetcherInit>) => () => new ChunkFetcher({ ...init, ...change });
    expect(make({ readAheadChunks: 0 })).toThrow(new RangeError('readAheadChunks must be an integer of at least 1 (got 0)'));
    expect(make({ chunkSize: -1 })).toThrow(/^chunkSize/);
    expect(make({ stallTimeoutMs: 0 })).toThrow(/^stallTimeoutMs/);
    expect(make({ firstByte: -1 })).toThrow(/^firstByte/);
    expect(make({ lastByte: t.file.size })).toThrow(new RangeError(`lastByte must be an integer in -1..${t.file.size - 1} (got ${t.file.size})`));
    expect(make({ firstByte: 10, lastByte: 8 })).toThrow(/^lastByte/);
    expect(make({ roundRobinStart: -1 })).toThrow(/^roundRobinStart/);
    expect(make({ firstByte: 10, lastByte: 9 })).not.toThrow(); // an empty range
    expect(t.sent).toHaveLength(0);
  });
});
