import { describe, expect, it } from 'vitest';
import { sha256, type Cluster } from './support/cluster.js';
import { download } from './support/faulty-harness.js';
import { clusterForTest, useRoot } from './support/fixtures.js';
import type { ImpairmentInit } from './support/udp-relay.js';

// Multi-MB downloads through the fault-injecting relay (between the three file servers and the
// gateway), compared by SHA-256, each in bounded time. The relay is clean while the cluster
// registers, then impaired for the download; its seed makes each run hit the same datagrams.
// The read-ahead is 1 MiB, so when the client holds 1 MiB the gateway has most of the file still to fetch.

const CHUNK = 8 * 1024;
const FILE = 'big.bin';
const SIZE = 4 * 1024 * 1024 + 17;
const LIMIT_MS = 8_000;

const root = useRoot({ [FILE]: SIZE });

async function impairedCluster(impairment: ImpairmentInit, seed = 7, md5Worker = true): Promise<Cluster> {
  const cluster = await clusterForTest({ root: root.path, gateway: { chunkSize: CHUNK, readAheadBytes: 1 << 20, md5Worker, cache: { memoryBytes: 0 } }, relay: { seed } });
  cluster.relay!.setImpairment('toTarget', impairment);
  cluster.relay!.setImpairment('fromTarget', impairment);
  return cluster;
}

async function downloadIntact(c: Cluster, onProgress?: (bytes: number) => void) {
  const result = await download(c.url(FILE), onProgress);
  expect(result.status).toBe(200);
  expect(result.error).toBeUndefined();
  expect(result.body.length).toBe(SIZE);
  expect(sha256(result.body)).toBe(sha256(root.files.get(FILE)!));
  expect(result.ms).toBeLessThan(LIMIT_MS);
  return result;
}

describe('downloads over a lossy path (loss in bursts, both directions)', () => {
  it.each([
    ['2%', 0.02],
    ['10%', 0.1],
    ['30%', 0.3],
  ])('%s loss: intact, the losses asked again', async (_percent, loss) => {
    const c = await impairedCluster({ loss, lossBurst: 3 });
    await downloadIntact(c);
    const stats = c.gateway.stats();
    expect(c.relay!.stats.toTarget.dropped + c.relay!.stats.fromTarget.dropped).toBeGreaterThan(0);
    expect(stats.transfers.retransmissions).toBeGreaterThan(0);
    expect(stats.requests.timeouts + stats.requests.reordered).toBeGreaterThan(0);
    expect(stats.transfers).toMatchObject({ completed: 1, failed: 0 });
    // Loss is no reason to drop a server for good.
    expect(stats.pool.dropped).toBe(0);
  });
});

describe('downloads over a path that damages datagrams', () => {
  it.each([
    { where: 'on the worker thread', md5Worker: true },
    { where: 'on the main thread', md5Worker: false },
  ])('2% corruption: damaged chunks are caught (MD5 $where, frame, shape) and asked again', async ({ md5Worker }) => {
    const c = await impairedCluster({ corrupt: 0.02 }, 7, md5Worker);
    await downloadIntact(c);
    const stats = c.gateway.stats();
    expect(c.relay!.stats.toTarget.corrupted).toBeGreaterThan(0);
    expect(stats.transfers.badChunks).toBeGreaterThan(0);
    expect(stats.transfers.retransmissions).toBeGreaterThan(0);
    // A few percent of bad chunks is the path's fault: no server is dropped for it.
    expect(stats.pool.dropped).toBe(0);
  });

  it('10% duplication: the copies are discarded as late answers', async () => {
    const c = await impairedCluster({ duplicate: 0.1 });
    await downloadIntact(c);
    const stats = c.gateway.stats();
    expect(c.relay!.stats.toTarget.duplicated).toBeGreaterThan(0);
    expect(stats.requests.late).toBeGreaterThan(0);
    expect(stats.transfers.badChunks).toBe(0);
  });

  it('heavy reordering: chunks are delivered in order; overtaken requests count as lost and are asked again', async () => {
    const c = await impairedCluster({ reorder: 0.3, reorderDelayMs: 5, jitterMs: 2 });
    await downloadIntact(c);
    const stats = c.gateway.stats();
    expect(c.relay!.stats.toTarget.reordered).toBeGreaterThan(0);
    expect(stats.requests.reordered).toBeGreaterThan(0);
  });
});

describe('a blackout', () => {
  it('2 s of total darkness mid-transfer: the download waits it out and completes', async () => {
    const c = await impairedCluster({});
    let struck = false;
    const result = await downloadIntact(c, (bytes) => {
      if (!struck && bytes >= 1 << 20) {
        struck = true;
        c.relay!.blackout(2_000);
      }
    });
    expect(struck).toBe(true);
    expect(result.ms).toBeGreaterThan(2_000);
    const stats = c.gateway.stats();
    expect(c.relay!.stats.toTarget.blackholed + c.relay!.stats.fromTarget.blackholed).toBeGreaterThan(0);
    expect(stats.requests.timeouts).toBeGreaterThan(0);
    expect(stats.transfers.retransmissions).toBeGreaterThan(0);
    // Every server is (still or again) in the pool afterwards.
    await c.gateway.waitForServers(3);
  });
});
