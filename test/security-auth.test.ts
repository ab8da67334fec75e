import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createFrameCodec, decodeFrame, keyFromSecret, type Packet } from '@httpgw/protocol';
import { sha256 } from './support/cluster.js';
import { clusterForTest, useRoot } from './support/fixtures.js';
import { startProcess } from './support/processes.js';
import { LOOPBACK, gatewayFor, logSink, peer, serverFor, udpTap, type RawPeer } from './security-support.js';
import { until } from './support/wait.js';

const key = keyFromSecret(randomBytes(32));
const otherKey = keyFromSecret(randomBytes(32));
const keys = new Map([[key.id, key]]);

const root = useRoot({ 'a.bin': 300_000, 'b.txt': 'authenticated\n' });


function typeOf(datagram: Buffer): Packet['type'] {
  return decodeFrame(datagram, keys).packet.type;
}

/**
 * Sends `probes` from `from`, then a fresh signed hello: once its challenge is back, the gateway has
 * handled every probe (one socket, in order). Returns what came back before the challenge.
 */
async function answersTo(from: RawPeer, gatewayPort: number, probes: Buffer[]): Promise<Buffer[]> {
  const mark = from.received.length;
  for (const probe of probes) await from.send(probe, gatewayPort);
  await from.send(createFrameCodec({ key }).encode({ type: 'hello', name: 'barrier' }), gatewayPort);
  const barrier = await from.waitFor((datagram) => typeOf(datagram.data) === 'challenge', mark);
  return from.received.slice(mark, from.received.indexOf(barrier)).map((datagram) => datagram.data);
}

describe('with a shared secret', () => {
  it('a cluster works end to end, and neither side warns about a missing secret', async () => {
    const gatewayLog = logSink('httpgw');
    const serverLog = logSink('fastfilesrv');
    const cluster = await clusterForTest({ root: root.path, servers: 2, gateway: { key, logger: gatewayLog.logger }, fileServer: { key, logger: serverLog.logger } });
    for (const [name, data] of root.files) {
      const response = await fetch(cluster.url(name));
      expect(response.status).toBe(200);
      expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(data));
    }
    expect(gatewayLog.lines.join('')).toMatch(/listening .*auth=hmac-sha256/);
    expect(serverLog.lines.join('')).toMatch(/serving .*auth=hmac-sha256/);
    expect([...gatewayLog.lines, ...serverLog.lines].join('')).not.toMatch(/no secret configured/);
  });

  it('without a secret, both sides say so at startup', async () => {
    const gatewayLog = logSink('httpgw');
    const serverLog = logSink('fastfilesrv');
    const cluster = await clusterForTest({ root: root.path, servers: 1, gateway: { logger: gatewayLog.logger }, fileServer: { logger: serverLog.logger } });
    expect(gatewayLog.lines.join('')).toMatch(/WARN .*no secret configured: anyone who can reach the UDP port can register a file server/);
    expect(serverLog.lines.join('')).toMatch(/WARN .*no secret configured/);
  });

  it('a server with a wrong secret or none is never admitted, and never answered', async () => {
    const log = logSink('httpgw');
    const gateway = await gatewayFor({ key, logger: log.logger });
    await serverFor(root.path, gateway.udpAddress.port, { key: otherKey });
    await serverFor(root.path, gateway.udpAddress.port);
    // Each server retries its hello (200 ms, then 400 ms…): wait for a few refusals from both.
    await until(() => gateway.stats().udp.refused >= 6, 5_000, 'refusals');
    expect(gateway.pool.size).toBe(0);
    expect(gateway.stats().udp.datagramsOut).toBe(0);
    expect(log.lines.join('')).toMatch(/refused datagram .*PROTO_ERR_BAD_KEY/);
    expect(log.lines.join('')).toMatch(/refused datagram .*PROTO_ERR_AUTH_REQUIRED/);
  });

  it('a gateway without a secret never admits a server that signs', async () => {
    const gateway = await gatewayFor();
    const server = await serverFor(root.path, gateway.udpAddress.port, { key });
    await until(() => gateway.stats().udp.refused >= 3, 5_000, 'refusals');
    expect(gateway.pool.size).toBe(0);
    expect(gateway.stats().udp.datagramsOut).toBe(0);
    expect(server.stats.datagramsIn).toBe(0);
  });

  it('frames from a clock beyond the skew bound are refused, either way', async () => {
    const log = logSink('httpgw');
    const gateway = await gatewayFor({ key, logger: log.logger });
    const stranger = await peer();
    const late = createFrameCodec({ key, now: () => Date.now() - 60_000 }).encode({ type: 'hello', name: 'late' });
    const early = createFrameCodec({ key, now: () => Date.now() + 60_000 }).encode({ type: 'hello', name: 'early' });
    expect(await answersTo(stranger, gateway.udpAddress.port, [late, early])).toEqual([]);
    expect(log.lines.filter((line) => line.includes('PROTO_ERR_CLOCK_SKEW'))).toHaveLength(2);
  });
});

