import type { Packet } from '@httpgw/protocol';
import { silentLogger } from '@httpgw/runtime';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileLookup } from '../src/lookup/file-lookup.js';
import { ask } from '../src/udp/ask.js';
import { RequestTracker } from '../src/udp/request-tracker.js';
import { ServerPool, type PoolServer } from '../src/pool/server-pool.js';

// A decided lookup stops asking: ask() and FileLookup over a real pool and tracker, fake timers,
// servers played by `behave` (called for every request sent). Initial RTO 100 ms.

let pool: ServerPool;
let tracker: RequestTracker;
let servers: PoolServer[];
/** Request ids each server was sent, by server name. */
let asked: Map<string, number[]>;
/** What a server does with a request: an answer after `afterMs`, or nothing. */
let behave: (server: PoolServer, request: Packet & { requestId: number }) => { answer: Packet; afterMs: number } | undefined;

/** A pool of servers a and b and a tracker, on fake timers unless `real`. */
function start(real = false) {
  if (!real) vi.useFakeTimers();
  const now = () => Date.now();
  pool = new ServerPool({ now, heartbeatMs: 3_600_000, rtt: { initialRtoMs: 100, minRtoMs: 20, granularityMs: 1 } });
  asked = new Map();
  behave = () => undefined;
  tracker = new RequestTracker({
    pool,
    now,
    tickMs: 5,
    transmit: (server, packet) => {
      if (!('requestId' in packet)) return;
      asked.set(server.name, [...(asked.get(server.name) ?? []), packet.requestId]);
      const reply = behave(server, packet);
      if (reply) setTimeout(() => tracker.onAnswer({ ...reply.answer, requestId: packet.requestId } as Packet & { requestId: number }, server.key), reply.afterMs);
    },
  });
  servers = ['a', 'b'].map((name, i) => pool.admit('127.0.0.1', 9001 + i, name)!);
}

beforeEach(() => start());

afterEach(() => {
  tracker.close();
  pool.close();
  vi.useRealTimers();
});

const metaRequest = (requestId: number): Packet => ({ type: 'meta-request', requestId, path: 'f.bin', chunkSize: 1_024 });
const meta: Packet = { type: 'meta', requestId: 0, kind: 'file', size: 10, mtimeMs: 1, version: 'v1' };
const busy: Packet = { type: 'error', requestId: 0, code: 'busy', message: 'hashing' };
const timesAsked = (name: string) => asked.get(name)?.length ?? 0;

describe('ask with a signal', () => {
  it('sends nothing when the signal is already aborted', async () => {
    const stop = new AbortController();
    stop.abort();
    expect(await ask(tracker, servers[0]!, metaRequest, 6, stop.signal)).toBeUndefined();
    expect(timesAsked('a')).toBe(0);
  });

  it('resolves undefined at once when aborted, and does not send the request again once it is lost', async () => {
    const stop = new AbortController();
    let result: Packet | undefined | 'pending' = 'pending';
    void ask(tracker, servers[0]!, metaRequest, 6, stop.signal).then((answer) => (result = answer));
    await vi.advanceTimersByTimeAsync(50);
    expect([timesAsked('a'), result]).toEqual([1, 'pending']);
    stop.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(timesAsked('a')).toBe(1);
    expect(tracker.inFlight).toBe(0);
  });

  it('is asked again on loss while the signal is not aborted', async () => {
    const stop = new AbortController();
    const answer = ask(tracker, servers[0]!, metaRequest, 3, stop.signal);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await answer).toBeUndefined();
    expect(timesAsked('a')).toBe(3);
  });
});

describe('FileLookup once decided', () => {
  const lookup = () => new FileLookup({ pool, tracker, logger: silentLogger, chunkSize: 1_024, cacheMs: 0, now: () => Date.now() });

  it('stops asking a silent server again', async () => {
    behave = (server) => (server.name === 'a' ? { answer: meta, afterMs: 1 } : undefined);
    const result = lookup().lookup('f.bin');
    // a answers at once; b's request is lost after its RTO (100 ms) and sent again; the grace
    // (twice b's RTO) runs out at 200 ms: decided, with a alone.
    await vi.advanceTimersByTimeAsync(250);
    expect(await result).toMatchObject({ kind: 'file', file: { version: 'v1', servers: [servers[0]!.key] } });
    const atDecision = timesAsked('b');
    expect(atDecision).toBe(2);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(timesAsked('b')).toBe(atDecision);
  });

  it('stops asking a server that is still busy hashing the file', async () => {
    // Real timers: the pauses between asks are node:timers/promises', which fake timers leave alone.
    tracker.close();
    pool.close();
    vi.useRealTimers();
    start(true);
    behave = (server) => ({ answer: server.name === 'a' ? meta : busy, afterMs: 1 });
    // a answers at once; b is busy, asked again after 10 then 20 ms; the grace (twice b's RTO of
    // at least 20 ms) runs out first.
    expect(await lookup().lookup('f.bin')).toMatchObject({ kind: 'file' });
    const atDecision = timesAsked('b');
    expect(atDecision).toBeGreaterThan(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(timesAsked('b')).toBe(atDecision);
  });
});
