import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { versionOfBytes } from '@httpgw/file-server';
import { MTU_SAFE_CHUNK_SIZE, createFrameCodec, decode, encode, keyFromSecret, type FrameCodec, type Packet } from '@httpgw/protocol';
import { createRequestIdSource } from '../packages/gateway/src/udp/request-ids.js';
import { sha256 } from './support/cluster.js';
import { clusterForTest, useRoot } from './support/fixtures.js';
import { LOOPBACK, gatewayFor, logSink, peer, registerRaw, serverFor, udpTap } from './security-support.js';
import { until } from './support/wait.js';

const AMPLIFICATION_LIMIT = 3;

const root = useRoot({ 'x.bin': 64 * 1024, 'fast.bin': 4 * 1024 * 1024 + 3 });

describe('no reflection, no amplification', () => {
  /** Every probe a stranger could send: registration steps, answers, requests, and junk. */
  function probes(codec: FrameCodec): Array<[string, Buffer]> {
    const hello = codec.encode({ type: 'hello', name: '' });
    return [
      ['the smallest hello', hello],
      ['a hello with a long name', codec.encode({ type: 'hello', name: 'n'.repeat(128) })],
      ['a heartbeat from a stranger', codec.encode({ type: 'heartbeat' })],
      ['a leave', codec.encode({ type: 'leave' })],
      ['a register with a made-up cookie', codec.encode({ type: 'register', name: 'x', cookie: randomBytes(16) })],
      ['a meta request', codec.encode({ type: 'meta-request', requestId: 1, path: 'x.bin' })],
      ['a chunk request', codec.encode({ type: 'chunk-request', requestId: 1, path: 'x.bin', version: 'v', chunk: 0, chunkSize: 65_000 })],
      ['a list request', codec.encode({ type: 'list-request', requestId: 1, path: '', cursor: 0 })],
      ['an answer nobody asked for', codec.encode({ type: 'chunk', requestId: 7, chunk: 0, hasNext: false, md5: randomBytes(16), data: randomBytes(100) })],
      ['a challenge', codec.encode({ type: 'challenge', cookie: randomBytes(16) })],
      ['a bare frame header', Buffer.from([0x48, 0x47, 0x01, 0x00])],
      ['one byte', Buffer.from([0])],
      ['random bytes', randomBytes(1_400)],
      ['a hello cut short', hello.subarray(0, hello.length - 2)],
    ];
  }

  for (const secret of [false, true]) {
    it(`answers no stranger with more than ${AMPLIFICATION_LIMIT}× what it sent (${secret ? 'with' : 'without'} a secret)`, async () => {
      const key = secret ? keyFromSecret(randomBytes(32)) : undefined;
      const gateway = await gatewayFor({ key });
      const stranger = await peer();
      let totalIn = 0;
      let totalOut = 0;
      // A fresh codec per probe: with a secret, each is a genuinely signed, never-seen frame.
      for (const [what, probe] of probes(createFrameCodec({ key }))) {
        const before = gateway.stats().udp;
        const received = stranger.received.length;
        await stranger.send(probe, gateway.udpAddress.port);
        await until(() => gateway.stats().udp.datagramsIn === before.datagramsIn + 1, 5_000, what);
        const after = gateway.stats().udp;
        const answered = after.bytesOut - before.bytesOut;
        expect(answered, what).toBeLessThanOrEqual(AMPLIFICATION_LIMIT * probe.length);
        // The counters tell the truth: what was counted is what arrived.
        await until(() => stranger.received.length === received + (after.datagramsOut - before.datagramsOut), 5_000, `answers to ${what}`);
        totalIn += probe.length;
        totalOut += answered;
      }
      expect(totalOut).toBeLessThanOrEqual(totalIn);
      expect(gateway.pool.size).toBe(0);
    });
  }

  it('admits a server only once it echoes the cookie sent to its own address', async () => {
    const gateway = await gatewayFor();
    const port = gateway.udpAddress.port;
    const claimant = await peer();
    const thief = await peer();
    // A register with a cookie of its own invention: ignored.
    await claimant.send(encode({ type: 'register', name: 'x', cookie: randomBytes(16) }), port);
    // A real cookie, echoed from another address (as a spoofer that sniffed it would): ignored.
    await claimant.send(encode({ type: 'hello', name: 'x' }), port);
    const challenge = decode((await claimant.waitFor()).data);
    if (challenge.type !== 'challenge') throw new Error('expected a challenge');
    await thief.send(encode({ type: 'register', name: 'x', cookie: challenge.cookie }), port);
    await until(() => gateway.stats().udp.datagramsIn === 3, 5_000, 'three datagrams');
    expect(gateway.pool.size).toBe(0);
    expect(gateway.stats().udp.datagramsOut).toBe(1); // the challenge, to the claimant only
    expect(thief.received).toHaveLength(0);
    // The same cookie from the address it was sent to: admitted.
    await claimant.send(encode({ type: 'register', name: 'x', cookie: challenge.cookie }), port);
    expect(decode((await claimant.waitFor(() => true, 1)).data)).toEqual({ type: 'registered', heartbeatMs: gateway.pool.heartbeatMs });
    expect(gateway.pool.size).toBe(1);
  });

  it('a file server answers nobody but the gateways it registered with', async () => {
    const cluster = await clusterForTest({ root: root.path, servers: 1 });
    const [server] = cluster.servers;
    const stranger = await peer();
    const version = versionOfBytes(await readFile(join(root.path, 'x.bin')), 65_000);
    const asks: Packet[] = [
      { type: 'meta-request', requestId: 1, path: 'x.bin' },
      { type: 'chunk-request', requestId: 2, path: 'x.bin', version, chunk: 0, chunkSize: 65_000 },
      { type: 'list-request', requestId: 3, path: '', cursor: 0 },
      { type: 'hello', name: 'x' },
      { type: 'challenge', cookie: randomBytes(16) },
      { type: 'registered', heartbeatMs: 1_000 },
      { type: 'heartbeat-ack', known: false },
    ];
    const before = server!.stats.fromStrangers;
    for (const packet of asks) await stranger.send(encode(packet), server!.address.port);
    await stranger.send(randomBytes(64), server!.address.port);
    await until(() => server!.stats.fromStrangers === before + asks.length + 1, 5_000, 'every datagram seen');
    // The registration is untouched by the fake challenge and the fake "registered": a download
    // through the server works. It is also the barrier for what follows: the server's answers to the
    // gateway leave after anything it could have sent the stranger, so by now that would be here.
    const response = await fetch(cluster.url('x.bin'));
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(root.files.get('x.bin')!));
    expect(stranger.received).toHaveLength(0);
  });
});

