import { rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chunkDigest } from '@httpgw/protocol';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir, sha256, writeFiles, type Cluster } from './support/cluster.js';
import { captureLogger, download } from './support/faulty-harness.js';
import { clusterForTest as cluster, useRoot } from './support/fixtures.js';
import { createFaultyProxy, type FaultyProxy, type FaultyProxyInit } from './support/faulty-proxy.js';
import { until } from './support/wait.js';

// Dead, silent, slow, lying and disagreeing file servers. Each download is multi-MB, compared by
// SHA-256 and bounded in time; the counters prove which mechanism did the work. The read-ahead is
// 1 MiB, so a fault struck when the client holds 1 MiB hits a transfer with most of its file to go.

const CHUNK = 8 * 1024;
const FILE = 'big.bin';
const SIZE = 4 * 1024 * 1024 + 17;
const LIMIT_MS = 8_000;
// The transfer path is the subject: no cache tier (a hit would not ask the servers at all).
const GATEWAY = { chunkSize: CHUNK, readAheadBytes: 1 << 20, cache: { memoryBytes: 0 } };

const root = useRoot({ [FILE]: SIZE });
const original = (): Buffer => root.files.get(FILE)!;

/** One more file server for `c`, registered through a faulty proxy; resolves once it is in the pool. */
async function faultyServer(c: Cluster, faults: Omit<FaultyProxyInit, 'target'>, serverRoot = c.root): Promise<FaultyProxy> {
  const proxy = await createFaultyProxy({ target: c.relay?.address ?? c.gateway.udpAddress, ...faults });
  onTestFinished(() => proxy.close());
  await c.addServer({ root: serverRoot, gateways: [{ host: '127.0.0.1', port: proxy.address.port }] });
  await c.gateway.waitForServers(c.servers.length);
  return proxy;
}

const keyOf = (endpoint: { address: string; port: number }) => `${endpoint.address}:${endpoint.port}`;
const serverStats = (c: Cluster, key: string) => c.gateway.stats().servers.find((server) => server.key === key);

function expectIntact(result: Awaited<ReturnType<typeof download>>, body = original(), limitMs = LIMIT_MS): void {
  expect(result.status).toBe(200);
  expect(result.error).toBeUndefined();
  expect(result.body.length).toBe(body.length);
  expect(sha256(result.body)).toBe(sha256(body));
  expect(result.ms).toBeLessThan(limitMs);
}

