import { execFile } from 'node:child_process';
import { readFile, readdir, utimes } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { ListEntry } from '@httpgw/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, rawRequest, startCluster, writeFiles, type Cluster } from './support/cluster.js';

// Directory listings: the union of what the registered servers hold, as HTML and JSON, followed
// by curl and mirrored by wget -r; and what happens when servers are missing, lossy or silent.

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

interface ListingJson {
  path: string;
  incomplete: boolean;
  entries: ListEntry[];
}

async function listingJson(cluster: Cluster, path: string): Promise<ListingJson> {
  const response = await fetch(`${cluster.url(path)}/`.replace(/\/\/$/, '/'), { headers: { Accept: 'application/json' } });
  expect(response.status).toBe(200);
  return (await response.json()) as ListingJson;
}

async function filesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) found.push(relative(root, join(entry.parentPath, entry.name)));
  }
  return found.sort();
}

const OLD = new Date('2025-01-01T00:00:00Z');
const NEW = new Date('2026-06-01T12:00:00Z');
const WEIRD = 'weird <b>&"\'#%.txt';
const CAFE = 'photos 2026/café #1 ☕.txt';

describe('listings across two servers with different contents', () => {
  let cluster: Cluster;
  let scratch: string;
  const cleanups: Array<() => Promise<void>> = [];
  /** What a client should see: the union, `shared.txt` in its newest version. */
  const expected = new Map<string, Buffer>();

  beforeAll(async () => {
    const a = await makeTempDir();
    const b = await makeTempDir();
    const work = await makeTempDir('httpgw-listing-');
    cleanups.push(a.remove, b.remove, work.remove);
    scratch = work.path;
    const onA = await writeFiles(a.path, {
      'docs/readme.txt': 'read me\n',
      [CAFE]: 'coffee\n',
      [WEIRD]: 'weird\n',
      'only-a.txt': 'a\n',
      'shared.txt': 'old!\n',
      'same.txt': 'same on both\n',
      'nested/deep/x.txt': 'deep\n',
      'empty dir/.keep': '',
      '.hidden': 'secret\n',
    });
    const onB = await writeFiles(b.path, {
      'only-b/inner.txt': 'inner\n',
      'shared.txt': 'newer, longer\n',
      'same.txt': 'same on both\n',
    });
    await utimes(join(a.path, 'shared.txt'), OLD, OLD);
    await utimes(join(b.path, 'shared.txt'), NEW, NEW);
    await utimes(join(a.path, 'same.txt'), OLD, OLD);
    await utimes(join(b.path, 'same.txt'), OLD, OLD);
    for (const [path, data] of [...onA, ...onB]) if (!path.split('/').some((segment) => segment.startsWith('.'))) expected.set(path, data);
    expected.set('shared.txt', onB.get('shared.txt')!);
    cluster = await startCluster({ root: a.path, servers: 1 });
    cleanups.unshift(() => cluster.stop());
    await cluster.addServer({ root: b.path });
  });

  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('GET / is an HTML index of the union: folders first, escaped names, sizes, dates', async () => {
    const result = await run('curl', ['--silent', '-D', 'headers.txt', cluster.url('')], scratch);
    const html = result.stdout;
    expect(await readFile(join(scratch, 'headers.txt'), 'utf8')).toMatch(/^HTTP\/1.1 200 OK\r\n(.*\r\n)*Content-Type: text\/html; charset=utf-8\r\n/i);
    const names = [...html.matchAll(/<a href="([^"]*)">([^<]*)<\/a>/g)].map((match) => match[2]);
    expect(names).toEqual(['docs/', 'empty dir/', 'nested/', 'only-b/', 'photos 2026/', 'only-a.txt', 'same.txt', 'shared.txt', 'weird &lt;b&gt;&amp;&quot;&#39;#%.txt']);
    expect(html).toContain('<a href="./weird%20%3Cb%3E%26%22\'%23%25.txt">'.replace("'", '&#39;'));
    expect(html).toContain(`<td class="size" title="14 bytes">14 B</td><td><time datetime="${NEW.toISOString()}">2026-06-01 12:00</time>`);
    expect(html).not.toContain('hidden');
    expect(html).not.toContain('Some file servers did not answer');
  });

  it('the same listing as JSON, with Accept or ?format=json; one entry per name, the newest version', async () => {
    const json = await listingJson(cluster, '');
    expect(json.path).toBe('/');
    expect(json.incomplete).toBe(false);
    expect(json.entries.map((entry) => `${entry.kind[0]} ${entry.name}`)).toEqual([
      'd docs',
      'd empty dir',
      'd nested',
      'd only-b',
      'd photos 2026',
      'f only-a.txt',
      'f same.txt',
      'f shared.txt',
      `f ${WEIRD}`,
    ]);
    expect(json.entries.find((entry) => entry.name === 'shared.txt')).toMatchObject({ size: 14, mtimeMs: NEW.getTime() });
    const byQuery = await run('curl', ['--silent', `${cluster.url('photos 2026')}/?format=json`], scratch);
    expect((JSON.parse(byQuery.stdout) as ListingJson).entries).toMatchObject([{ name: 'café #1 ☕.txt', kind: 'file', size: 7 }]);
  });

  it('/dir redirects to /dir/ and curl -L follows it; an empty folder lists empty', async () => {
    const redirect = await rawRequest(cluster.gateway.httpAddress.port, '/photos%202026');
    expect([redirect.status, redirect.headers.location]).toEqual([301, '/photos%202026/']);
    const followed = await run('curl', ['--silent', '-L', cluster.url('photos 2026')], scratch);
    expect(followed.stdout).toContain('<title>Index of /photos 2026/</title>');
    expect(followed.stdout).toContain('<a href="./caf%C3%A9%20%231%20%E2%98%95.txt">café #1 ☕.txt</a>');
    expect((await listingJson(cluster, 'empty dir')).entries).toEqual([]);
  });

  it('every link works: wget -r mirrors the union byte for byte (spaces, #, %, Unicode)', async () => {
    const mirror = join(scratch, 'mirror');
    const result = await run('wget', ['-r', '-np', '-nH', '-nv', '-e', 'robots=off', '--restrict-file-names=nocontrol', '-P', mirror, `${cluster.url('')}`], scratch, 20_000);
    expect(result.code, result.stderr).toBe(0);
    const mirrored = (await filesUnder(mirror)).filter((path) => !path.endsWith('index.html'));
    expect(mirrored).toEqual([...expected.keys()].filter((path) => !path.endsWith('.keep')).sort());
    for (const path of mirrored) expect((await readFile(join(mirror, path))).equals(expected.get(path)!), path).toBe(true);
  });

  it('HEAD of a listing: 200 with its length, no body', async () => {
    const head = await rawRequest(cluster.gateway.httpAddress.port, '/docs/', 'HEAD');
    expect(head.status).toBe(200);
    expect(Number(head.headers['content-length'])).toBeGreaterThan(100);
    expect(head.body).toBe('');
  });

  it('404 when no server has the directory, or when it is a file', async () => {
    for (const target of ['/nowhere/', '/only-a.txt/', '/.hidden/']) {
      const answer = await rawRequest(cluster.gateway.httpAddress.port, target);
      expect(answer.status, target).toBe(404);
      expect(answer.body).toMatch(/^404 [^\n]+\n$/);
    }
  });
});