describe('no spoofing', () => {
  it('discards a chunk answer from anyone but the server asked, and the download stays intact', async () => {
    const chunkSize = 4_096;
    const gateway = await gatewayFor({ chunkSize, hedging: false });
    const data = root.files.get('x.bin')!;
    const server = await registerRaw(gateway.udpAddress.port);
    const forger = await peer();
    const requestIds: number[] = [];
    /** The first id of each request: a run of `count` chunks takes the ids after it. */
    const firstIds: number[] = [];
    server.socket.on('message', (datagram) => {
      const packet = decode(datagram);
      const reply = (answer: Packet) => server.socket.send(encode(answer), gateway.udpAddress.port, LOOPBACK);
      if (packet.type === 'meta-request') reply({ type: 'meta', requestId: packet.requestId, kind: 'file', size: data.length, mtimeMs: 1, version: 'v1' });
      if (packet.type !== 'chunk-request') return;
      firstIds.push(packet.requestId);
      for (let i = 0; i < (packet.count ?? 1); i++) {
        const requestId = packet.requestId + i;
        const chunk = packet.chunk + i;
        requestIds.push(requestId);
        const real = data.subarray(chunk * chunkSize, (chunk + 1) * chunkSize);
        const fake = randomBytes(real.length);
        const md5 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest();
        const hasNext = (chunk + 1) * chunkSize < data.length;
        // The forger knows the request id (the worst case) and is first; the server answers after it.
        forger.socket.send(encode({ type: 'chunk', requestId, chunk, hasNext, md5: md5(fake), data: fake }), gateway.udpAddress.port, LOOPBACK, () =>
          reply({ type: 'chunk', requestId, chunk, hasNext, md5: md5(real), data: real }),
        );
      }
    });
    const response = await fetch(`http://${LOOPBACK}:${gateway.httpAddress.port}/x.bin`);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(data));
    const chunks = data.length / chunkSize;
    expect(requestIds.length).toBeGreaterThanOrEqual(chunks);
    // Every chunk's accepted answer was preceded by a forgery while its request was pending; a
    // request retransmitted under load may see its forgery arrive late instead (counted as late).
    expect(gateway.stats().requests.spoofed).toBeGreaterThanOrEqual(chunks);
    expect(gateway.stats().requests.spoofed).toBeLessThanOrEqual(requestIds.length);
    expect(gateway.stats().transfers.badChunks).toBe(0);
    // The ids a server sees give nothing away: all distinct, and each request's first id has no
    // step in common with the one before.
    expect(new Set(requestIds).size).toBe(requestIds.length);
    const steps = new Set(firstIds.slice(1).map((id, i) => id - firstIds[i]!));
    expect(steps.size).toBe(firstIds.length - 1);
  });

  it('draws request ids from 48 random bits', () => {
    const next = createRequestIdSource();
    const ids = Array.from({ length: 50_000 }, next);
    expect(new Set(ids).size).toBe(ids.length);
    for (let bit = 0; bit < 48; bit++) {
      const ones = ids.filter((id) => Math.floor(id / 2 ** bit) % 2 === 1).length;
      expect(ones / ids.length, `bit ${bit}`).toBeGreaterThan(0.48);
      expect(ones / ids.length, `bit ${bit}`).toBeLessThan(0.52);
    }
    expect(Math.max(...ids)).toBeLessThan(2 ** 48);
  });
});