describe('dead and silent servers', () => {
  it('a server stopped mid-transfer: it says goodbye, the others finish the download', async () => {
    const c = await cluster({ root: root.path, gateway: GATEWAY });
    let struck = false;
    const result = await download(c.url(FILE), async (bytes) => {
      if (!struck && bytes >= 1 << 20) {
        struck = true;
        await c.servers[0]!.stop();
      }
    });
    expect(struck).toBe(true);
    expectIntact(result);
    const stats = c.gateway.stats();
    expect(stats.pool.left).toBe(1);
    expect(c.gateway.pool.size).toBe(2);
    expect(stats.transfers).toMatchObject({ completed: 1, failed: 0 });
  });

  it('a server silenced mid-transfer: its requests time out and go elsewhere; it is evicted, then admitted again once it speaks', async () => {
    const c = await cluster({ root: root.path, gateway: GATEWAY, relay: { seed: 3 } });
    const victim = c.relay!.clients().find((entry) => entry.client.port === c.servers[0]!.address.port)!;
    let struck = false;
    const result = await download(c.url(FILE), (bytes) => {
      if (!struck && bytes >= 1 << 20) {
        struck = true;
        c.relay!.silence(victim.client.port);
      }
    });
    expectIntact(result);
    const stats = c.gateway.stats();
    expect(stats.requests.timeouts).toBeGreaterThan(0);
    expect(stats.transfers.retransmissions + stats.transfers.hedges).toBeGreaterThan(0);
    // Three missed heartbeats (1 s apart) and it leaves the pool.
    await until(() => c.gateway.stats().pool.evicted === 1, 5_000, 'eviction');
    expect(c.gateway.pool.get(keyOf(victim.upstream))).toBeUndefined();
    // Heard again: the gateway answers its heartbeat with known:false and it registers again.
    c.relay!.silence(victim.client.port, false);
    await until(() => c.gateway.stats().pool.readmitted === 1, 5_000, 're-admission');
    expect(c.gateway.pool.get(keyOf(victim.upstream))).toBeDefined();
  });

  it('a server that hangs but still heartbeats cools down, is left alone, and is tried again afterwards', async () => {
    // The lookup is cached, so the hung server stays a candidate of the downloads after the first.
    const c = await cluster({ root: root.path, servers: 2, gateway: { ...GATEWAY, metaCacheMs: 60_000, pool: { maxFails: 2, coolDownMs: 1_000 } } });
    let hung = false;
    const proxy = await faultyServer(c, { tamper: () => (hung ? 'drop' : undefined) });
    const key = keyOf(proxy.upstream());
    expectIntact(await download(c.url(FILE)));
    hung = true;
    // No answer at all: two timeout events in a row (the RTO, then twice that) cool it down. The
    // client reads slowly so the transfer lasts long enough whatever the machine's load: requests
    // cancelled when a transfer ends tell nothing.
    for (let i = 0; i < 3 && c.gateway.stats().pool.coolDowns === 0; i++) {
      // The 2 ms pause per read is the slow client of the scenario, not a wait for anything.
      expectIntact(await download(c.url(FILE), () => new Promise((resolve) => setTimeout(resolve, 2))), original(), 15_000);
    }
    expect(c.gateway.stats().pool.coolDowns).toBeGreaterThanOrEqual(1);
    expect(c.gateway.stats().pool.evicted).toBe(0); // its heartbeats still pass
    expect(serverStats(c, key)?.timeouts).toBeGreaterThan(0);
    // Healed: it gets requests again (a probe during the cool-down, all of them after) and answers them.
    hung = false;
    const answersBefore = serverStats(c, key)!.answers;
    expectIntact(await download(c.url(FILE)));
    await until(() => serverStats(c, key)!.state === 'active', 2_000, 'the end of the cool-down');
    expectIntact(await download(c.url(FILE)));
    expect(serverStats(c, key)!.answers).toBeGreaterThan(answersBefore + 10);
  });
});

describe('slow servers', () => {
  it('a server ten times slower than the others: its late chunks are hedged, it cannot hold the download', async () => {
    const c = await cluster({ root: root.path, servers: 2, gateway: GATEWAY });
    // 8 KiB per 2 ms is 4 MB/s: loopback servers here do ten times that and more.
    const proxy = await faultyServer(c, { serviceMs: 2 });
    const key = keyOf(proxy.upstream());
    const result = await download(c.url(FILE));
    expectIntact(result);
    const stats = c.gateway.stats();
    expect(stats.transfers.hedges).toBeGreaterThan(0);
    const slow = serverStats(c, key)!;
    const fast = stats.servers.filter((server) => server.key !== key);
    for (const server of fast) expect(server.answers).toBeGreaterThan(slow.answers);
  });
});

