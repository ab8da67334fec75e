import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createSeededRandom } from './support/seeded-random.js';
import { createUdpRelay, type UdpRelay, type UdpRelayInit } from './support/udp-relay.js';
import { until } from './support/wait.js';

interface Received { data: Buffer; from: RemoteInfo }
interface Peer { socket: Socket; port: number; received: Received[] }

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/** A UDP socket on 127.0.0.1:0 (or `address`) that records what it receives; `echo` sends every datagram back. */
async function peer(echo = false, address = '127.0.0.1'): Promise<Peer> {
  const socket = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const received: Received[] = [];
  socket.on('message', (data, from) => {
    received.push({ data, from });
    if (echo) socket.send(data, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  cleanups.push(() => new Promise((resolve) => socket.close(() => resolve())));
  return { socket, port: socket.address().port, received };
}

async function relayTo(target: Peer, init: Omit<UdpRelayInit, 'target'> = {}, address = '127.0.0.1'): Promise<UdpRelay> {
  const relay = await createUdpRelay({ target: { address, port: target.port }, ...init });
  cleanups.push(() => relay.close());
  return relay;
}


const seq = (i: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(i);
  return b;
};
function sendSeq(from: Peer, relay: UdpRelay, count: number): void {
  for (let i = 0; i < count; i++) from.socket.send(seq(i), relay.address.port, relay.address.address);
}
const seqs = (received: Received[]): number[] => received.map((r) => r.data.readUInt32BE(0));
/** Everything the relay took in toward the target has been either forwarded or counted as gone. */
const ingested = (relay: UdpRelay): number => {
  const s = relay.stats.toTarget;
  return s.forwarded - s.duplicated + s.dropped + s.blackholed + s.silenced + s.oversize;
};

describe('seeded random', () => {
  it('is deterministic per seed and in [0, 1)', () => {
    const a = createSeededRandom(7);
    const b = createSeededRandom(7);
    const xs = Array.from({ length: 1000 }, a);
    expect(Array.from({ length: 1000 }, b)).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(createSeededRandom(8)()).not.toBe(xs[0]);
  });
});

describe('udp relay', () => {
  it('forwards both ways with one upstream socket per client', async () => {
    const target = await peer(true);
    const relay = await relayTo(target);
    const a = await peer();
    const b = await peer();
    sendSeq(a, relay, 3);
    await until(() => a.received.length === 3);
    sendSeq(b, relay, 2);
    await until(() => b.received.length === 2);

    expect(seqs(a.received)).toEqual([0, 1, 2]);
    expect(a.received.every((r) => r.from.port === relay.address.port)).toBe(true);
    const clients = relay.clients();
    expect(clients.map((c) => c.client.port)).toEqual([a.port, b.port]);
    // The target sees exactly one distinct source per client: that client's upstream socket.
    const sources = new Set(target.received.map((r) => r.from.port));
    expect(sources).toEqual(new Set(clients.map((c) => c.upstream.port)));
    expect(sources.size).toBe(2);
    expect(sources.has(a.port) || sources.has(relay.address.port)).toBe(false);
    expect(relay.stats.toTarget.forwarded).toBe(5);
    expect(relay.stats.fromTarget.forwarded).toBe(5);
  });

  it('drops about the configured ratio and counts exactly what arrived', async () => {
    const target = await peer();
    const relay = await relayTo(target, { seed: 3, toTarget: { loss: 0.2 } });
    const client = await peer();
    sendSeq(client, relay, 2000);
    await until(() => ingested(relay) === 2000);
    await until(() => target.received.length === relay.stats.toTarget.forwarded);

    const { forwarded, dropped } = relay.stats.toTarget;
    expect(forwarded + dropped).toBe(2000);
    expect(dropped / 2000).toBeGreaterThan(0.16);
    expect(dropped / 2000).toBeLessThan(0.24);
    expect(new Set(seqs(target.received)).size).toBe(forwarded);
  });

  it('loses in bursts of about lossBurst datagrams', async () => {
    const target = await peer();
    const relay = await relayTo(target, { seed: 5, toTarget: { loss: 0.2, lossBurst: 4 } });
    const client = await peer();
    sendSeq(client, relay, 2000);
    await until(() => ingested(relay) === 2000);
    await until(() => target.received.length === relay.stats.toTarget.forwarded);

    const arrived = new Set(seqs(target.received));
    let bursts = 0;
    for (let i = 0; i < 2000; i++) if (!arrived.has(i) && (i === 0 || arrived.has(i - 1))) bursts++;
    const lost = 2000 - arrived.size;
    expect(lost).toBe(relay.stats.toTarget.dropped);
    expect(lost / 2000).toBeGreaterThan(0.12);
    expect(lost / 2000).toBeLessThan(0.28);
    expect(lost / bursts).toBeGreaterThan(2.5);
    expect(lost / bursts).toBeLessThan(6);
  });

  it('duplicates datagrams', async () => {
    const target = await peer();
    const relay = await relayTo(target, { toTarget: { duplicate: 0.3 } });
    const client = await peer();
    sendSeq(client, relay, 500);
    await until(() => ingested(relay) === 500);
    await until(() => target.received.length === relay.stats.toTarget.forwarded);

    const { duplicated, forwarded } = relay.stats.toTarget;
    expect(forwarded).toBe(500 + duplicated);
    expect(duplicated).toBeGreaterThan(100);
    const counts = new Map<number, number>();
    for (const s of seqs(target.received)) counts.set(s, (counts.get(s) ?? 0) + 1);
    expect(counts.size).toBe(500);
    expect([...counts.values()].filter((n) => n === 2).length).toBe(duplicated);
  });

  it('corrupts by flipping exactly one bit, and passes empty datagrams', async () => {
    const target = await peer(true);
    const relay = await relayTo(target, { fromTarget: { corrupt: 1 } });
    const client = await peer();
    const original = Buffer.from('the quick brown fox jumps over the lazy dog');
    for (let i = 0; i < 200; i++) client.socket.send(original, relay.address.port, '127.0.0.1');
    client.socket.send(Buffer.alloc(0), relay.address.port, '127.0.0.1');
    await until(() => client.received.length === 201);

    expect(target.received.filter((r) => r.data.equals(original)).length).toBe(200); // other way untouched
    expect(relay.stats.fromTarget.corrupted).toBe(200);
    const changedPositions = new Set<number>();
    for (const { data } of client.received.filter((r) => r.data.length > 0)) {
      expect(data.length).toBe(original.length);
      let flipped = 0;
      data.forEach((byte, i) => {
        let diff = byte ^ (original[i] ?? 0);
        if (diff !== 0) changedPositions.add(i);
        for (; diff !== 0; diff &= diff - 1) flipped++;
      });
      expect(flipped).toBe(1);
    }
    expect(changedPositions.size).toBeGreaterThan(10);
    expect(client.received.some((r) => r.data.length === 0)).toBe(true);
  });

  it('reorders datagrams without losing any', async () => {
    const target = await peer();
    const relay = await relayTo(target, { toTarget: { reorder: 0.2, reorderDelayMs: 5 } });
    const client = await peer();
    sendSeq(client, relay, 200);
    await until(() => target.received.length === 200);

    const order = seqs(target.received);
    expect([...order].sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(order).not.toEqual([...order].sort((x, y) => x - y));
    expect(relay.stats.toTarget.reordered).toBeGreaterThan(10);
    expect(relay.stats.toTarget.delayed).toBe(relay.stats.toTarget.reordered);
  });

  it('adds delay and jitter', async () => {
    const target = await peer(true);
    const relay = await relayTo(target, { toTarget: { delayMs: 15 }, fromTarget: { delayMs: 10, jitterMs: 5 } });
    const client = await peer();
    const start = performance.now();
    sendSeq(client, relay, 1);
    await until(() => client.received.length === 1);
    expect(performance.now() - start).toBeGreaterThanOrEqual(24);
    expect(relay.stats.toTarget.delayed).toBe(1);
    expect(relay.stats.fromTarget.delayed).toBe(1);
  });

  it('blackout drops everything both ways, then traffic resumes', async () => {
    const target = await peer(true);
    const relay = await relayTo(target);
    const client = await peer();
    sendSeq(client, relay, 1);
    await until(() => client.received.length === 1);

    relay.blackout(60);
    sendSeq(client, relay, 5);
    // Also from the target to the client's upstream mapping.
    const upstream = relay.clients()[0]?.upstream;
    if (!upstream) throw new Error('no mapping');
    target.socket.send(seq(99), upstream.port, upstream.address);
    await until(() => relay.stats.toTarget.blackholed === 5 && relay.stats.fromTarget.blackholed === 1);
    expect(target.received.length).toBe(1);

    // Not a wait for an event: the blackout is a span of time, and its end is the scenario under test.
    await new Promise((resolve) => setTimeout(resolve, 70));
    sendSeq(client, relay, 2);
    await until(() => client.received.length === 3);
    expect(relay.stats.toTarget.blackholed).toBe(5);
  });

  it('silences one client without affecting another', async () => {
    const target = await peer(true);
    const relay = await relayTo(target);
    const a = await peer();
    const b = await peer();
    sendSeq(a, relay, 1);
    await until(() => a.received.length === 1);

    relay.silence(a.port);
    sendSeq(a, relay, 3);
    const upstreamA = relay.clients()[0]?.upstream;
    if (!upstreamA) throw new Error('no mapping');
    target.socket.send(seq(7), upstreamA.port, upstreamA.address);
    sendSeq(b, relay, 3);
    await until(() => b.received.length === 3);
    await until(() => relay.stats.toTarget.silenced === 3 && relay.stats.fromTarget.silenced === 1);
    expect(a.received.length).toBe(1);

    relay.silence(a.port, false);
    sendSeq(a, relay, 1);
    await until(() => a.received.length === 2);
  });

  it('changes impairments at run time', async () => {
    const target = await peer();
    const relay = await relayTo(target, { toTarget: { loss: 1 } });
    const client = await peer();
    sendSeq(client, relay, 10);
    await until(() => relay.stats.toTarget.dropped === 10);
    relay.setImpairment('toTarget', {});
    sendSeq(client, relay, 10);
    await until(() => target.received.length === 10);
  });

  it('reproduces the same faults for the same seed', async () => {
    const run = async (seed: number): Promise<{ payloads: string[]; stats: UdpRelay['stats'] }> => {
      const target = await peer();
      const relay = await relayTo(target, { seed, toTarget: { loss: 0.3, lossBurst: 2, duplicate: 0.2, corrupt: 0.2 } });
      const client = await peer();
      sendSeq(client, relay, 300);
      await until(() => ingested(relay) === 300);
      await until(() => target.received.length === relay.stats.toTarget.forwarded);
      return { payloads: target.received.map((r) => r.data.toString('hex')), stats: structuredClone(relay.stats) };
    };
    const first = await run(42);
    const second = await run(42);
    const other = await run(43);
    expect(second).toEqual(first);
    expect(other.payloads).not.toEqual(first.payloads);
  });

  it('drops every datagram above maxDatagramBytes, each direction by its own rule, and forwards the rest', async () => {
    const target = await peer(true);
    const relay = await relayTo(target, { toTarget: { maxDatagramBytes: 1_472 }, fromTarget: { maxDatagramBytes: 1_000 } });
    const client = await peer();
    for (const size of [1, 999, 1_000, 1_001, 1_472, 1_473, 9_000, 60_000]) client.socket.send(Buffer.alloc(size, 7), relay.address.port, relay.address.address);
    await until(() => ingested(relay) === 8);
    await until(() => target.received.length === 5);
    expect(target.received.map((r) => r.data.length).sort((a, b) => a - b)).toEqual([1, 999, 1_000, 1_001, 1_472]);
    expect(relay.stats.toTarget).toMatchObject({ oversize: 3, forwarded: 5, largestForwarded: 1_472 });
    // The echoes come back through the other rule: 1,001 and 1,472 are over its 1,000.
    await until(() => relay.stats.fromTarget.received === 5);
    await until(() => client.received.length === 3);
    expect(client.received.map((r) => r.data.length).sort((a, b) => a - b)).toEqual([1, 999, 1_000]);
    expect(relay.stats.fromTarget).toMatchObject({ oversize: 2, forwarded: 3, largestForwarded: 1_000 });
    // Lifted at run time: everything passes again.
    relay.setImpairment('toTarget', {});
    client.socket.send(Buffer.alloc(9_000), relay.address.port, relay.address.address);
    await until(() => target.received.length === 6);
    expect(relay.stats.toTarget.largestForwarded).toBe(9_000);
  });

  it('relays IPv6 when its target is on ::1', async () => {
    const target = await peer(true, '::1');
    const relay = await relayTo(target, {}, '::1');
    expect(relay.address.address).toBe('::1');
    const client = await peer(false, '::1');
    sendSeq(client, relay, 3);
    await until(() => client.received.length === 3);
    expect(seqs(client.received)).toEqual([0, 1, 2]);
    expect(target.received.every((r) => r.from.address === '::1' && r.from.port !== client.port)).toBe(true);
  });

  it('close clears pending timers and sockets, and is idempotent', async () => {
    const target = await peer();
    const relay = await createUdpRelay({ target: { address: '127.0.0.1', port: target.port }, toTarget: { delayMs: 10_000 } });
    const client = await peer();
    sendSeq(client, relay, 5);
    await until(() => relay.stats.toTarget.delayed === 5);
    await relay.close();
    await relay.close();
    expect(relay.stats.toTarget.forwarded).toBe(0);
    // The public socket is gone: the port can be bound again.
    const rebound = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      rebound.once('error', reject);
      rebound.bind(relay.address.port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => rebound.close(() => resolve()));
  });
});
