import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { chmod, copyFile, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir, writeFiles } from './support/cluster.js';
import { until } from './support/faulty-harness.js';
import { run, startProcess, type RunningProcess } from './support/processes.js';

// Files that change, disagree or cannot be read while they are served, with real processes (httpgw,
// fastfilesrv) and a real client (curl). What must hold: a download that ends with exit 0 is exactly
// one version of the file; anything else is an error the client sees (an error status, or the
// connection cut so curl exits 18); and one file's trouble costs no server its place in the pool.

const temps: Array<{ remove: () => Promise<void> }> = [];
afterAll(async () => {
  for (const temp of temps.splice(0)) await temp.remove();
});

async function tempRoot(files: Record<string, Buffer | string | number> = {}): Promise<{ path: string; files: Map<string, Buffer> }> {
  const dir = await makeTempDir();
  temps.push(dir);
  // Readable by the unprivileged file server of the permissions test, too.
  await chmod(dir.path, 0o755);
  return { path: dir.path, files: await writeFiles(dir.path, files) };
}

interface Deployment {
  gateway: RunningProcess;
  base: string;
  servers: RunningProcess[];
  addServer(root: string, as?: { uid: number; gid: number }): Promise<RunningProcess>;
}

/** A gateway process and one file server process per root, all registered; stopped when the test ends. */
async function deploy(roots: string[], gatewayArgs: string[] = []): Promise<Deployment> {
  // The transfer path is the subject: no cache tier unless a test asks for one.
  const cacheArgs = gatewayArgs.includes('--cache-size') ? [] : ['--cache-size', '0'];
  const gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', ...cacheArgs, ...gatewayArgs]);
  onTestFinished(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await gateway.stop();
  });
  const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/);
  const servers: RunningProcess[] = [];
  const addServer = async (root: string, as?: { uid: number; gid: number }) => {
    const server = startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', root, '--bind', '127.0.0.1'], as);
    servers.push(server);
    await server.waitForLine(/registered with gateway/);
    return server;
  };
  for (const root of roots) await addServer(root);
  return { gateway, base: `http://${http}`, servers, addServer };
}

/** curl to a file; the exit code, the HTTP status and what it wrote. */
async function curl(url: string, out: string, args: string[] = []) {
  await rm(out, { force: true });
  const started = performance.now();
  const result = await run('curl', ['-sS', '--noproxy', '*', '-o', out, '-w', '%{http_code} %{time_starttransfer}', ...args, url], { timeoutMs: 30_000 });
  const [status, ttfb] = result.stdout.trim().split(' ');
  const body = await readFile(out).catch(() => Buffer.alloc(0));
  return { code: result.code, status: Number(status), ttfbMs: Number(ttfb) * 1000, ms: performance.now() - started, body, stderr: result.stderr };
}

/** Overwrites `length` bytes at `offset` in place, as `dd conv=notrunc` (and rsync --inplace) do. */
async function rewriteInPlace(path: string, offset: number, length: number): Promise<Buffer> {
  const patch = join(path, '..', `.patch-${offset}`);
  await writeFile(patch, randomBytes(length));
  const result = await run('dd', [`if=${patch}`, `of=${path}`, 'bs=4096', `seek=${offset / 4096}`, 'conv=notrunc', 'status=none']);
  expect(result.code, result.stderr).toBe(0);
  await rm(patch);
  return readFile(path);
}

/** Milliseconds between the first log lines matching `from` and `to`, by their timestamps. */
function gatewayMsBetween(log: string, from: RegExp, to: RegExp): number {
  const at = (pattern: RegExp) => {
    const line = log.split('\n').find((candidate) => pattern.test(candidate));
    expect(line, `a log line matching ${pattern}`).toBeDefined();
    return Date.parse(line!.split(' ')[0]!);
  };
  return at(to) - at(from);
}

const sizeOf = (path: string) => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