describe('listings under loss and with a silent server', () => {
  let cluster: Cluster;
  let remove: () => Promise<void>;
  const COUNT = 3_000;

  beforeAll(async () => {
    const root = await makeTempDir();
    remove = root.remove;
    await writeFiles(root.path, Object.fromEntries(Array.from({ length: COUNT }, (_, i) => [`dir/file-${String(i).padStart(5, '0')}.txt`, `${i}`])));
    // metaCacheMs 0: every listing asks the servers again, none is served from the last test's.
    cluster = await startCluster({ root: root.path, servers: 2, relay: { seed: 7 }, gateway: { metaCacheMs: 0 } });
    // One request each way first: the servers' RTT estimates come from answers.
    expect((await fetch(cluster.url('dir/file-00000.txt'))).status).toBe(200);
  });

  afterAll(async () => {
    await cluster?.stop();
    await remove?.();
  });

  it('pages lost on the way back are asked again: the listing is complete', async () => {
    cluster.relay!.setImpairment('fromTarget', { loss: 0.15 });
    try {
      const json = await listingJson(cluster, 'dir');
      expect(json.incomplete).toBe(false);
      expect(json.entries.length).toBe(COUNT);
      expect(cluster.relay!.stats.fromTarget.dropped).toBeGreaterThan(0);
    } finally {
      cluster.relay!.setImpairment('fromTarget', {});
    }
  });

  it('a server that stops answering: the others still list, marked incomplete', async () => {
    cluster.relay!.silence(cluster.servers[0]!.address.port);
    try {
      const started = performance.now();
      // Asked at once, the HTML and the JSON share one fetch from the servers.
      const [json, html] = await Promise.all([listingJson(cluster, 'dir'), fetch(`${cluster.url('dir')}/`).then((response) => response.text())]);
      expect(json.incomplete).toBe(true);
      expect(json.entries.length).toBe(COUNT);
      expect(html).toContain('Some file servers did not answer');
      // The silent server costs its retries (RTO doubling per attempt), not a hang.
      expect(performance.now() - started).toBeLessThan(8_000);
    } finally {
      cluster.relay!.silence(cluster.servers[0]!.address.port, false);
    }
  });
});

describe('listings without servers', () => {
  it('503, as text and as JSON', async () => {
    const root = await makeTempDir();
    const cluster = await startCluster({ root: root.path, servers: 0 });
    try {
      const text = await rawRequest(cluster.gateway.httpAddress.port, '/');
      expect([text.status, text.body]).toEqual([503, '503 no file server is registered\n']);
      const json = await fetch(cluster.url('dir/'), { headers: { Accept: 'application/json' } });
      expect(json.status).toBe(503);
      expect(await json.json()).toEqual({ status: 503, code: 'GW_ERR_NO_SERVERS', message: 'no file server is registered' });
    } finally {
      await cluster.stop();
      await root.remove();
    }
  });
});
