import { describe, expect, it } from 'vitest';
import { rawRequest, sha256 } from './support/cluster.js';
import { clusterForTest, useCluster, useRoot } from './support/fixtures.js';

const CHUNK = 4096;

describe('downloads through a gateway and three file servers', () => {
  const fixture = useCluster(
    {
      'empty.bin': 0,
      'one.bin': 1,
      'chunk-minus-one.bin': CHUNK - 1,
      'chunk-exact.bin': CHUNK,
      'chunk-plus-one.bin': CHUNK + 1,
      'three-chunks.bin': 3 * CHUNK,
      'several-mb.bin': 5 * 1024 * 1024 + 17,
      'nested/deeper/file.txt': 'nested content\n',
      'ünïcødé 文件 #1.txt': 'unicode name\n',
      'with space & percent%.txt': 'odd characters\n',
      '.secret': 'hidden\n',
    },
    // The transfer path is the subject: no cache tier (test/cache.test.ts has the cache).
    { gateway: { chunkSize: CHUNK, cache: { memoryBytes: 0 } } },
  );

  it.each(['empty.bin', 'one.bin', 'chunk-minus-one.bin', 'chunk-exact.bin', 'chunk-plus-one.bin', 'three-chunks.bin', 'several-mb.bin'])(
    'serves %s byte for byte with Content-Length',
    async (name) => {
      const response = await fetch(fixture.cluster.url(name));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-length')).toBe(String(fixture.files.get(name)!.length));
      const body = Buffer.from(await response.arrayBuffer());
      expect(sha256(body)).toBe(sha256(fixture.files.get(name)!));
    },
  );

  it('serves nested paths and names with Unicode, spaces, # and %', async () => {
    for (const name of ['nested/deeper/file.txt', 'ünïcødé 文件 #1.txt', 'with space & percent%.txt']) {
      const response = await fetch(fixture.cluster.url(name));
      expect(response.status, name).toBe(200);
      expect(await response.text()).toBe(fixture.files.get(name)!.toString());
    }
  });

  it('spreads the chunks of a large file over every server', async () => {
    const before = fixture.cluster.gateway.stats().servers.map((server) => server.answers);
    await (await fetch(fixture.cluster.url('several-mb.bin'))).arrayBuffer();
    const after = fixture.cluster.gateway.stats().servers.map((server) => server.answers);
    // Every server takes part. How much each takes follows the delivery rates the gateway measures
    // (see "Unequal servers" in the protocol spec); in one process on a busy machine these vary widely
    // between equal servers (measured 45..1,128 answers of 640 chunks), so no even split is asserted.
    expect(after.every((answers, i) => answers - before[i]! > 10)).toBe(true);
  });

  it('answers 404 for a missing file and for hidden files', async () => {
    expect((await fetch(fixture.cluster.url('missing.bin'))).status).toBe(404);
    expect((await fetch(fixture.cluster.url('.secret'))).status).toBe(404);
  });

  it('refuses traversal and malformed paths with 400', async () => {
    for (const path of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/a/%2E%2E/%2e%2e/etc/passwd', '/%E0%A4%A', '/a%00b', '/a%5cb', '/..%2f..%2fetc/passwd']) {
      const response = await rawRequest(fixture.cluster.gateway.httpAddress.port, path);
      expect(response.status, path).toBe(400);
      expect(response.body).not.toMatch(/\bat .*\.ts/);
    }
  });

  it('runs ten concurrent downloads from one client, each intact', async () => {
    const name = 'several-mb.bin';
    const bodies = await Promise.all(Array.from({ length: 10 }, async () => Buffer.from(await (await fetch(fixture.cluster.url(name))).arrayBuffer())));
    for (const body of bodies) expect(sha256(body)).toBe(sha256(fixture.files.get(name)!));
  });

  it('answers 405 with Allow for other methods', async () => {
    const response = await fetch(fixture.cluster.url('one.bin'), { method: 'POST' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toContain('GET');
  });
});

describe('a gateway without servers', () => {
  const root = useRoot();

  it('answers 503', async () => {
    const cluster = await clusterForTest({ root: root.path, servers: 0 });
    const response = await fetch(cluster.url('anything.bin'));
    expect(response.status).toBe(503);
  });
});