describe('lying servers', () => {
  const flipFirstByte = (data: Uint8Array) => {
    const copy = Buffer.from(data);
    copy[0] = copy[0]! ^ 0xff;
    return copy;
  };

  it('a server whose chunks fail their MD5 loses each file it lies about, then is dropped and banned; every download is intact', async () => {
    const { logger, lines } = captureLogger();
    // Large enough that the liar, slower than the others (behind the faulty proxy), is in time for
    // some chunks of each: the scheduler asks a server only for what it delivers before it is due.
    const others = await writeFiles(root.path, { 'lie-2.bin': 2_000_000, 'lie-3.bin': 2_000_000 });
    const c = await cluster({ root: root.path, servers: 2, gateway: { ...GATEWAY, logger, hedging: false } });
    const proxy = await faultyServer(c, { tamper: (answer) => (answer.type === 'chunk' ? { ...answer, data: flipFirstByte(answer.data) } : undefined) });
    expectIntact(await download(c.url(FILE)));
    // Proportionate: one file's bad data costs the server that file, not its place in the pool.
    expect(c.gateway.stats().pool).toMatchObject({ filesLost: 1, dropped: 0 });
    expect(c.gateway.pool.size).toBe(3);
    expect(lines.some((line) => /server lost a file for bad data/.test(line) && line.includes(keyOf(proxy.upstream())))).toBe(true);
    expectIntact(await download(c.url('lie-2.bin')), others.get('lie-2.bin'));
    expectIntact(await download(c.url('lie-3.bin')), others.get('lie-3.bin'));
    const stats = c.gateway.stats();
    expect(stats.pool).toMatchObject({ filesLost: 3, dropped: 1 });
    expect(stats.transfers.badChunks).toBeGreaterThanOrEqual(9);
    expect(lines.some((line) => /server dropped/.test(line) && line.includes(keyOf(proxy.upstream())))).toBe(true);
    // Banned: its heartbeats get known:false, its new hellos are ignored.
    expect(c.gateway.pool.isBanned(proxy.upstream().address, proxy.upstream().port)).toBe(true);
    const hellos = proxy.stats.toTarget.hello ?? 0;
    const challenges = proxy.stats.fromTarget.challenge ?? 0;
    // Told known:false at its next heartbeat, it says hello, and again when that goes unanswered.
    await until(() => (proxy.stats.toTarget.hello ?? 0) >= hellos + 2, 5_000, 'two hellos from the banned server');
    expect(proxy.stats.fromTarget.challenge ?? 0).toBe(challenges);
    expect(c.gateway.pool.size).toBe(2);
    expect(c.gateway.stats().pool.readmitted).toBe(0);
  });

  it('a server that sends a truncated chunk with a matching MD5 is caught by the length check', async () => {
    const c = await cluster({ root: root.path, servers: 2, gateway: GATEWAY });
    await faultyServer(c, {
      tamper: (answer) => {
        if (answer.type !== 'chunk') return undefined;
        const data = Buffer.from(answer.data).subarray(0, answer.data.length - 1);
        return { ...answer, data, md5: chunkDigest(data) };
      },
    });
    expectIntact(await download(c.url(FILE)));
    const stats = c.gateway.stats();
    expect(stats.transfers.badChunks).toBeGreaterThanOrEqual(3);
    expect(stats.pool.filesLost).toBe(1);
  });

  it('a server that lies about one chunk only: that chunk comes from another server; the server stays', async () => {
    const c = await cluster({ root: root.path, servers: 2, gateway: GATEWAY });
    await faultyServer(c, { tamper: (answer) => (answer.type === 'chunk' && answer.chunk === 100 ? { ...answer, data: flipFirstByte(answer.data) } : undefined) });
    for (let i = 0; i < 2; i++) expectIntact(await download(c.url(FILE)));
    const stats = c.gateway.stats();
    expect(stats.pool.dropped).toBe(0);
    expect(c.gateway.pool.size).toBe(3);
  });
});