describe('a file rewritten in place while it is downloaded', () => {
  // Larger than what loopback's socket buffers hold (several MB), so a slow client's download is still being fetched when struck.
  const SIZE = 48 * 1024 * 1024;

  it('never ends with exit 0 and mixed bytes: one whole version, or a cut connection (fast and throttled downloads)', async () => {
    const root = await tempRoot({ 'live.bin': SIZE });
    const path = join(root.path, 'live.bin');
    // A small read-ahead: a rewrite mid-download meets chunks not fetched yet.
    const d = await deploy([root.path, root.path, root.path], ['--read-ahead', String(512 * 1024)]);
    const out = join(root.path, '..', `${root.path.split('/').pop()}.out`);
    onTestFinished(() => rm(out, { force: true }));
    const outcomes = { whole: 0, cut: 0 };
    for (let round = 0; round < 10; round++) {
      const throttled = round % 2 === 1;
      const before = await readFile(path);
      // Gone before curl starts, so the strike below waits for this download's bytes, not the last one's.
      await rm(out, { force: true });
      const downloading = curl(`${d.base}/live.bin`, out, throttled ? ['--limit-rate', '16M'] : []);
      // Strike at a different point of each download: fast ones anywhere, slow ones in their first megabytes.
      const strikeAt = throttled ? round * 128 * 1024 : (round * 2 * 1024 * 1024) % SIZE;
      await until(() => sizeOf(out) >= Math.max(strikeAt, 1), 10_000, `curl to have ${strikeAt} bytes`).catch(() => {});
      const offset = (round % 6) * 8 * 1024 * 1024;
      const after = await rewriteInPlace(path, offset, 64 * 1024);
      const result = await downloading;
      if (result.code === 0) {
        expect(result.status).toBe(200);
        expect(result.body.equals(before) || result.body.equals(after), `round ${round}: exit 0 with a body that is neither version`).toBe(true);
        outcomes.whole++;
      } else {
        // Cut: curl says so (18: transfer closed with bytes outstanding), and what arrived is one version's prefix.
        expect(result.code, result.stderr).toBe(18);
        const prefixOf = (version: Buffer) => result.body.equals(version.subarray(0, result.body.length));
        expect(prefixOf(before) || prefixOf(after)).toBe(true);
        outcomes.cut++;
      }
    }
    expect(outcomes.whole + outcomes.cut).toBe(10);
    // The throttled downloads were struck mid-transfer: they cannot all have finished.
    expect(outcomes.cut).toBeGreaterThan(0);
    // Afterwards the file downloads whole in its last version, from servers that were never banned.
    const final = await curl(`${d.base}/live.bin`, out);
    expect(final.code).toBe(0);
    expect(final.body.equals(await readFile(path))).toBe(true);
    expect(d.gateway.log()).not.toMatch(/server dropped|lost a file for bad data/);
  }, 90_000);

  it('after a warm download: no server is banned, the new version is served whole, other files are unaffected', async () => {
    const root = await tempRoot({ 'warm.bin': 2 * 1024 * 1024 + 77, 'other.bin': 700_000 });
    const path = join(root.path, 'warm.bin');
    const d = await deploy([root.path, root.path, root.path]);
    const out = join(root.path, 'out');
    for (let i = 0; i < 2; i++) expect((await curl(`${d.base}/warm.bin`, out)).body.equals(root.files.get('warm.bin')!)).toBe(true);
    const after = await rewriteInPlace(path, 1024 * 1024, 8192);
    const again = await curl(`${d.base}/warm.bin`, out);
    expect(again.code).toBe(0);
    expect(again.body.equals(after)).toBe(true);
    const other = await curl(`${d.base}/other.bin`, out);
    expect(other.code).toBe(0);
    expect(other.body.equals(root.files.get('other.bin')!)).toBe(true);
    expect(d.gateway.log()).not.toMatch(/server dropped|lost a file for bad data|banning/);
    expect(d.gateway.log()).toMatch(/server no longer serves the file version .*why=stale/);
  }, 30_000);

  it('with the cache: the old version is served whole until the metadata expires, then the new one, never a mix', async () => {
    const root = await tempRoot({ 'cached.bin': 2 * 1024 * 1024 + 77 });
    const path = join(root.path, 'cached.bin');
    const d = await deploy([root.path, root.path, root.path], ['--cache-size', '64MiB', '--meta-cache', '300']);
    const out = join(root.path, 'out');
    const original = root.files.get('cached.bin')!;
    for (let i = 0; i < 2; i++) expect((await curl(`${d.base}/cached.bin`, out)).body.equals(original)).toBe(true);
    // Rewritten while a throttled download is under way: it started as a hit, so it is the old version, whole.
    const downloading = curl(`${d.base}/cached.bin`, out, ['--limit-rate', '4M']);
    const after = await rewriteInPlace(path, 1024 * 1024, 8192);
    const during = await downloading;
    expect(during.code).toBe(0);
    expect(during.body.equals(original)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const again = await curl(`${d.base}/cached.bin`, out);
    expect(again.code).toBe(0);
    expect(again.body.equals(after)).toBe(true);
    expect(d.gateway.log()).toMatch(/cached chunks of the old version dropped/);
    // And from then on, the new version from the cache.
    expect((await curl(`${d.base}/cached.bin`, out)).body.equals(after)).toBe(true);
  }, 30_000);
});

describe('chunks checked on the main thread (httpgw --no-md5-worker)', () => {
  it('a download is the file whole; one struck by a rewrite in place is one whole version or cut, never mixed', async () => {
    const SIZE = 16 * 1024 * 1024;
    const root = await tempRoot({ 'live.bin': SIZE });
    const path = join(root.path, 'live.bin');
    const d = await deploy([root.path, root.path], ['--no-md5-worker', '--read-ahead', String(512 * 1024)]);
    const out = join(root.path, '..', `${root.path.split('/').pop()}-main-thread.out`);
    onTestFinished(() => rm(out, { force: true }));
    const before = await readFile(path);
    const whole = await curl(`${d.base}/live.bin`, out);
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.body.equals(before)).toBe(true);

    await rm(out, { force: true });
    const downloading = curl(`${d.base}/live.bin`, out, ['--limit-rate', '8M']);
    await until(() => sizeOf(out) >= 1024 * 1024, 10_000, 'curl to have 1 MiB').catch(() => {});
    const after = await rewriteInPlace(path, 8 * 1024 * 1024, 64 * 1024);
    const result = await downloading;
    if (result.code === 0) {
      expect(result.body.equals(before) || result.body.equals(after), 'exit 0 with a body that is neither version').toBe(true);
    } else {
      expect(result.code, result.stderr).toBe(18);
      expect(result.body.equals(before.subarray(0, result.body.length))).toBe(true);
    }
    expect(d.gateway.log()).not.toMatch(/md5 worker/);
  }, 60_000);
});

