import type { Packet } from '@httpgw/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ask } from '../src/udp/ask.js';
import { RequestTracker } from '../src/udp/request-tracker.js';
import { ServerPool, type PoolServer } from '../src/pool/server-pool.js';

// The tracker over a real pool, a recording transmit and fake timers: no sockets.

interface Sent {
  server: PoolServer;
  packet: Packet & { requestId: number };
}

let pool: ServerPool;
let tracker: RequestTracker;
let sent: Sent[];
let a: PoolServer;
let b: PoolServer;

beforeEach(() => {
  vi.useFakeTimers();
  const now = () => Date.now();
  pool = new ServerPool({ now, heartbeatMs: 3_600_000, rtt: { initialRtoMs: 100, minRtoMs: 20, granularityMs: 1 } });
  sent = [];
  tracker = new RequestTracker({
    pool,
    now,
    tickMs: 5,
    transmit: (server, packet) => {
      if ('requestId' in packet) sent.push({ server, packet });
    },
  });
  a = pool.admit('127.0.0.1', 9001, 'a')!;
  b = pool.admit('127.0.0.1', 9002, 'b')!;
});

afterEach(() => {
  tracker.close();
  pool.close();
  vi.useRealTimers();
});

const metaRequest = (requestId: number): Packet => ({ type: 'meta-request', requestId, path: 'f' });
const metaAnswer = (requestId: number): Packet & { requestId: number } => ({ type: 'meta', requestId, kind: 'file', size: 1, mtimeMs: 0, version: 'v' });

function handlers() {
  return { onAnswer: vi.fn(), onLost: vi.fn() };
}

