import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createFileServer, type FileServer } from '@httpgw/file-server';
import { createGateway, type Gateway } from '@httpgw/gateway';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, writeFiles } from './support/cluster.js';
import { curlGet } from './support/curl-get.js';
import { until } from './support/wait.js';

// A pool of a few hundred file servers (library instances, in this process) behind one gateway:
// once their catalogues are in, a lookup asks only holders and a 404 asks nobody. Every request
// goes through the real curl; what each server was asked is read from its datagram counters.

const SERVERS = 240;
const RARE_HOLDERS = 3;
const LOOPBACK = '127.0.0.1';

let gateway: Gateway;
const servers: FileServer[] = [];
const roots: Array<{ path: string; remove: () => Promise<void> }> = [];
let base: string;

beforeAll(async () => {
  const common = await makeTempDir('httpgw-pools-common-');
  const rare = await makeTempDir('httpgw-pools-rare-');
  roots.push(common, rare);
  await writeFiles(common.path, { 'common.txt': 'held by everyone\n', 'docs/readme.txt': 'read me\n' });
  await writeFiles(rare.path, { 'common.txt': 'held by everyone\n', 'docs/readme.txt': 'read me\n', 'rare.txt': 'held by three\n' });
    gateway = await createGateway({ address: LOOPBACK, httpPort: 0, udpPort: 0, accessLog: false, pool: { heartbeatMs: 30_000 } });
  const port = gateway.udpAddress.port;
  for (let i = 0; i < SERVERS; i += 40) {
    const batch = Array.from({ length: Math.min(40, SERVERS - i) }, (_, j) =>
      createFileServer({ gateways: [{ host: LOOPBACK, port }], root: i + j < RARE_HOLDERS ? rare.path : common.path, bindAddress: LOOPBACK, socketBufferBytes: 256 * 1024 }),
    );
    servers.push(...(await Promise.all(batch)));
  }
  await gateway.waitForServers(SERVERS);
  // Two distinct trees: two catalogues, each fetched once, shared by every server that names it.
  await until(() => gateway.stats().index.indexed === SERVERS, 10_000, 'every catalogue indexed');
  base = `http://${LOOPBACK}:${gateway.httpAddress.port}`;
}, 30_000);

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  await gateway?.stop();
  await Promise.all(roots.map((root) => root.remove()));
});

/**
 * Requests each server answered during `action`, as the gateway counts them (meta, chunk, list and
 * catalogue answers; heartbeats are not answers).
 */
async function answersDuring(action: () => Promise<void>): Promise<number[]> {
  const answers = () => {
    const byKey = new Map(gateway.stats().servers.map((server) => [server.key, server.answers]));
    return servers.map((server) => byKey.get(`${LOOPBACK}:${server.address.port}`) ?? 0);
  };
  const before = answers();
  await action();
  // Answers to asks still in flight when the response ended (late holders joining) count too.
  await new Promise((resolve) => setTimeout(resolve, 100));
  return answers().map((count, i) => count - before[i]!);
}

describe('a pool of a few hundred servers', () => {
  it('fetched two catalogues for the two trees, once each', () => {
    expect(gateway.stats().index).toMatchObject({ indexed: SERVERS, catalogues: 2, fetches: 2, fetchFailures: 0 });
  });

  it('asks only the holders of a file', async () => {
    const asked = await answersDuring(async () => {
      const got = await curlGet(`${base}/rare.txt`);
      expect([got.status, got.body.toString()]).toEqual([200, 'held by three\n']);
    });
    expect(asked.slice(0, RARE_HOLDERS).every((count) => count > 0)).toBe(true);
    expect(asked.slice(RARE_HOLDERS).every((count) => count === 0)).toBe(true);
  });

  it('asks a few of the many holders of a common file', async () => {
    const asked = await answersDuring(async () => {
      const got = await curlGet(`${base}/docs/readme.txt`);
      expect([got.status, got.body.toString()]).toEqual([200, 'read me\n']);
    });
    const servedBy = asked.filter((count) => count > 0).length;
    expect(servedBy).toBeGreaterThan(0);
    expect(servedBy).toBeLessThanOrEqual(8);
  });

  it('answers a 404 without asking anyone, and lists the root from the catalogues', async () => {
    const asked = await answersDuring(async () => {
      expect((await curlGet(`${base}/nowhere.txt`)).status).toBe(404);
      const listing = await curlGet(`${base}/`);
      expect(listing.status).toBe(200);
      for (const name of ['common.txt', 'rare.txt', 'docs/']) expect(listing.body.toString()).toContain(name);
    });
    expect(asked.reduce((sum, count) => sum + count, 0)).toBe(0);
  });

  it('finds a file added on one server after its next walk, without asking the others', async () => {
    const fresh = await makeTempDir('httpgw-pools-fresh-');
    roots.push(fresh);
    await writeFiles(fresh.path, { 'common.txt': 'held by everyone\n' });
    const late = await createFileServer({ gateways: [{ host: LOOPBACK, port: gateway.udpAddress.port }], root: fresh.path, bindAddress: LOOPBACK, catalogRescanMs: 200 });
    servers.push(late);
    await until(() => gateway.stats().index.indexed === SERVERS + 1, 10_000, 'the late server indexed');
    await writeFile(join(fresh.path, 'new.txt'), 'new\n');
    // Its next walk (200 ms here) tells the gateway at once; the index fetches its catalogue.
    await until(() => gateway.stats().index.fetches === 4 && gateway.stats().index.indexed === SERVERS + 1, 10_000, 'the new catalogue');
    const asked = await answersDuring(async () => {
      const got = await curlGet(`${base}/new.txt`);
      expect([got.status, got.body.toString()]).toEqual([200, 'new\n']);
    });
    expect(asked.slice(0, -1).every((count) => count === 0)).toBe(true);
  });
});