describe('resuming a download after the file changed', () => {
  it('with If-Match on the first ETag, curl -f -C - fails (412, exit 22) and appends nothing; unchanged, it completes the file', async () => {
    const root = await tempRoot({ 'resume.bin': 400_000 });
    const path = join(root.path, 'resume.bin');
    const d = await deploy([root.path]);
    const out = join(root.path, '..', `${root.path.split('/').pop()}-resume.out`);
    onTestFinished(() => rm(out, { force: true }));
    const head = await run('curl', ['-sS', '-I', '--noproxy', '*', `${d.base}/resume.bin`]);
    const etag = /^etag: (.+?)\r?$/im.exec(head.stdout)![1]!;
    // The first 100,000 bytes arrived before the connection broke.
    await writeFile(out, root.files.get('resume.bin')!.subarray(0, 100_000));
    await rewriteInPlace(path, 200 * 4096, 4096);
    // (If-Range would get the whole new file with 200, which curl appends to what it has: If-Match is the safe guard.)
    const resumed = await run('curl', ['-sS', '-f', '--noproxy', '*', '-C', '-', '-H', `If-Match: ${etag}`, '-o', out, `${d.base}/resume.bin`]);
    expect(resumed.code).toBe(22);
    expect(resumed.stderr).toContain('412');
    expect((await readFile(out)).equals(root.files.get('resume.bin')!.subarray(0, 100_000))).toBe(true);
    // Unchanged, the same resume completes the file.
    const again = await run('curl', ['-sS', '-I', '--noproxy', '*', `${d.base}/resume.bin`]);
    const fresh = /^etag: (.+?)\r?$/im.exec(again.stdout)![1]!;
    const current = await readFile(path);
    await writeFile(out, current.subarray(0, 100_000));
    const completed = await run('curl', ['-sS', '-f', '--noproxy', '*', '-C', '-', '-H', `If-Match: ${fresh}`, '-o', out, `${d.base}/resume.bin`]);
    expect(completed.code, completed.stderr).toBe(0);
    expect((await readFile(out)).equals(current)).toBe(true);
  }, 30_000);
});