describe('servers that disagree about a file', () => {
  /** Three roots: a and b hold one version, c another (newer, longer). */
  async function splitRoots() {
    const [a, b, odd] = await Promise.all([makeTempDir(), makeTempDir(), makeTempDir()]);
    onTestFinished(async () => {
      await Promise.all([a.remove(), b.remove(), odd.remove()]);
    });
    const older = new Date('2026-01-01T00:00:00Z');
    const newer = new Date('2026-06-01T00:00:00Z');
    const other = randomBytes(SIZE + 4_096);
    for (const dir of [a.path, b.path]) {
      await writeFile(join(dir, FILE), original());
      await utimes(join(dir, FILE), older, older);
    }
    await writeFile(join(odd.path, FILE), other);
    await utimes(join(odd.path, FILE), newer, newer);
    return { a: a.path, b: b.path, odd: odd.path, other };
  }

  it('serves the version most servers hold, only from them, never mixed with the other', async () => {
    const roots = await splitRoots();
    const { logger, lines } = captureLogger();
    const c = await cluster({ root: roots.a, servers: 0, gateway: { ...GATEWAY, logger, metaCacheMs: 0 } });
    await c.addServer({ root: roots.a });
    await c.addServer({ root: roots.b });
    const odd = await c.addServer({ root: roots.odd });
    await c.gateway.waitForServers(3);
    const result = await download(c.url(FILE));
    expectIntact(result);
    expect(odd.stats.chunksSent).toBe(0);
    expect(lines.some((line) => line.includes('servers disagree about a file'))).toBe(true);
  });

  it('a file replaced on one server since the lookup: that server says stale and is left out; the response is the old version whole', async () => {
    const roots = await splitRoots();
    const { logger, lines } = captureLogger();
    const c = await cluster({ root: roots.a, servers: 0, gateway: { ...GATEWAY, logger, metaCacheMs: 60_000 } });
    await c.addServer({ root: roots.a });
    const changing = await c.addServer({ root: roots.b, revalidateMs: 0 });
    await c.gateway.waitForServers(2);
    expectIntact(await download(c.url(FILE))); // the lookup is now cached
    // An atomic replace, as rsync and editors do; this server checks the path at every read (revalidateMs 0).
    await writeFile(join(roots.b, `${FILE}.tmp`), roots.other);
    await rename(join(roots.b, `${FILE}.tmp`), join(roots.b, FILE));
    const sentBefore = changing.stats.chunksSent;
    expectIntact(await download(c.url(FILE)));
    expect(lines.some((line) => line.includes('server no longer serves the file version') && line.includes('why=stale'))).toBe(true);
    expect(changing.stats.chunksSent).toBe(sentBefore); // it answered stale, never a chunk of the new file
  });

  it('a file replaced on every server since the lookup is looked up again and served whole in its new version', async () => {
    const roots = await splitRoots();
    const c = await cluster({ root: roots.a, servers: 0, gateway: { ...GATEWAY, metaCacheMs: 60_000 } });
    await c.addServer({ root: roots.a, revalidateMs: 0 });
    await c.addServer({ root: roots.b, revalidateMs: 0 });
    await c.gateway.waitForServers(2);
    expectIntact(await download(c.url(FILE)));
    for (const dir of [roots.a, roots.b]) {
      await writeFile(join(dir, `${FILE}.tmp`), roots.other);
      await rename(join(dir, `${FILE}.tmp`), join(dir, FILE));
    }
    expectIntact(await download(c.url(FILE)), roots.other);
  });

  it('when every server says the file changed mid-transfer, the response is cut, never finished with another version', async () => {
    const { logger, lines } = captureLogger();
    const c = await cluster({ root: root.path, servers: 0, gateway: { ...GATEWAY, logger } });
    // Both servers answer "stale" once each has sent 100 chunks, as servers whose copy was replaced would.
    for (let i = 0; i < 2; i++) {
      let sent = 0;
      await faultyServer(c, {
        tamper: (answer) => (answer.type !== 'chunk' || sent++ < 100 ? undefined : { type: 'error', requestId: answer.requestId, code: 'stale', message: 'changed' }),
      });
    }
    const result = await download(c.url(FILE));
    expect(result.status).toBe(200);
    expect(result.error).toBeDefined();
    expect(result.body.length).toBeGreaterThan(0);
    expect(result.body.length).toBeLessThan(SIZE);
    expect(result.body.equals(original().subarray(0, result.body.length))).toBe(true);
    expect(lines.some((line) => line.includes('transfer failed') && line.includes('code=GW_ERR_FILE_CHANGED'))).toBe(true);
  });
});
