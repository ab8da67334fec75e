import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileStore } from '@httpgw/file-server';
import { MAX_DATAGRAM_BYTES, MAX_LIST_ENTRIES } from '@httpgw/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, startCluster, type Cluster } from './support/cluster.js';

// A directory of 20,000 files: each file server answers every page in about the time of one page,
// and the gateway pages through three servers at once and merges them.

const COUNT = 20_000;
const name = (i: number) => `file ${String(i).padStart(5, '0')} #.txt`;

describe(`a directory of ${COUNT} files`, () => {
  let root: string;
  let cluster: Cluster;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    const dir = await makeTempDir();
    cleanups.push(dir.remove);
    root = dir.path;
    await mkdir(join(root, 'many'));
    for (let start = 0; start < COUNT; start += 500) {
      await Promise.all(Array.from({ length: Math.min(500, COUNT - start) }, (_, k) => writeFile(join(root, 'many', name(start + k)), String(start + k))));
    }
    cluster = await startCluster({ root, servers: 3 });
    cleanups.unshift(() => cluster.stop());
  });

  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('the file store pages through it quickly, every page within one datagram and MAX_LIST_ENTRIES', async () => {
    const store = new FileStore({ root });
    await store.init();
    try {
      const started = performance.now();
      let slowestPageMs = 0;
      let cursor = 0;
      const names: string[] = [];
      do {
        const pageStarted = performance.now();
        const page = await store.list('many', cursor, MAX_DATAGRAM_BYTES - 1_024);
        slowestPageMs = Math.max(slowestPageMs, performance.now() - pageStarted);
        expect(page.entries.length).toBeLessThanOrEqual(MAX_LIST_ENTRIES);
        names.push(...page.entries.map((entry) => entry.name));
        cursor = page.next;
      } while (cursor !== -1);
      expect(names).toEqual(Array.from({ length: COUNT }, (_, i) => name(i)));
      // Generous bounds for a loaded CI machine; a sequential stat of every name took > 1 s per page.
      expect(performance.now() - started).toBeLessThan(8_000);
      expect(slowestPageMs).toBeLessThan(1_000);
    } finally {
      await store.close();
    }
  });

  it('the gateway lists it as JSON and HTML, complete, in a few seconds', async () => {
    const sentBefore = cluster.gateway.stats().requests.sent;
    const started = performance.now();
    const response = await fetch(`${cluster.url('many')}/?format=json`);
    expect(response.status).toBe(200);
    const json = (await response.json()) as { incomplete: boolean; entries: Array<{ name: string; size: number }> };
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(json.incomplete).toBe(false);
    expect(json.entries.length).toBe(COUNT);
    expect(json.entries[12_345]).toMatchObject({ name: name(12_345), size: 5 });
    // ~40 pages from each of three servers, plus the odd retransmission.
    const pages = Math.ceil(COUNT / MAX_LIST_ENTRIES) * 3;
    expect(cluster.gateway.stats().requests.sent - sentBefore).toBeLessThan(pages * 2);

    const html = await new Promise<string>((resolve, reject) => {
      execFile('curl', ['--silent', '--fail', `${cluster.url('many')}/`], { timeout: 15_000, maxBuffer: 64 << 20, encoding: 'utf8' }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    });
    expect(html.match(/<tr><td><a href="\.\/file%20/g)).toHaveLength(COUNT);
    expect(html).toContain(`<p>${COUNT} entries</p>`);
  });
});