describe('servers that hold different bytes under the same size and modification time', () => {
  it('serve one version or the other, whole, never a mix; the disagreement is logged', async () => {
    const SIZE = 1024 * 1024 + 3;
    const a = await tempRoot({ 'twin.bin': SIZE });
    const b = await tempRoot({ 'twin.bin': SIZE });
    // As `touch -r` or `cp -p` of another build leaves them: same size, same times, other bytes.
    const time = new Date('2026-03-01T12:00:00Z');
    await utimes(join(a.path, 'twin.bin'), time, time);
    await utimes(join(b.path, 'twin.bin'), time, time);
    const c = await tempRoot();
    await copyFile(join(a.path, 'twin.bin'), join(c.path, 'twin.bin'));
    await utimes(join(c.path, 'twin.bin'), time, time);
    const versions = [a.files.get('twin.bin')!, b.files.get('twin.bin')!];

    const d = await deploy([a.path, b.path], ['--meta-cache', '0']);
    const out = join(a.path, 'out');
    for (let i = 0; i < 4; i++) {
      const result = await curl(`${d.base}/twin.bin`, out);
      expect(result.code).toBe(0);
      expect(versions.some((version) => result.body.equals(version))).toBe(true);
    }
    await until(() => /servers disagree about a file/.test(d.gateway.log()), 5_000, 'the disagreement to be logged');
    // A third server with a's bytes: the version two servers hold is the one served.
    await d.addServer(c.path);
    await until(() => (d.gateway.log().match(/server admitted/g) ?? []).length >= 3, 5_000, 'the third server');
    const majority = await curl(`${d.base}/twin.bin`, out);
    expect(majority.code).toBe(0);
    expect(majority.body.equals(versions[0]!)).toBe(true);
  }, 30_000);
});

