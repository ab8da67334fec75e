import { execFile } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '@httpgw/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sha256, startCluster, writeFiles, type Cluster } from './support/cluster.js';
import { parseHeaders } from './support/curl-headers.js';

// curl, wget and aria2c against a gateway and three file servers over loopback (.ci/run installs them).

const CHUNK = 16 * 1024;
const BIG = 'big file.bin';
const BIG_SIZE = 6 * 1024 * 1024 + 123;
const UNICODE = 'ünï 文件 #1.txt';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a client in `cwd` with a bounded time; never rejects (the exit code says how it went). */
function run(command: string, args: string[], cwd: string, timeoutMs = 15_000): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}


describe('real clients', () => {
  let cluster: Cluster;
  let files: Map<string, Buffer>;
  let work: string;
  const logLines: string[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  const big = () => files.get(BIG)!;
  const url = (path: string) => cluster.url(path);

  beforeAll(async () => {
    const root = await makeTempDir();
    cleanups.push(root.remove);
    const scratch = await makeTempDir('httpgw-clients-');
    cleanups.push(scratch.remove);
    work = scratch.path;
    files = await writeFiles(root.path, {
      [BIG]: BIG_SIZE,
      'hello.txt': 'hello world\n',
      'page.html': '<p>hi</p>\n',
      'data.json': '{"a":1}\n',
      'image.png': 64,
      'blob.unknownext': 10,
      [UNICODE]: 'unicode name\n',
    });
    const logger = createLogger({ name: 'gw', level: 'info', write: (line) => logLines.push(line) });
    cluster = await startCluster({ root: root.path, gateway: { chunkSize: CHUNK, logger } });
    cleanups.unshift(() => cluster.stop());
  });

  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  const curl = (args: string[], timeoutMs?: number) => run('curl', ['--silent', '--show-error', ...args], work, timeoutMs);

  describe('curl', () => {
    it('downloads a multi-MB file byte for byte with 200', async () => {
      const result = await curl(['-o', 'full.bin', '-w', '%{http_code}', url(BIG)]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe('200');
      expect(sha256(await readFile(join(work, 'full.bin')))).toBe(sha256(big()));
    });

    it.each([
      ['a-b', '100-199', 100, 199],
      ['a-', `${BIG_SIZE - 5000}-`, BIG_SIZE - 5000, BIG_SIZE - 1],
      ['-n', '-1000', BIG_SIZE - 1000, BIG_SIZE - 1],
    ])('range %s → 206 with Content-Range and exactly those bytes', async (_form, range, first, last) => {
      const result = await curl(['-r', range, '-D', '-', '-o', 'range.bin', url(BIG)]);
      expect(result.code).toBe(0);
      const { status, headers } = parseHeaders(result.stdout);
      expect(status).toBe(206);
      expect(headers.get('content-range')).toBe(`bytes ${first}-${last}/${BIG_SIZE}`);
      expect((await readFile(join(work, 'range.bin'))).equals(big().subarray(first, last + 1))).toBe(true);
    });

    it('a small range near the end of the file costs a few chunk requests, never a read from byte 0', async () => {
      const sentBefore = cluster.gateway.stats().requests.sent;
      const chunksBefore = cluster.servers.reduce((sum, server) => sum + server.stats.chunksSent, 0);
      const result = await curl(['-r', `${BIG_SIZE - 3000}-${BIG_SIZE - 2000}`, '-o', 'tail.bin', url(BIG)]);
      expect(result.code).toBe(0);
      expect((await readFile(join(work, 'tail.bin'))).equals(big().subarray(BIG_SIZE - 3000, BIG_SIZE - 1999))).toBe(true);
      // The whole file is ~385 chunks; the range lies in one. Allow metadata requests and a hedge.
      expect(cluster.gateway.stats().requests.sent - sentBefore).toBeLessThanOrEqual(8);
      expect(cluster.servers.reduce((sum, server) => sum + server.stats.chunksSent, 0) - chunksBefore).toBeLessThanOrEqual(3);
    });

    it('several ranges → the whole file with 200 (no multipart)', async () => {
      const result = await curl(['-r', '0-1,5-6', '-D', '-', '-o', 'multi.bin', url('hello.txt')]);
      expect(parseHeaders(result.stdout).status).toBe(200);
      expect(await readFile(join(work, 'multi.bin'), 'utf8')).toBe('hello world\n');
    });

    it('an unsatisfiable range → 416 with Content-Range: bytes */SIZE', async () => {
      const result = await curl(['-r', `${BIG_SIZE}-`, '-D', '-', '-o', 'none.bin', url(BIG)]);
      const { status, headers } = parseHeaders(result.stdout);
      expect(status).toBe(416);
      expect(headers.get('content-range')).toBe(`bytes */${BIG_SIZE}`);
    });

    it('If-Range: a matching ETag keeps the range, a stale one gets the whole file', async () => {
      const head = parseHeaders((await curl(['-I', url(BIG)])).stdout);
      const etag = head.headers.get('etag')!;
      const kept = await curl(['-r', '0-99', '-H', `If-Range: ${etag}`, '-D', '-', '-o', 'ifrange.bin', url(BIG)]);
      expect(parseHeaders(kept.stdout).status).toBe(206);
      const stale = await curl(['-r', '0-99', '-H', 'If-Range: "some-older-version"', '-D', '-', '-o', 'ifrange.bin', url('hello.txt')]);
      expect(parseHeaders(stale.stdout).status).toBe(200);
      expect(await readFile(join(work, 'ifrange.bin'), 'utf8')).toBe('hello world\n');
    });

    it('curl -C - resumes a partial file, and ends at once on a complete one', async () => {
      const target = join(work, 'resume-curl.bin');
      await writeFile(target, big().subarray(0, 2_500_000));
      const resumed = await curl(['-C', '-', '-o', 'resume-curl.bin', '-w', '%{http_code}', url(BIG)]);
      expect([resumed.code, resumed.stdout]).toEqual([0, '206']);
      expect(sha256(await readFile(target))).toBe(sha256(big()));
      const again = await curl(['-C', '-', '-o', 'resume-curl.bin', '-w', '%{http_code}', url(BIG)], 10_000);
      expect([again.code, again.stdout]).toEqual([0, '416']);
      expect(again.ms).toBeLessThan(5_000);
      expect(sha256(await readFile(target))).toBe(sha256(big()));
    });

    it('HEAD has the headers of GET, Accept-Ranges: bytes, and no body', async () => {
      const get = parseHeaders((await curl(['-D', '-', '-o', 'head-get.bin', url(BIG)])).stdout);
      const head = await curl(['-I', url(BIG)]);
      const headers = parseHeaders(head.stdout);
      expect(headers.status).toBe(200);
      expect(headers.headers.get('accept-ranges')).toBe('bytes');
      for (const name of ['content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges', 'x-content-type-options']) {
        expect(headers.headers.get(name), name).toBe(get.headers.get(name));
      }
      expect(headers.headers.get('content-length')).toBe(String(BIG_SIZE));
      const ranged = parseHeaders((await curl(['-I', '-r', '10-19', url(BIG)])).stdout);
      expect([ranged.status, ranged.headers.get('content-range')]).toEqual([206, `bytes 10-19/${BIG_SIZE}`]);
    });

    it('If-None-Match and If-Modified-Since (curl -R then -z) → 304', async () => {
      const etag = parseHeaders((await curl(['-I', url('hello.txt')])).stdout).headers.get('etag')!;
      expect(etag).toMatch(/^"[^"]+"$/);
      const byTag = await curl(['-H', `If-None-Match: ${etag}`, '-o', 'inm.txt', '-w', '%{http_code}', url('hello.txt')]);
      expect(byTag.stdout).toBe('304');
      const first = await curl(['-R', '-o', 'stamped.txt', url('hello.txt')]);
      expect(first.code).toBe(0);
      const lastModified = parseHeaders((await curl(['-I', url('hello.txt')])).stdout).headers.get('last-modified')!;
      expect((await stat(join(work, 'stamped.txt'))).mtimeMs).toBe(Math.floor(Date.parse(lastModified) / 1000) * 1000);
      const byDate = await curl(['-z', 'stamped.txt', '-o', 'stamped-again.txt', '-w', '%{http_code}', url('hello.txt')]);
      expect(byDate.stdout).toBe('304');
      expect(await readdir(work)).not.toContain('stamped-again.txt');
    });

    it.each([
      ['hello.txt', 'text/plain; charset=utf-8'],
      ['page.html', 'text/html; charset=utf-8'],
      ['data.json', 'application/json; charset=utf-8'],
      ['image.png', 'image/png'],
      ['blob.unknownext', 'application/octet-stream'],
    ])('%s has Content-Type %s and nosniff', async (name, type) => {
      const { headers } = parseHeaders((await curl(['-I', url(name)])).stdout);
      expect(headers.get('content-type')).toBe(type);
      expect(headers.get('x-content-type-options')).toBe('nosniff');
    });

    it('?download: curl -OJ saves under the ASCII filename, with filename*=UTF-8 for the real one', async () => {
      const result = await curl(['-OJ', '-D', '-', `${url(UNICODE)}?download`]);
      expect(result.code).toBe(0);
      expect(parseHeaders(result.stdout).headers.get('content-disposition')).toBe(
        `attachment; filename="uni __ #1.txt"; filename*=UTF-8''${encodeURIComponent(UNICODE)}`,
      );
      expect(await readFile(join(work, 'uni __ #1.txt'), 'utf8')).toBe('unicode name\n');
    });

    it('keeps the connection alive across requests, errors included', async () => {
      const result = await curl(['-v', '-o', '/dev/null', '-o', '/dev/null', '-o', '/dev/null', '-o', '/dev/null', url('hello.txt'), url('missing.txt'), `http://127.0.0.1:${cluster.gateway.httpAddress.port}/a%00b`, url(BIG)]);
      expect(result.stderr.match(/Connected to/g)).toHaveLength(1);
      expect(result.stderr.match(/Re-using existing connection/g)).toHaveLength(3);
      expect(result.stderr.match(/< HTTP\/1.1 \d+/g)).toEqual(['< HTTP/1.1 200', '< HTTP/1.1 404', '< HTTP/1.1 400', '< HTTP/1.1 200']);
    });

    it('other methods → 405 with Allow: GET, HEAD; malformed paths → 400; long URLs → 414; short bodies, JSON when asked', async () => {
      const post = await curl(['-X', 'POST', '-D', '-', url('hello.txt')]);
      const parsed = parseHeaders(post.stdout.slice(0, post.stdout.indexOf('\r\n\r\n')));
      expect([parsed.status, parsed.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
      expect(post.stdout.endsWith('\r\n\r\n405 POST is not allowed: use GET or HEAD\n')).toBe(true);
      const port = cluster.gateway.httpAddress.port;
      for (const [target, status] of [
        ['/%E0%A4%A', 400],
        ['/a%00b', 400],
        ['/%2e%2e/%2e%2e/etc/passwd', 400],
        [`/${'x'.repeat(9_000)}`, 414],
      ] as const) {
        const result = await curl(['--path-as-is', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${target}`]);
        const [body, code] = [result.stdout.slice(0, result.stdout.lastIndexOf('\n')), result.stdout.slice(result.stdout.lastIndexOf('\n') + 1)];
        expect(Number(code), target.slice(0, 20)).toBe(status);
        expect(body).toMatch(new RegExp(`^${status} [^\\n]{1,80}\\n$`));
      }
      const json = await curl(['-H', 'Accept: application/json', url('missing.txt')]);
      expect(JSON.parse(json.stdout)).toEqual({ status: 404, code: 'GW_ERR_NOT_FOUND', message: 'no registered file server has this file' });
    });
  });

  describe('wget', () => {
    const wget = (args: string[], timeoutMs?: number) => run('wget', ['--no-verbose', '--tries=1', ...args], work, timeoutMs);

    it('wget -c resumes a partial file byte for byte', async () => {
      const target = join(work, 'resume-wget.bin');
      await writeFile(target, big().subarray(0, 1_000_000));
      const result = await wget(['-c', '-O', 'resume-wget.bin', url(BIG)]);
      expect(result.code).toBe(0);
      expect(sha256(await readFile(target))).toBe(sha256(big()));
    });

    it('wget -c on a complete file ends at once with exit 0, without looping', async () => {
      const target = join(work, BIG);
      await writeFile(target, big());
      const result = await run('wget', ['--tries=3', '-c', url(BIG)], work, 10_000);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('416');
      expect(result.stderr).toContain('The file is already fully retrieved; nothing to do.');
      expect(result.ms).toBeLessThan(5_000);
      expect(sha256(await readFile(target))).toBe(sha256(big()));
    });

    it('wget -N skips a file that has not changed (If-Modified-Since → 304)', async () => {
      expect((await wget(['-N', url('hello.txt')])).code).toBe(0);
      const again = await run('wget', ['-N', url('hello.txt')], work);
      expect(again.code).toBe(0);
      expect(again.stderr).toContain('304 Not Modified');
    });

    it('wget --content-disposition saves ?download under its UTF-8 name', async () => {
      const result = await wget(['--content-disposition', `${url(UNICODE)}?download`]);
      expect(result.code).toBe(0);
      expect(await readFile(join(work, UNICODE), 'utf8')).toBe('unicode name\n');
    });

    it('reuses one connection for several URLs', async () => {
      const result = await run('wget', ['-d', '-O', '/dev/null', url('hello.txt'), url('page.html'), url('data.json')], work);
      expect(result.code).toBe(0);
      expect(result.stderr.match(/Reusing existing connection/g)).toHaveLength(2);
    });
  });

  describe('aria2c', () => {
    const aria2c = (args: string[]) => run('aria2c', ['--quiet', '--allow-overwrite=true', '--auto-file-renaming=false', ...args], work, 30_000);
    const requestsFor = (status: number) => logLines.filter((line) => line.includes(`GET /${encodeURIComponent(BIG)} `) && line.includes(`status=${status} `)).length;

    it('aria2c -x4 -s4 downloads in segments over several connections, byte for byte', async () => {
      const before = requestsFor(206);
      const result = await aria2c(['-x4', '-s4', '-k1M', '-o', 'aria.bin', url(BIG)]);
      expect(result.code).toBe(0);
      expect(sha256(await readFile(join(work, 'aria.bin')))).toBe(sha256(big()));
      expect(requestsFor(206) - before).toBeGreaterThanOrEqual(2);
    });

    it('aria2c -c resumes a partial file and leaves a complete one as it is', async () => {
      const target = join(work, 'aria-resume.bin');
      await writeFile(target, big().subarray(0, 3_000_000));
      expect((await aria2c(['-c', '-x4', '-s4', '-o', 'aria-resume.bin', url(BIG)])).code).toBe(0);
      expect(sha256(await readFile(target))).toBe(sha256(big()));
      const again = await aria2c(['-c', '-o', 'aria-resume.bin', url(BIG)]);
      expect(again.code).toBe(0);
      expect(again.ms).toBeLessThan(5_000);
      expect(sha256(await readFile(target))).toBe(sha256(big()));
    });
  });
});
