import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MTU_SAFE_CHUNK_SIZE, MTU_SAFE_DATAGRAM_BYTES, keyFromSecret } from '@httpgw/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sha256, startCluster, type Cluster } from './support/cluster.js';
import { curlGet } from './support/curl-get.js';

// A path that drops IP fragments: the relay between the file servers and the gateway (its target;
// toTarget is the servers' answers, fromTarget the gateway's requests) drops every
// datagram whose UDP payload is above 1,472 bytes (a 1,500-byte MTU over IPv4), both ways. With
// MTU-safe chunks the gateway names its 1,452-byte limit in every list request, so every
// user-visible behaviour works through it, with and without a shared secret, and nothing is dropped.

const PATH_MTU_PAYLOAD = 1_472;
const FILES = 10_000;
const fileName = (i: number) => `file-${String(i).padStart(5, '0')}.txt`;

let root: string;
let big: Buffer;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const dir = await makeTempDir();
  cleanups.push(dir.remove);
  root = dir.path;
  big = randomBytes(3 * 1024 * 1024 + 777);
  await writeFile(join(root, 'big.bin'), big);
  await mkdir(join(root, 'many'));
  for (let start = 0; start < FILES; start += 500) {
    await Promise.all(Array.from({ length: Math.min(500, FILES - start) }, (_, k) => writeFile(join(root, 'many', fileName(start + k)), String(start + k))));
  }
  await mkdir(join(root, 'small'));
  await Promise.all(Array.from({ length: 300 }, (_, i) => writeFile(join(root, 'small', `name-long-enough-to-fill-a-page-${i}.txt`), 'x')));
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const dropAbove = { maxDatagramBytes: PATH_MTU_PAYLOAD };

describe.each([
  ['without a shared secret', undefined],
  ['with a shared secret', keyFromSecret(randomBytes(32))],
] as const)('MTU-safe through a path that drops datagrams above 1,472 bytes, %s', (_label, key) => {
  let cluster: Cluster;

  beforeAll(async () => {
    // Registration goes through the relay too: startCluster waits until all three are admitted.
    cluster = await startCluster({
      root,
      servers: 3,
      gateway: { chunkSize: MTU_SAFE_CHUNK_SIZE, ...(key ? { key } : {}) },
      ...(key ? { fileServer: { key } } : {}),
      relay: { toTarget: dropAbove, fromTarget: dropAbove },
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('registers every server, and downloads a file whole with curl', async () => {
    expect(cluster.gateway.pool.size).toBe(3);
    const result = await curlGet(cluster.url('big.bin'));
    expect(result).toMatchObject({ status: 200, exitCode: 0 });
    expect(sha256(result.body)).toBe(sha256(big));
  });

  it('serves a byte range with curl', async () => {
    const result = await curlGet(cluster.url('big.bin'), ['--range', '1000-250000']);
    expect(result.status).toBe(206);
    expect(result.body.equals(big.subarray(1000, 250_001))).toBe(true);
  });

  it(`lists a directory of ${FILES} files, complete, in pages that each fit the path`, async () => {
    const result = await curlGet(`${cluster.url('many')}/?format=json`, [], 60_000);
    expect(result.status).toBe(200);
    const listing = JSON.parse(result.body.toString()) as { incomplete: boolean; entries: Array<{ name: string }> };
    expect(listing.incomplete).toBe(false);
    expect(listing.entries.map((entry) => entry.name)).toEqual(Array.from({ length: FILES }, (_, i) => fileName(i)));
    const html = await curlGet(`${cluster.url('many')}/`);
    expect(html.status).toBe(200);
    expect(html.body.toString()).toContain(`<p>${FILES} entries</p>`);
  }, 90_000);

  it('answers a missing file with 404', async () => {
    const result = await curlGet(cluster.url('no/such/file.bin'));
    expect(result.status).toBe(404);
  });

  it('sent not one datagram the path dropped, and none above the limit the gateway named', () => {
    const { toTarget, fromTarget } = cluster.relay!.stats;
    expect(toTarget.oversize + fromTarget.oversize).toBe(0);
    expect(fromTarget.largestForwarded).toBeLessThanOrEqual(MTU_SAFE_DATAGRAM_BYTES);
    expect(toTarget.largestForwarded).toBeLessThanOrEqual(MTU_SAFE_DATAGRAM_BYTES);
    // Towards the gateway: hundreds of listing pages from each server, and thousands of chunks.
    expect(toTarget.forwarded).toBeGreaterThan(3 * 400 + big.length / MTU_SAFE_CHUNK_SIZE);
    expect(cluster.gateway.stats().udp.refused).toBe(0);
  });
});

describe('a gateway that names no limit (as before the limit existed) through the same path', () => {
  it('loses the oversize listing pages: what the limit is for', async () => {
    const cluster = await startCluster({
      root,
      servers: 1,
      gateway: { chunkSize: MTU_SAFE_CHUNK_SIZE, maxDatagramSize: 65_507 },
      relay: { toTarget: dropAbove, fromTarget: dropAbove },
    });
    try {
      // Chunks are MTU-safe and still pass; the one page of 300 long names does not.
      const file = await curlGet(cluster.url('big.bin'), ['--range', '0-99999']);
      expect(file.status).toBe(206);
      const listing = await curlGet(`${cluster.url('small')}/?format=json`, [], 30_000);
      expect(listing.status).not.toBe(200);
      expect(cluster.relay!.stats.toTarget.oversize).toBeGreaterThan(0);
    } finally {
      await cluster.stop();
    }
  }, 40_000);
});
