import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, startCluster, writeFiles, type Cluster } from './support/cluster.js';
import { run } from './support/processes.js';
import { parseHeaders } from './support/curl-headers.js';

// If-Match, If-Unmodified-Since and multipart/byteranges with real curl, against a gateway and three
// file servers over loopback.

const CHUNK = 16 * 1024;
const FILE = 'data.bin';
const SIZE = 100_000;


/** The parts of a multipart/byteranges body: each one's headers (lower-case names) and bytes. */
function parseMultipart(contentType: string, raw: Buffer): Array<{ headers: Map<string, string>; body: Buffer }> {
  const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(contentType)?.[1];
  if (!boundary) throw new Error(`not multipart/byteranges: ${contentType}`);
  const body = raw.toString('latin1');
  const close = `\r\n--${boundary}--\r\n`;
  expect(body.startsWith(`--${boundary}\r\n`)).toBe(true);
  expect(body.endsWith(close)).toBe(true);
  return `\r\n${body.slice(0, -close.length)}`
    .split(`\r\n--${boundary}\r\n`)
    .slice(1)
    .map((part) => {
      const split = part.indexOf('\r\n\r\n');
      return { headers: parseHeaders(`part\r\n${part.slice(0, split)}`).headers, body: Buffer.from(part.slice(split + 4), 'latin1') };
    });
}

describe('preconditions and multipart ranges with curl', () => {
  let cluster: Cluster;
  let data: Buffer;
  let mtimeMs: number;
  let work: string;
  const cleanups: Array<() => Promise<void>> = [];
  const curl = (args: string[]) => run('curl', ['--silent', '--show-error', ...args], { cwd: work, timeoutMs: 15_000 });
  const url = () => cluster.url(FILE);

  beforeAll(async () => {
    const root = await makeTempDir();
    cleanups.push(root.remove);
    const scratch = await makeTempDir('httpgw-preconditions-');
    cleanups.push(scratch.remove);
    work = scratch.path;
    data = (await writeFiles(root.path, { [FILE]: SIZE })).get(FILE)!;
    mtimeMs = (await stat(join(root.path, FILE))).mtimeMs;
    cluster = await startCluster({ root: root.path, gateway: { chunkSize: CHUNK } });
    cleanups.unshift(() => cluster.stop());
  });

  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('If-Match with the ETag gets the file; another ETag gets 412 with the validators', async () => {
    const head = parseHeaders((await curl(['-I', url()])).stdout);
    const etag = head.headers.get('etag')!;
    expect(etag).toMatch(/^"[^"]+"$/);
    const matching = await curl(['-H', `If-Match: ${etag}`, '-o', 'match.bin', '-w', '%{http_code}', url()]);
    expect([matching.code, matching.stdout]).toEqual([0, '200']);
    expect((await readFile(join(work, 'match.bin'))).equals(data)).toBe(true);

    const any = await curl(['-H', 'If-Match: *', '-o', 'any.bin', '-w', '%{http_code}', url()]);
    expect(any.stdout).toBe('200');

    const wrong = await curl(['-H', 'If-Match: "some-other-version"', '-D', '-', '-o', 'wrong.txt', url()]);
    const { status, headers } = parseHeaders(wrong.stdout);
    expect(status).toBe(412);
    expect(headers.get('etag')).toBe(etag);
    expect(headers.get('last-modified')).toBe(head.headers.get('last-modified'));
    expect(await readFile(join(work, 'wrong.txt'), 'utf8')).toBe('412 precondition failed\n');

    const weak = await curl(['-H', `If-Match: W/${etag}`, '-o', 'weak.txt', '-w', '%{http_code}', url()]);
    expect(weak.stdout).toBe('412');
    const beforeNotModified = await curl(['-H', 'If-Match: "some-other-version"', '-H', `If-None-Match: ${etag}`, '-o', 'both.txt', '-w', '%{http_code}', url()]);
    expect(beforeNotModified.stdout).toBe('412');
  });

  it('If-Unmodified-Since before the file changed gets 412; at or after it, the file', async () => {
    const before = await curl(['-H', `If-Unmodified-Since: ${new Date(mtimeMs - 60_000).toUTCString()}`, '-o', 'ius-before.txt', '-w', '%{http_code}', url()]);
    expect(before.stdout).toBe('412');
    expect(await readFile(join(work, 'ius-before.txt'), 'utf8')).toBe('412 precondition failed\n');
    const at = await curl(['-H', `If-Unmodified-Since: ${new Date(mtimeMs).toUTCString()}`, '-o', 'ius-at.bin', '-w', '%{http_code}', url()]);
    expect(at.stdout).toBe('200');
    expect((await readFile(join(work, 'ius-at.bin'))).equals(data)).toBe(true);
    const after = await curl(['-H', `If-Unmodified-Since: ${new Date(mtimeMs + 60_000).toUTCString()}`, '-o', 'ius-after.bin', '-w', '%{http_code}', url()]);
    expect(after.stdout).toBe('200');
  });

  it.each([
    ['0-9,100-109', [[0, 9], [100, 109]]],
    // Parts that span chunks, a suffix, and not in ascending order.
    [`50000-70000,0-9,-5`, [[50_000, 70_000], [0, 9], [SIZE - 5, SIZE - 1]]],
  ])('curl -r %s → 206 multipart/byteranges with exactly those bytes', async (range, expected) => {
    const result = await curl(['-r', range, '-D', '-', '-o', 'multi.bin', url()]);
    expect(result.code).toBe(0);
    const { status, headers } = parseHeaders(result.stdout);
    expect(status).toBe(206);
    expect(headers.get('content-range')).toBeUndefined();
    const body = await readFile(join(work, 'multi.bin'));
    expect(headers.get('content-length')).toBe(String(body.length));
    const parts = parseMultipart(headers.get('content-type')!, body);
    expect(parts.map((part) => part.headers.get('content-range'))).toEqual(expected.map(([first, last]) => `bytes ${first}-${last}/${SIZE}`));
    expect(parts.map((part) => part.headers.get('content-type'))).toEqual(expected.map(() => 'application/octet-stream'));
    for (const [index, [first, last]] of expected.entries()) expect(parts[index]!.body.equals(data.subarray(first, last! + 1)), `part ${index}`).toBe(true);
  });

  it('curl -r 0-9,10-19 (adjacent) → one 206 with 20 bytes', async () => {
    const result = await curl(['-r', '0-9,10-19', '-D', '-', '-o', 'adjacent.bin', url()]);
    const { status, headers } = parseHeaders(result.stdout);
    expect(status).toBe(206);
    expect(headers.get('content-range')).toBe(`bytes 0-19/${SIZE}`);
    expect(headers.get('content-type')).toBe('application/octet-stream');
    expect((await readFile(join(work, 'adjacent.bin'))).equals(data.subarray(0, 20))).toBe(true);
  });

  it('If-Match with the ETag and several ranges → multipart; a wrong one → 412 before any range', async () => {
    const etag = parseHeaders((await curl(['-I', url()])).stdout).headers.get('etag')!;
    const kept = await curl(['-r', '0-9,100-109', '-H', `If-Match: ${etag}`, '-o', 'kept.bin', '-w', '%{http_code} %{content_type}', url()]);
    expect(kept.stdout).toMatch(/^206 multipart\/byteranges; boundary=/);
    const refused = await curl(['-r', '0-9,100-109', '-H', 'If-Match: "old"', '-o', 'refused.txt', '-w', '%{http_code}', url()]);
    expect(refused.stdout).toBe('412');
  });
});