describe('replayed datagrams', () => {
  it('get no reply from the gateway, whether resent from the original address or another', async () => {
    const gateway = await gatewayFor({ key });
    const tap = await udpTap(gateway.udpAddress.port);
    onTestFinished(() => tap.close());
    const server = await serverFor(root.path, tap.front.port, { key });
    await server.whenRegistered();
    // Capture a full registration and one heartbeat with its ack, then cut the wire.
    await until(() => tap.records.some((record) => record.direction === 'fromTarget' && typeOf(record.data) === 'heartbeat-ack'), 5_000, 'a heartbeat ack');
    tap.setForwarding(false);
    const captured = tap.records.filter((record) => record.direction === 'toTarget').map((record) => record.data);
    expect(new Set(captured.map(typeOf))).toEqual(new Set(['hello', 'register', 'heartbeat']));

    const before = gateway.stats().udp;
    const stranger = await peer();
    for (const datagram of captured) await tap.upstream.send(datagram, gateway.udpAddress.port);
    expect(await answersTo(stranger, gateway.udpAddress.port, captured)).toEqual([]);
    const after = gateway.stats().udp;
    expect(after.refused - before.refused).toBe(2 * captured.length);
    // The only datagram the gateway sent since is the barrier's challenge.
    expect(after.datagramsOut - before.datagramsOut).toBe(1);
    expect(gateway.pool.size).toBe(1);
  });

  it('get no reply from a file server: a replayed chunk request is refused, not served again', async () => {
    const gateway = await gatewayFor({ key });
    const tap = await udpTap(gateway.udpAddress.port);
    onTestFinished(() => tap.close());
    const server = await serverFor(root.path, tap.front.port, { key });
    await server.whenRegistered();
    await gateway.waitForServers(1);
    const response = await fetch(`http://${LOOPBACK}:${gateway.httpAddress.port}/a.bin`);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(root.files.get('a.bin')!));
    tap.setForwarding(false);
    const captured = tap.records.filter((record) => record.direction === 'fromTarget').map((record) => record.data);
    expect(captured.map(typeOf)).toContain('chunk-request');

    const before = { ...server.stats };
    const mark = tap.front.received.length;
    // tap.front is the gateway's address as the file server knows it: the replays come from there.
    for (const datagram of captured) await tap.front.send(datagram, server.address.port);
    await until(() => server.stats.refused - before.refused === captured.length, 5_000, 'every replay refused');
    expect(server.stats.chunksSent).toBe(before.chunksSent);
    expect(server.stats.bytesSent).toBe(before.bytesSent);
    const answers = tap.front.received.slice(mark).map((datagram) => typeOf(datagram.data));
    expect(answers.filter((type) => type !== 'heartbeat')).toEqual([]);
  });
});

describe('the command lines with --secret-file and HTTPGW_SECRET_FILE', () => {
  it('run an authenticated cluster, and warn when started without a secret', async () => {
    const secretFile = join(root.path, '..', `httpgw-secret-${process.pid}-${Date.now()}`);
    await writeFile(secretFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
    onTestFinished(() => rm(secretFile, { force: true }));
    const gateway = startProcess('httpgw', [LOOPBACK, '0', '--udp-port', '0', '--secret-file', secretFile]);
    onTestFinished(async () => void (await gateway.stop()));
    const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+) .*auth=hmac-sha256/);
    const saved = process.env.HTTPGW_SECRET_FILE;
    process.env.HTTPGW_SECRET_FILE = secretFile;
    const server = startProcess('fastfilesrv', [LOOPBACK, udpPort!, '--root', root.path, '--bind', LOOPBACK]);
    if (saved === undefined) delete process.env.HTTPGW_SECRET_FILE;
    else process.env.HTTPGW_SECRET_FILE = saved;
    onTestFinished(async () => void (await server.stop()));
    await server.waitForLine(/registered with gateway/);
    const response = await fetch(`http://${http}/a.bin`);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(root.files.get('a.bin')!));
    expect(gateway.log() + server.log()).not.toMatch(/no secret configured/);

    const open = startProcess('httpgw', [LOOPBACK, '0', '--udp-port', '0']);
    onTestFinished(async () => void (await open.stop()));
    await open.waitForLine(/WARN .*no secret configured/);
    const keyless = startProcess('fastfilesrv', [LOOPBACK, udpPort!, '--root', root.path, '--bind', LOOPBACK]);
    onTestFinished(async () => void (await keyless.stop()));
    await keyless.waitForLine(/WARN .*no secret configured/);
  });
});