describe('RequestTracker', () => {
  it('says an answer is urgent only when its request says so, and only from the server asked', () => {
    let waiting = true;
    const idA = tracker.send(a, metaRequest, { ...handlers(), urgent: () => waiting });
    const idB = tracker.send(b, metaRequest, handlers());
    expect(tracker.isUrgent(idA, a.key)).toBe(true);
    expect(tracker.isUrgent(idA, b.key)).toBe(false);
    expect(tracker.isUrgent(idB, b.key)).toBe(false);
    waiting = false;
    expect(tracker.isUrgent(idA, a.key)).toBe(false);
    waiting = true;
    tracker.onAnswer(metaAnswer(idA), a.key);
    expect(tracker.isUrgent(idA, a.key)).toBe(false);
  });

  it('routes each answer to the request it answers, whatever the order and the server', () => {
    const first = handlers();
    const second = handlers();
    const idA = tracker.send(a, metaRequest, first);
    const idB = tracker.send(b, metaRequest, second);
    expect(idA).not.toBe(idB);
    expect(sent.map((s) => s.packet.requestId)).toEqual([idA, idB]);
    expect(a.inFlight + b.inFlight).toBe(2);
    expect(tracker.onAnswer(metaAnswer(idB), b.key)).toBe(true);
    expect(tracker.onAnswer(metaAnswer(idA), a.key)).toBe(true);
    expect(first.onAnswer).toHaveBeenCalledWith(expect.objectContaining({ requestId: idA }), a, undefined);
    expect(second.onAnswer).toHaveBeenCalledWith(expect.objectContaining({ requestId: idB }), b, undefined);
    expect(tracker.counters).toMatchObject({ sent: 2, answered: 2, late: 0 });
    expect(a.inFlight + b.inFlight).toBe(0);
  });

  it('discards an answer from another address than the server asked, and still takes the real one', () => {
    const owner = handlers();
    const id = tracker.send(a, metaRequest, owner);
    expect(tracker.onAnswer(metaAnswer(id), b.key)).toBe(false);
    expect(tracker.onAnswer(metaAnswer(id), '10.9.9.9:9001')).toBe(false);
    expect(tracker.counters.spoofed).toBe(2);
    expect(owner.onAnswer).not.toHaveBeenCalled();
    expect(tracker.onAnswer(metaAnswer(id), a.key)).toBe(true);
    expect(owner.onAnswer).toHaveBeenCalledTimes(1);
  });

  it('counts duplicates, answers to unknown ids and answers after a timeout as late', () => {
    const owner = handlers();
    const id = tracker.send(a, metaRequest, owner);
    tracker.onAnswer(metaAnswer(id), a.key);
    expect(tracker.onAnswer(metaAnswer(id), a.key)).toBe(false);
    expect(tracker.onAnswer(metaAnswer(12345), a.key)).toBe(false);
    const slow = handlers();
    const slowId = tracker.send(b, metaRequest, slow);
    vi.advanceTimersByTime(200);
    expect(slow.onLost).toHaveBeenCalledWith('timeout', b);
    expect(tracker.onAnswer(metaAnswer(slowId), b.key)).toBe(false);
    expect(slow.onAnswer).not.toHaveBeenCalled();
    expect(tracker.counters.late).toBe(3);
  });

  it('times requests out after the RTO, oldest first, exactly once each', () => {
    const lost: number[] = [];
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(tracker.send(a, metaRequest, { onAnswer: vi.fn(), onLost: () => lost.push(i) }));
      vi.advanceTimersByTime(10);
    }
    expect(a.rtt.rtoMs).toBe(100);
    vi.advanceTimersByTime(70); // the first is 100 ms old
    expect(lost).toEqual([0]);
    vi.advanceTimersByTime(500);
    // One event: the backoff doubled the RTO once, and the later two timed out with it.
    expect(lost).toEqual([0, 1, 2]);
    expect(tracker.counters.timeouts).toBe(3);
    expect(a.stats.timeouts).toBe(3);
    expect(tracker.inFlight).toBe(0);
  });

  it('takes a request as lost once three later ones to the same server were answered (packet threshold)', () => {
    const owners = Array.from({ length: 5 }, () => handlers());
    const ids = owners.map((owner) => tracker.send(a, metaRequest, owner));
    tracker.onAnswer(metaAnswer(ids[2]!), a.key); // two earlier ones pending: not yet
    expect(owners[0]!.onLost).not.toHaveBeenCalled();
    tracker.onAnswer(metaAnswer(ids[3]!), a.key); // ids[0] is three places before it
    expect(owners[0]!.onLost).toHaveBeenCalledWith('reordered', a);
    expect(owners[1]!.onLost).not.toHaveBeenCalled();
    tracker.onAnswer(metaAnswer(ids[4]!), a.key);
    expect(owners[1]!.onLost).toHaveBeenCalledWith('reordered', a);
    expect(tracker.counters.reordered).toBe(2);
    // Requests to another server are not affected.
    const other = handlers();
    tracker.send(b, metaRequest, other);
    tracker.onAnswer(metaAnswer(tracker.send(a, metaRequest, handlers())), a.key);
    expect(other.onLost).not.toHaveBeenCalled();
  });

  it('takes a request as lost when a later one was answered and it is older than 9/8 RTT (time threshold)', () => {
    const early = handlers();
    tracker.send(a, metaRequest, early);
    vi.advanceTimersByTime(30);
    const late = tracker.send(a, metaRequest, handlers());
    vi.advanceTimersByTime(5);
    tracker.onAnswer(metaAnswer(late), a.key); // RTT 5 ms; the earlier request is 35 ms old
    expect(early.onLost).toHaveBeenCalledWith('reordered', a);
  });

  it('shrinks the window on a reorder loss without counting it against the server health', () => {
    const ids = Array.from({ length: 4 }, () => tracker.send(a, metaRequest, handlers()));
    const windowBefore = a.window.size;
    tracker.onAnswer(metaAnswer(ids[3]!), a.key);
    expect(a.window.size).toBeLessThan(windowBefore);
    expect(a.consecutiveTimeouts).toBe(0);
  });

  it('gives up on every request to a server that leaves, and a retry to it still ends', async () => {
    const owner = handlers();
    tracker.send(a, metaRequest, owner);
    const answer = ask(tracker, a, metaRequest, 3);
    pool.remove(a, 'left', 'test');
    tracker.dropServer(a);
    expect(owner.onLost).toHaveBeenCalledWith('timeout', a);
    // ask sent again to the departed server: that request must still time out, not hang.
    await vi.advanceTimersByTimeAsync(10_000);
    await expect(answer).resolves.toBeUndefined();
    expect(tracker.inFlight).toBe(0);
  }, 2_000);

  it('learns from an answer that comes after its timeout: the round trip goes to the RTO, the window comes back', () => {
    a.rtt.sample(10);
    const windowBefore = a.window.size;
    const rtoBefore = a.rtt.rtoMs;
    const owner = handlers();
    const id = tracker.send(a, metaRequest, owner);
    vi.advanceTimersByTime(rtoBefore + 10);
    expect(owner.onLost).toHaveBeenCalledWith('timeout', a);
    expect(a.window.size).toBeLessThan(windowBefore);
    vi.advanceTimersByTime(100); // answered 100 ms after the timeout: the server's queue was that long
    expect(tracker.onAnswer(metaAnswer(id), a.key)).toBe(false);
    expect(owner.onAnswer).not.toHaveBeenCalled();
    expect(tracker.counters).toMatchObject({ late: 1, spuriousTimeouts: 1 });
    expect(a.window.size).toBe(windowBefore);
    expect(a.rtt.smoothedMs).toBeGreaterThan(10);
    expect(a.rtt.rtoMs).toBeGreaterThan(rtoBefore);
    expect(a.consecutiveTimeouts).toBe(0);
    // The same late answer again, or one from another address, teaches nothing.
    expect(tracker.onAnswer(metaAnswer(id), a.key)).toBe(false);
    expect(tracker.counters.spuriousTimeouts).toBe(1);
  });
});