describe('registration and datagram limits', () => {
  it('refuses servers beyond --max-servers: the server is told why, logs it once and backs off; the gateway logs once', async () => {
    const log = logSink('httpgw');
    const serverLog = logSink('fastfilesrv');
    const gateway = await gatewayFor({ pool: { maxServers: 1 }, logger: log.logger });
    await (await serverFor(root.path, gateway.udpAddress.port)).whenRegistered();
    const refused = await serverFor(root.path, gateway.udpAddress.port, { logger: serverLog.logger });
    await log.waitFor(/WARN .*refused 1 registration: pool full \(max-servers 1\)/);
    await serverLog.waitFor(/WARN .*gateway refused registration; retrying with backoff .*reason=pool-full .*retryAfterMs=15000/);
    // Without the refusal it would retry every 0.2-2 s; told to wait 15 s, it knocks once in these 2 s.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(gateway.stats().pool.refusedFull).toBe(1);
    expect(serverLog.lines.filter((line) => line.includes('refused'))).toHaveLength(1);
    expect(log.lines.filter((line) => line.includes('pool full'))).toHaveLength(1);
    expect(refused.stats.gatewaysRegistered).toBe(0);
    expect(gateway.pool.size).toBe(1);
  });

  it('drops datagrams beyond the per-source rate at the gateway, counts them and logs once', async () => {
    const log = logSink('httpgw');
    const rate = 50;
    const gateway = await gatewayFor({ maxDatagramRate: rate, logger: log.logger });
    const flooder = await peer();
    const hello = encode({ type: 'hello', name: 'flood' });
    const started = performance.now();
    for (let i = 0; i < 500; i++) flooder.socket.send(hello, gateway.udpAddress.port, LOOPBACK);
    await until(() => gateway.stats().udp.datagramsIn === 500, 5_000, 'the flood');
    const allowed = rate + (rate * (performance.now() - started)) / 1000;
    expect(gateway.stats().udp.rateLimited).toBeGreaterThanOrEqual(500 - Math.ceil(allowed));
    expect(gateway.stats().udp.datagramsOut).toBeLessThanOrEqual(Math.ceil(allowed));
    expect(log.lines.filter((line) => line.includes('datagram rate limit hit'))).toHaveLength(1);
    expect(log.lines.join('')).toMatch(/WARN .*datagram rate limit hit: dropping .*limit=50/);
    // Another source is untouched.
    const other = await peer();
    await other.send(hello, gateway.udpAddress.port);
    expect(decode((await other.waitFor()).data).type).toBe('challenge');
  });

  it('drops datagrams beyond the per-source rate at the file server too', async () => {
    const log = logSink('fastfilesrv');
    const gateway = await gatewayFor();
    const tap = await udpTap(gateway.udpAddress.port);
    onTestFinished(() => tap.close());
    const server = await serverFor(root.path, tap.front.port, { maxDatagramRate: 50, logger: log.logger });
    await server.whenRegistered();
    tap.setForwarding(false);
    // tap.front is the gateway's address as the file server knows it.
    for (let i = 0; i < 500; i++) tap.front.socket.send(encode({ type: 'meta-request', requestId: i, path: 'x.bin' }), server.address.port, LOOPBACK);
    // 500 in a few ms against a burst of 50 and 50 a second: well over 400 dropped.
    await until(() => server.stats.rateLimited >= 400, 5_000, 'the flood dropped');
    await log.waitFor(/WARN .*datagram rate limit hit: dropping .*limit=50/);
  });

  it('never throttles a fast legitimate transfer at the default rate', async () => {
    const cluster = await clusterForTest({ root: root.path, servers: 3, gateway: { chunkSize: MTU_SAFE_CHUNK_SIZE } });
    const response = await fetch(cluster.url('fast.bin'));
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(root.files.get('fast.bin')!));
    expect(cluster.gateway.stats().udp.datagramsIn).toBeGreaterThan(3_000);
    expect(cluster.gateway.stats().udp.rateLimited).toBe(0);
    for (const server of cluster.servers) expect(server.stats.rateLimited).toBe(0);
  });
});
