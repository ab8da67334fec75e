import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir, startCluster, writeFiles, type Cluster } from './support/cluster.js';
import { clusterForTest, useRoot } from './support/fixtures.js';
import { run, startProcess, type RunningProcess } from './support/processes.js';
import { until } from './support/wait.js';

// The gateway's chunk cache, end to end over loopback: hits cost no datagram, a new version drops
// the old one's chunks, the disk tier survives a restart and detects damage, stale copies are served
// when no server answers (and only then), and concurrent downloads share one fetch.

const CHUNK = 61_440;

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const response = await fetch(url, { headers });
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

/** A GET with exactly these headers (node:http adds none of its own beyond Host and Connection). */
function plainGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
    })
      .on('error', reject)
      .end();
  });
}

/** Chunk and metadata requests the gateway sent so far, and chunks the servers sent. */
function traffic(cluster: Cluster): { requests: number; chunksSent: number } {
  return { requests: cluster.gateway.stats().requests.sent, chunksSent: cluster.servers.reduce((sum, server) => sum + server.stats.chunksSent, 0) };
}

/** Asks `condition` every 50 ms until it holds (10 s at most). */
async function eventually(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function tempDir(): Promise<string> {
  const dir = await makeTempDir('httpgw-cache-');
  onTestFinished(() => dir.remove());
  return dir.path;
}

describe('memory tier', () => {
  const root = useRoot({ 'small.txt': 4_000, 'big.bin': 20 * CHUNK + 123, 'other.bin': 3 * CHUNK });

  it('serves a hot file with no datagram at all, byte for byte, saying so in Cache-Status and Age', async () => {
    const cluster = await clusterForTest({ root: root.path, gateway: { metaCacheMs: 60_000 } });
    for (const path of ['small.txt', 'big.bin']) {
      const first = await get(cluster.url(path));
      expect(first.status).toBe(200);
      expect(first.body.equals(root.files.get(path)!)).toBe(true);
      expect(first.headers.get('cache-status')).toBe('httpgw; fwd=miss; stored');
      expect(first.headers.get('age')).toBeNull();
    }
    const before = traffic(cluster);
    for (let i = 0; i < 5; i++) {
      for (const path of ['small.txt', 'big.bin']) {
        const again = await get(cluster.url(path));
        expect(again.status).toBe(200);
        expect(again.body.equals(root.files.get(path)!)).toBe(true);
        expect(again.headers.get('cache-status')).toBe('httpgw; hit');
        expect(Number(again.headers.get('age'))).toBeGreaterThanOrEqual(0);
      }
    }
    expect(traffic(cluster)).toEqual(before);
    const stats = cluster.gateway.stats().cache;
    expect(stats.hits).toBe(10);
    expect(stats.memoryBytesServed).toBeGreaterThanOrEqual(5 * (4_000 + 20 * CHUNK + 123));
  });

  it('answers ranges, several ranges, HEAD and 304 from the cache exactly as from the servers', async () => {
    const cluster = await clusterForTest({ root: root.path, gateway: { metaCacheMs: 60_000 } });
    const file = root.files.get('big.bin')!;
    const warm = await get(cluster.url('big.bin'));
    const etag = warm.headers.get('etag')!;
    const before = traffic(cluster);

    const range = await get(cluster.url('big.bin'), { Range: `bytes=${CHUNK - 10}-${3 * CHUNK + 9}` });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes ${CHUNK - 10}-${3 * CHUNK + 9}/${file.length}`);
    expect(range.body.equals(file.subarray(CHUNK - 10, 3 * CHUNK + 10))).toBe(true);
    expect(range.headers.get('cache-status')).toBe('httpgw; hit');

    const suffix = await get(cluster.url('big.bin'), { Range: 'bytes=-100' });
    expect(suffix.body.equals(file.subarray(file.length - 100))).toBe(true);

    const parts = await get(cluster.url('big.bin'), { Range: 'bytes=0-9,500000-500009' });
    expect(parts.status).toBe(206);
    expect(parts.headers.get('content-type')).toMatch(/^multipart\/byteranges; boundary=/);
    expect(parts.body.includes(file.subarray(500_000, 500_010))).toBe(true);
    expect(parts.headers.get('cache-status')).toBe('httpgw; hit');

    // Not fetch(): with a validator it adds `Cache-Control: no-cache`, which rules a 304 out (RFC 9111 §5.2.1.4).
    const notModified = await plainGet(cluster.url('big.bin'), { 'If-None-Match': etag });
    expect(notModified.status).toBe(304);
    expect(notModified.headers['cache-status']).toBe('httpgw; hit');

    const head = await fetch(cluster.url('big.bin'), { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(file.length));
    expect(head.headers.get('cache-status')).toBe('httpgw; hit');

    const failed = await plainGet(cluster.url('big.bin'), { 'If-Match': '"another-version"' });
    expect(failed.status).toBe(412);
    expect(traffic(cluster)).toEqual(before);
  });

  it('drops the chunks of a version the servers no longer report, and serves the new one', async () => {
    const dir = await tempDir();
    const files = await writeFiles(dir, { 'changes.bin': 5 * CHUNK });
    const cluster = await clusterForTest({ root: dir, gateway: { metaCacheMs: 100 } });
    expect((await get(cluster.url('changes.bin'))).body.equals(files.get('changes.bin')!)).toBe(true);
    expect((await get(cluster.url('changes.bin'))).headers.get('cache-status')).toBe('httpgw; hit');
    const changed = randomBytes(5 * CHUNK);
    await writeFile(join(dir, 'changes.bin'), changed);
    // Servers notice the change when they next check the file; the gateway when its metadata expires.
    await eventually(async () => (await get(cluster.url('changes.bin'))).body.equals(changed), 'the new version');
    expect(cluster.gateway.stats().cache.invalidations).toBe(1);
    const again = await get(cluster.url('changes.bin'));
    expect(again.body.equals(changed)).toBe(true);
    expect(again.headers.get('cache-status')).toBe('httpgw; hit');
  });

  it('keeps within its byte bound, evicting, and a scan of a big file does not flush what is asked for often', async () => {
    const dir = await tempDir();
    const files = await writeFiles(dir, { 'hot.bin': 2 * CHUNK, 'scan-1.bin': 20 * CHUNK, 'scan-2.bin': 20 * CHUNK });
    const bound = 16 * (CHUNK + 1_024);
    const cluster = await clusterForTest({ root: dir, gateway: { metaCacheMs: 60_000, cache: { memoryBytes: bound } } });
    for (let i = 0; i < 4; i++) expect((await get(cluster.url('hot.bin'))).body.equals(files.get('hot.bin')!)).toBe(true);
    for (const path of ['scan-1.bin', 'scan-2.bin']) expect((await get(cluster.url(path))).body.equals(files.get(path)!)).toBe(true);
    const stats = cluster.gateway.stats().cache;
    expect(stats.memory!.bytes).toBeLessThanOrEqual(bound);
    expect(stats.memory!.evictions + stats.memory!.rejected).toBeGreaterThan(0);
    expect((await get(cluster.url('hot.bin'))).headers.get('cache-status')).toBe('httpgw; hit');
  });

  it('with --cache-size 0 stores nothing and says nothing', async () => {
    const cluster = await clusterForTest({ root: root.path, gateway: { cache: { memoryBytes: 0 } } });
    await get(cluster.url('other.bin'));
    const again = await get(cluster.url('other.bin'));
    expect(again.body.equals(root.files.get('other.bin')!)).toBe(true);
    expect(again.headers.get('cache-status')).toBeNull();
    expect(cluster.gateway.stats().cache.memory).toBeUndefined();
  });
});

describe('serving stale', () => {
  const root = useRoot({ 'kept.bin': 4 * CHUNK, 'half.bin': 4 * CHUNK });

  async function outage(serveStale: boolean): Promise<Cluster> {
    const cluster = await clusterForTest({ root: root.path, gateway: { metaCacheMs: 50, cache: { serveStale } } });
    expect((await get(cluster.url('kept.bin'))).status).toBe(200);
    expect((await get(cluster.url('half.bin'), { Range: 'bytes=0-99' })).status).toBe(206);
    for (const server of cluster.servers) await server.stop();
    await until(() => cluster.gateway.pool.size === 0, 5_000, 'the servers to leave');
    return cluster;
  }

  it('serves a fully cached file when every server holding it is gone, and says it is stale', async () => {
    const cluster = await outage(true);
    const stale = await get(cluster.url('kept.bin'));
    expect(stale.status).toBe(200);
    expect(stale.body.equals(root.files.get('kept.bin')!)).toBe(true);
    expect(stale.headers.get('cache-status')).toBe('httpgw; fwd=stale; detail=servers-unavailable');
    expect(stale.headers.get('age')).not.toBeNull();
    expect(stale.headers.get('etag')).toBeTruthy();
    const range = await get(cluster.url('kept.bin'), { Range: 'bytes=100-199' });
    expect(range.status).toBe(206);
    expect(range.body.equals(root.files.get('kept.bin')!.subarray(100, 200))).toBe(true);
    // Only part of it cached: an error, never a partial file.
    expect((await get(cluster.url('half.bin'))).status).toBe(503);
    expect(cluster.gateway.stats().cache.stale).toBe(2);
  });

  it('does not serve stale with --no-serve-stale', async () => {
    const cluster = await outage(false);
    expect((await get(cluster.url('kept.bin'))).status).toBe(503);
  });

  it('does not serve stale once a server that held the file says it is gone', async () => {
    const dir = await tempDir();
    await writeFiles(dir, { 'deleted.bin': 2 * CHUNK });
    const cluster = await clusterForTest({ root: dir, gateway: { metaCacheMs: 50 } });
    expect((await get(cluster.url('deleted.bin'))).status).toBe(200);
    await rm(join(dir, 'deleted.bin'));
    await eventually(async () => (await get(cluster.url('deleted.bin'))).status === 404, 'a 404');
    expect(cluster.gateway.stats().cache.stale).toBe(0);
  });
});

describe('shared fetches', () => {
  const root = useRoot({ 'release.bin': 64 * CHUNK });

  it('gives concurrent downloads of one version one fetch of each chunk, byte-identical', async () => {
    // No hedges: on a loaded machine they would add copies of late chunks, which is not what is counted here.
    const cluster = await clusterForTest({ root: root.path, gateway: { hedging: false } });
    const file = root.files.get('release.bin')!;
    const before = traffic(cluster);
    const bodies = await Promise.all(Array.from({ length: 8 }, () => get(cluster.url('release.bin'))));
    for (const body of bodies) expect(body.body.equals(file)).toBe(true);
    const sent = traffic(cluster).chunksSent - before.chunksSent;
    expect(sent).toBeGreaterThanOrEqual(64);
    // 8 separate downloads would make 512; retransmissions under load add a few.
    expect(sent).toBeLessThanOrEqual(64 * 1.25);
    expect(cluster.gateway.stats().cache.collapsed).toBeGreaterThan(0);
  });

  it('lets a fast client finish long before a slow one, both whole, with the file fetched about once', async () => {
    const cluster = await clusterForTest({ root: root.path });
    const file = root.files.get('release.bin')!;
    const before = traffic(cluster);
    const slow = slowDownload(cluster.url('release.bin'), 64 * 1024, 50);
    await until(() => cluster.gateway.stats().transfers.active === 1, 5_000, 'the slow download to start');
    const fastStarted = performance.now();
    const fast = await get(cluster.url('release.bin'));
    const fastMs = performance.now() - fastStarted;
    expect(fast.body.equals(file)).toBe(true);
    const slowResult = await slow;
    expect(slowResult.body.equals(file)).toBe(true);
    expect(fastMs).toBeLessThan(slowResult.ms / 2);
    expect(traffic(cluster).chunksSent - before.chunksSent).toBeLessThan(64 * 1.5);
  });
});

/** A download read at about `bytesPerTick` every `tickMs` (the client's socket fills, the gateway waits). */
function slowDownload(url: string, bytesPerTick: number, tickMs: number): Promise<{ body: Buffer; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    request(url, (response) => {
      const parts: Buffer[] = [];
      let budget = bytesPerTick;
      const timer = setInterval(() => {
        budget = bytesPerTick;
        response.resume();
      }, tickMs);
      response.on('data', (part: Buffer) => {
        parts.push(part);
        budget -= part.length;
        if (budget <= 0) response.pause();
      });
      response.on('end', () => {
        clearInterval(timer);
        resolve({ body: Buffer.concat(parts), ms: performance.now() - started });
      });
      response.on('error', (error) => {
        clearInterval(timer);
        reject(error);
      });
    })
      .on('error', reject)
      .end();
  });
}

describe('disk tier', () => {
  const root = useRoot({ 'persisted.bin': 6 * CHUNK + 77 });

  async function cachedCluster(dir: string, servers = 3): Promise<Cluster> {
    const cluster = await startCluster({ root: root.path, servers, gateway: { metaCacheMs: 60_000, cache: { memoryBytes: 0, dir } } });
    onTestFinished(() => cluster.stop());
    return cluster;
  }

  async function entries(dir: string): Promise<string[]> {
    const files: string[] = [];
    for (const shard of await readdir(join(dir, 'chunks'))) for (const name of await readdir(join(dir, 'chunks', shard))) files.push(join(dir, 'chunks', shard, name));
    return files;
  }

  it('serves from disk after a restart, with no datagram; a damaged entry is noticed and fetched again', async () => {
    const dir = await tempDir();
    const file = root.files.get('persisted.bin')!;
    const first = await cachedCluster(dir);
    expect((await get(first.url('persisted.bin'))).body.equals(file)).toBe(true);
    await first.stop();
    expect(await entries(dir)).toHaveLength(7);

    const second = await cachedCluster(dir);
    await until(() => second.gateway.stats().cache.disk!.indexed, 5_000, 'the index');
    const lookupDone = await get(second.url('persisted.bin'), { Range: 'bytes=0-0' });
    expect(lookupDone.headers.get('cache-status')).toBe('httpgw; hit');
    const before = traffic(second);
    const hit = await get(second.url('persisted.bin'));
    expect(hit.body.equals(file)).toBe(true);
    expect(hit.headers.get('cache-status')).toBe('httpgw; hit');
    expect(traffic(second)).toEqual(before);
    await second.stop();

    // One flipped byte in one entry.
    const [victim] = (await entries(dir)).sort();
    const bytes = await readFile(victim!);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(victim!, bytes);
    const third = await cachedCluster(dir);
    await until(() => third.gateway.stats().cache.disk!.indexed, 5_000, 'the index');
    const repaired = await get(third.url('persisted.bin'));
    expect(repaired.body.equals(file)).toBe(true);
    expect(third.gateway.stats().cache.disk!.corrupt).toBe(1);
    expect(traffic(third).chunksSent).toBeGreaterThan(0);
  });
});


describe('metadata', () => {
  const root = useRoot({ 'burst.txt': 'one chunk\n' });

  it('a burst of requests for one file sends one metadata request per server, not one per request', async () => {
    const cluster = await clusterForTest({ root: root.path });
    const before = cluster.gateway.stats().requests.sent;
    const responses = await Promise.all(Array.from({ length: 20 }, () => get(cluster.url('burst.txt'))));
    for (const response of responses) expect(response.body.toString()).toBe('one chunk\n');
    // 3 metadata requests and 1 chunk request (shared by all 20); a hedge or two under load.
    expect(cluster.gateway.stats().requests.sent - before).toBeLessThanOrEqual(3 + 3);
  });

  it('Cache-Control: no-cache asks the servers again, and the cached chunks of the same version still serve', async () => {
    const cluster = await clusterForTest({ root: root.path, gateway: { metaCacheMs: 60_000 } });
    await get(cluster.url('burst.txt'));
    const before = traffic(cluster);
    const validated = await plainGet(cluster.url('burst.txt'), { 'Cache-Control': 'no-cache' });
    expect(validated.status).toBe(200);
    expect(validated.headers['cache-status']).toBe('httpgw; hit');
    const after = traffic(cluster);
    expect(after.requests - before.requests).toBeGreaterThanOrEqual(3);
    expect(after.chunksSent).toBe(before.chunksSent);
  });
});

describe('disk tier across kill -9 (real processes, curl)', () => {
  const root = useRoot({ 'crash.bin': 40 * CHUNK + 5 });

  /** A gateway process with the disk cache in `dir`, and one file server per root; stopped when the test ends. */
  async function gatewayWithCache(dir: string, roots: string[]): Promise<{ gateway: RunningProcess; base: string }> {
    const gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', '--cache-size', '0', '--cache-dir', dir, '--meta-cache', '60000']);
    const servers: RunningProcess[] = [];
    onTestFinished(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      if (gateway.child.exitCode === null && gateway.child.signalCode === null) await gateway.stop();
    });
    const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/);
    for (const path of roots) {
      const server = startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', path, '--bind', '127.0.0.1']);
      servers.push(server);
      await server.waitForLine(/registered with gateway/);
    }
    await gateway.waitForLine(/cache directory indexed/);
    return { gateway, base: `http://${http}` };
  }

  async function curlTo(url: string, out: string): Promise<{ code: number | null; body: Buffer; headers: string }> {
    const result = await run('curl', ['-sS', '--noproxy', '*', '-D', '-', '-o', out, url], { timeoutMs: 30_000 });
    return { code: result.code, body: await readFile(out).catch(() => Buffer.alloc(0)), headers: result.stdout };
  }

  it('a gateway killed while it writes leaves no half entry; after a restart the file is whole from disk, stale when no server is left', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out.bin');
    const file = root.files.get('crash.bin')!;
    const first = await gatewayWithCache(join(dir, 'cache'), [root.path]);
    expect((await curlTo(`${first.base}/crash.bin`, out)).body.equals(file)).toBe(true);
    // At once, while the writes behind the response may still be under way.
    first.gateway.child.kill('SIGKILL');

    const second = await gatewayWithCache(join(dir, 'cache'), [root.path]);
    expect(await readdir(join(dir, 'cache', 'tmp'))).toEqual([]);
    const again = await curlTo(`${second.base}/crash.bin`, out);
    expect(again.code).toBe(0);
    expect(again.body.equals(file)).toBe(true);
    // Whatever was missing is written now; then killed again, with every entry on disk.
    await until(() => countEntries(join(dir, 'cache')) === 41, 10_000, 'every chunk on disk');
    second.gateway.child.kill('SIGKILL');

    const third = await gatewayWithCache(join(dir, 'cache'), []);
    const stale = await curlTo(`${third.base}/crash.bin`, out);
    expect(stale.code).toBe(0);
    expect(stale.body.equals(file)).toBe(true);
    expect(stale.headers).toMatch(/cache-status: httpgw; fwd=stale; detail=servers-unavailable/i);
  }, 60_000);
});

function countEntries(dir: string): number {
  let count = 0;
  for (const shard of readdirSync(join(dir, 'chunks'))) count += readdirSync(join(dir, 'chunks', shard)).length;
  return count;
}