describe('failing fast', () => {
  it('a file its only holder cannot read: 403 at once, every time, with one log line', async () => {
    const root = await tempRoot({ 'locked.bin': 100_000, 'open.txt': 'open\n' });
    await chmod(join(root.path, 'locked.bin'), 0o000);
    // Root reads anything: the file server runs as an unprivileged user when the tests run as root.
    const as = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
    const d = await deploy([]);
    const server = await d.addServer(root.path, as);
    const out = join(root.path, '..', `${root.path.split('/').pop()}-locked.out`);
    onTestFinished(() => rm(out, { force: true }));
    for (let i = 0; i < 3; i++) {
      const result = await curl(`${d.base}/locked.bin`, out);
      expect(result.status).toBe(403);
      expect(result.ms).toBeLessThan(1_000);
    }
    expect((await curl(`${d.base}/open.txt`, out)).body.toString()).toBe('open\n');
    expect(server.log().match(/WARN .*file cannot be read path=/g), server.log()).toHaveLength(1);
    expect(d.gateway.log().length).toBeLessThan(10_000);
  }, 30_000);

  it('the last holder of a file leaves mid-transfer: the connection is cut within a second, not at the stall timeout', async () => {
    const holder = await tempRoot({ 'solo.bin': 32 * 1024 * 1024 });
    const empty = await tempRoot();
    const d = await deploy([empty.path], ['--read-ahead', String(1024 * 1024)]);
    const server = await d.addServer(holder.path);
    const out = join(holder.path, 'out');
    const downloading = curl(`${d.base}/solo.bin`, out, ['--limit-rate', '2M']);
    await until(() => sizeOf(out) >= 1024 * 1024, 10_000, 'the download to be under way');
    await server.stop();
    const result = await downloading;
    expect(result.code).toBe(18);
    // Timed by the gateway's own clock, from the goodbye to the cut (curl's rate limit sleeps between reads).
    expect(gatewayMsBetween(d.gateway.log(), /server left/, /transfer failed .*code=GW_ERR_SOURCES_GONE/)).toBeLessThan(1_000);
    expect(d.gateway.log()).toMatch(/transfer failed .*code=GW_ERR_SOURCES_GONE/);
    // The transfer's own line and the request's access entry carry the same request id.
    const failed = d.gateway.records().find((record) => record.msg === 'transfer failed');
    expect(failed?.reqId).toMatch(/^[0-9a-f-]{36}$/);
    await until(() => d.gateway.records().some((record) => record.name === 'httpgw:access' && record.reqId === failed!.reqId), 5_000, 'the access entry');
  }, 30_000);

  it('the last holder killed mid-transfer: cut as soon as it is evicted', async () => {
    const holder = await tempRoot({ 'solo.bin': 32 * 1024 * 1024 });
    const d = await deploy([], ['--read-ahead', String(1024 * 1024)]);
    const server = await d.addServer(holder.path);
    const out = join(holder.path, 'out');
    const downloading = curl(`${d.base}/solo.bin`, out, ['--limit-rate', '2M']);
    await until(() => sizeOf(out) >= 1024 * 1024, 10_000, 'the download to be under way');
    server.child.kill('SIGKILL');
    const result = await downloading;
    expect(result.code).toBe(18);
    expect(gatewayMsBetween(d.gateway.log(), /server evicted/, /transfer failed .*code=GW_ERR_SOURCES_GONE/)).toBeLessThan(1_000);
  }, 30_000);

  it('servers hung at request time (SIGSTOP) cost a new request milliseconds: first byte well under a second', async () => {
    const root = await tempRoot({ 'warm.txt': 'warm\n', 'fresh.bin': 300_000 });
    const d = await deploy([root.path, root.path, root.path]);
    const out = join(root.path, 'out');
    expect((await curl(`${d.base}/warm.txt`, out)).code).toBe(0);
    const [hungA, hungB] = d.servers;
    hungA!.child.kill('SIGSTOP');
    hungB!.child.kill('SIGSTOP');
    onTestFinished(() => {
      hungA!.child.kill('SIGCONT');
      hungB!.child.kill('SIGCONT');
    });
    const result = await curl(`${d.base}/fresh.bin`, out);
    expect(result.code).toBe(0);
    expect(result.body.equals(root.files.get('fresh.bin')!)).toBe(true);
    expect(result.ttfbMs).toBeLessThan(500);
  }, 30_000);
});

describe('a file that keeps changing', () => {
  let root: { path: string; files: Map<string, Buffer> };
  beforeAll(async () => {
    root = await tempRoot({ 'grow.log': 'line\n'.repeat(10_000) });
  });

  it('an appended log: each download is one whole state of the file', async () => {
    const d = await deploy([root.path, root.path]);
    const out = join(root.path, 'out');
    const states = [await readFile(join(root.path, 'grow.log'))];
    for (let i = 0; i < 4; i++) {
      const result = await curl(`${d.base}/grow.log`, out);
      expect(result.code).toBe(0);
      expect(states.some((state) => state.equals(result.body))).toBe(true);
      await writeFile(join(root.path, 'grow.log'), `appended ${i}\n`, { flag: 'a' });
      states.push(await readFile(join(root.path, 'grow.log')));
    }
  }, 30_000);
});
