import type { CatalogEntry, Packet } from '@httpgw/protocol';
import { silentLogger } from '@httpgw/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectoryLister } from '../src/lookup/directory-lister.js';
import { FileLookup, LOOKUP_HOLDERS, chooseHolders } from '../src/lookup/file-lookup.js';
import { HolderIndex } from '../src/lookup/holder-index.js';
import { RequestTracker } from '../src/udp/request-tracker.js';
import { ServerPool, type PoolServer } from '../src/pool/server-pool.js';

// The holder index over a real pool and tracker; the servers are played by `files` (what each
// holds) and answer every request at once. Counts every request each server is sent, by type.

type Files = Map<string, { kind: 'f' | 'd'; version?: string }>;

interface Harness {
  pool: ServerPool;
  tracker: RequestTracker;
  index: HolderIndex;
  servers: PoolServer[];
  /** What each server holds, by key; a server whose `generation` is undefined keeps no catalogue. */
  holdings: Map<string, { files: Files; generation: number; complete: boolean; pageSize: number; delayMs?: number; silent?: boolean }>;
  sent: Map<string, Packet[]>;
  count(type: Packet['type'], server?: PoolServer): number;
}

let harness: Harness | undefined;
afterEach(() => {
  harness?.index.close();
  harness?.tracker.close();
  harness?.pool.close();
  harness = undefined;
});

function catalogueOf(files: Files): CatalogEntry[] {
  return [...files.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, { kind }]) => [path, kind, kind === 'f' ? 10 : 0, 1_000]);
}

function start(serverCount: number, init: { retryMs?: number; activeFrom?: number } = {}): Harness {
  const pool = new ServerPool({ heartbeatMs: 3_600_000, maxServers: 100_000, rtt: { initialRtoMs: 50, minRtoMs: 20, maxRtoMs: 100, granularityMs: 1 } });
  const holdings: Harness['holdings'] = new Map();
  const sent = new Map<string, Packet[]>();
  const answer = (server: PoolServer, request: Packet): Packet | undefined => {
    const held = holdings.get(server.key);
    if (!held || held.silent || !('requestId' in request)) return undefined;
    const { requestId } = request;
    if (request.type === 'catalog-request') {
      const entries = catalogueOf(held.files);
      const page = entries.slice(request.cursor, request.cursor + held.pageSize);
      const next = request.cursor + held.pageSize < entries.length ? request.cursor + held.pageSize : -1;
      return { type: 'catalog', requestId, generation: held.generation, entries: page, next, complete: held.complete };
    }
    if (request.type === 'meta-request') {
      const file = held.files.get(request.path);
      if (!file) return { type: 'meta', requestId, kind: 'none', size: 0, mtimeMs: 0, version: '' };
      return { type: 'meta', requestId, kind: file.kind === 'f' ? 'file' : 'directory', size: file.kind === 'f' ? 10 : 0, mtimeMs: 1_000, version: file.version ?? '' };
    }
    if (request.type === 'list-request') {
      if (request.path !== '' && held.files.get(request.path)?.kind !== 'd') return { type: 'error', requestId, code: 'not-found', message: 'no such directory' };
      const prefix = request.path === '' ? '' : `${request.path}/`;
      const entries = [...held.files.entries()]
        .filter(([path]) => path.startsWith(prefix) && !path.slice(prefix.length).includes('/'))
        .map(([path, { kind }]) => ({ name: path.slice(prefix.length), kind: kind === 'f' ? ('file' as const) : ('directory' as const), size: kind === 'f' ? 10 : 0, mtimeMs: 1_000 }));
      return { type: 'list', requestId, entries, next: -1 };
    }
    return undefined;
  };
  const tracker: RequestTracker = new RequestTracker({
    pool,
    transmit: (server, packet) => {
      sent.set(server.key, [...(sent.get(server.key) ?? []), packet]);
      const reply = answer(server, packet);
      if (reply && 'requestId' in reply) setTimeout(() => tracker.onAnswer(reply as Packet & { requestId: number }, server.key), packet.type === 'meta-request' ? (holdings.get(server.key)?.delayMs ?? 1) : 1);
    },
  });
  const index = new HolderIndex({ pool, tracker, logger: silentLogger, ...init });
  const servers = Array.from({ length: serverCount }, (_, i) => pool.admit('127.0.0.1', 10_000 + i, `s${i}`)!);
  const count = (type: Packet['type'], server?: PoolServer) =>
    [...sent.entries()].filter(([key]) => !server || key === server.key).reduce((sum, [, packets]) => sum + packets.filter((packet) => packet.type === type).length, 0);
  harness = { pool, tracker, index, servers, holdings, sent, count };
  return harness;
}

/** Gives `server` these files and announces their catalogue (generation derived from the files unless given). */
function hold(h: Harness, server: PoolServer, paths: Record<string, 'f' | 'd' | string>, opts: { complete?: boolean; pageSize?: number; generation?: number } = {}) {
  const files: Files = new Map(Object.entries(paths).map(([path, what]) => [path, what === 'd' ? { kind: 'd' } : { kind: 'f', version: what === 'f' ? 'v1' : what }]));
  const generation = opts.generation ?? 1 + [...JSON.stringify(catalogueOf(files))].reduce((sum, char) => (sum * 31 + char.charCodeAt(0)) % 2 ** 40, 7);
  h.holdings.set(server.key, { files, generation, complete: opts.complete ?? true, pageSize: opts.pageSize ?? 100 });
  h.index.noteGeneration(server, generation);
  return generation;
}

const settle = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));
const keys = (servers: PoolServer[]) => servers.map((server) => server.key).sort();

describe('HolderIndex', () => {
  it('names the holders of a path from the catalogues, and every server not indexed yet', async () => {
    const h = start(4);
    const [a, b, c, d] = h.servers as [PoolServer, PoolServer, PoolServer, PoolServer];
    hold(h, a, { x: 'f', dir: 'd', 'dir/y': 'f' });
    hold(h, b, { x: 'f' });
    hold(h, c, {}); // holds nothing; d names no catalogue at all
    await settle();
    expect(keys(h.index.plan('x').holders)).toEqual(keys([a, b]));
    expect(keys(h.index.plan('dir/y').holders)).toEqual(keys([a]));
    expect(h.index.plan('nothing').holders).toEqual([]);
    expect(keys(h.index.plan('x').unindexed)).toEqual(keys([d]));
    expect(h.index.complete).toBe(false);
    expect(h.index.stats()).toMatchObject({ indexed: 3, catalogues: 3 });
    h.pool.remove(d, 'left', 'test');
    expect(h.index.complete).toBe(true);
  });

  it('fetches one catalogue per generation, page by page, however many servers name it', async () => {
    const h = start(50);
    const tree = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`f${i}`, 'f']));
    for (const server of h.servers) hold(h, server, tree, { pageSize: 10 });
    await settle(60);
    expect(h.count('catalog-request')).toBe(3); // 25 entries in pages of 10, from one server
    expect(h.index.plan('f24').holders).toHaveLength(50);
    expect(h.index.stats()).toMatchObject({ indexed: 50, catalogues: 1, entries: 25, fetches: 1 });
  });

  it('only notes generations while the pool is below activeFrom, and fetches them once it grows to it', async () => {
    const h = start(3, { activeFrom: 4 });
    for (const server of h.servers) hold(h, server, { x: 'f' });
    await settle();
    expect(h.count('catalog-request')).toBe(0);
    expect(h.index.stats().indexed).toBe(0);
    h.pool.admit('127.0.0.1', 20_001, 'fourth');
    await settle();
    expect(h.count('catalog-request')).toBe(1);
    expect(h.index.plan('x').holders).toHaveLength(3);
  });

  it('draws a sample of the holders of a path held by many, each once', async () => {
    const h = start(200);
    for (const server of h.servers) hold(h, server, { x: 'f' });
    await settle(60);
    const { holders } = h.index.plan('x', 16);
    expect(new Set(holders).size).toBe(16);
    expect(h.index.plan('x').holders).toHaveLength(200);
    // After servers leave, the sample is drawn from those left.
    for (const server of h.servers.slice(0, 190)) h.pool.remove(server, 'left', 'test');
    expect(keys(h.index.plan('x', 16).holders)).toEqual(keys(h.servers.slice(190)));
  });

  it('forgets what a server held when it names a new generation, and drops catalogues nobody names', async () => {
    const h = start(2);
    const [a, b] = h.servers as [PoolServer, PoolServer];
    hold(h, a, { old: 'f' });
    hold(h, b, { other: 'f' });
    await settle();
    expect(keys(h.index.plan('old').holders)).toEqual(keys([a]));
    hold(h, a, { new: 'f' });
    // Until the new catalogue is in, a is unindexed: asked about everything, listed as holding nothing.
    expect(h.index.plan('old')).toEqual({ holders: [], unindexed: [a] });
    await settle();
    expect(keys(h.index.plan('new').holders)).toEqual(keys([a]));
    expect(h.index.plan('old').holders).toEqual([]);
    expect(h.index.stats()).toMatchObject({ catalogues: 2, entries: 2 });
  });

  it('keeps a server with an incomplete catalogue unindexed until its generation changes', async () => {
    const h = start(2, { retryMs: 100 });
    const [a, b] = h.servers as [PoolServer, PoolServer];
    const generation = hold(h, a, { x: 'f' }, { complete: false, generation: 77 });
    hold(h, b, { x: 'f' });
    await settle();
    expect(h.index.plan('x')).toEqual({ holders: [b], unindexed: [a] });
    expect(h.index.stats().fetchFailures).toBe(1);
    // Heartbeats naming the same generation do not fetch it again, even after retryMs.
    await settle(150);
    h.index.noteGeneration(a, generation);
    await settle();
    expect(h.count('catalog-request', a)).toBe(1);
    hold(h, a, { x: 'f' }, { generation: 78 });
    await settle();
    expect(h.count('catalog-request', a)).toBe(2);
    expect(keys(h.index.plan('x').holders)).toEqual(keys([a, b]));
  });

  it('asks a silent server for its catalogue again after retryMs', async () => {
    const h = start(32, { retryMs: 200 });
    const [a] = h.servers as [PoolServer];
    h.holdings.set(a.key, { files: new Map([['x', { kind: 'f' }]]), generation: 5, complete: true, pageSize: 100, silent: true });
    h.index.noteGeneration(a, 5);
    for (let waited = 0; h.index.stats().fetchFailures === 0 && waited < 5_000; waited += 20) await settle(20);
    const asked = h.count('catalog-request', a);
    h.holdings.get(a.key)!.silent = false;
    h.index.noteGeneration(a, 5); // a heartbeat before retryMs: nothing
    await settle();
    expect(h.count('catalog-request', a)).toBe(asked);
    await settle(200);
    h.index.noteGeneration(a, 5);
    await settle();
    expect(h.count('catalog-request', a)).toBe(asked + 1);
    expect(h.index.plan('x').holders).toEqual([a]);
  });

  it('fetches a shared catalogue from another server naming it when the first one is silent', async () => {
    const h = start(3);
    const [silent, b, c] = h.servers as [PoolServer, PoolServer, PoolServer];
    // It names generation 9 first, but answers nothing.
    h.holdings.set(silent.key, { files: new Map(), generation: 9, complete: true, pageSize: 100, silent: true });
    h.index.noteGeneration(silent, 9);
    hold(h, b, { x: 'f' }, { generation: 9 });
    hold(h, c, { x: 'f' }, { generation: 9 });
    for (let waited = 0; h.index.stats().indexed < 3 && waited < 5_000; waited += 20) await settle(20);
    expect(h.index.stats()).toMatchObject({ indexed: 3, fetches: 2 });
    expect(h.count('catalog-request', silent)).toBeGreaterThanOrEqual(1);
    expect(h.count('catalog-request', b) + h.count('catalog-request', c)).toBe(1);
    expect(keys(h.index.plan('x').holders)).toEqual(keys([silent, b, c]));
  });

  it('lists a directory from the distinct catalogues that have it', async () => {
    const h = start(3);
    const [a, b, c] = h.servers as [PoolServer, PoolServer, PoolServer];
    hold(h, a, { d: 'd', 'd/one': 'f', top: 'f' });
    hold(h, b, { d: 'd', 'd/two': 'f' });
    hold(h, c, { d: 'd', 'd/one': 'f', top: 'f' }); // a's catalogue again: listed once
    await settle();
    const { listings, unindexed } = h.index.listing('d');
    expect(unindexed).toEqual([]);
    expect(listings.map((list) => list.map((entry) => entry.name)).sort()).toEqual([['one'], ['two']]);
    expect(h.index.listing('').listings.flat().map((entry) => entry.name).sort()).toEqual(['d', 'd', 'top']);
  });
});

describe('lookups and listings of a large pool', () => {
  it('ask only a few holders of a file, nobody about a path no catalogue lists, and the unindexed servers always', async () => {
    const h = start(100);
    h.servers.forEach((server, i) => hold(h, server, i % 4 === 0 ? { common: 'f', [`own${i}`]: 'f' } : { [`own${i}`]: 'f' }));
    await settle(100);
    const lookup = new FileLookup({ pool: h.pool, tracker: h.tracker, logger: silentLogger, chunkSize: 1_024, index: h.index, cacheMs: 0 });
    h.sent.clear();
    const found = await lookup.lookup('common');
    expect(found).toMatchObject({ kind: 'file', file: { version: 'v1' } });
    expect(h.count('meta-request')).toBe(LOOKUP_HOLDERS);
    // Decided on the first two consistent answers; the other holders join as they answer.
    if (found.kind === 'file') {
      expect(found.file.servers.length).toBeGreaterThanOrEqual(2);
      await settle();
      expect(found.file.servers).toHaveLength(LOOKUP_HOLDERS);
    }
    h.sent.clear();
    expect(await lookup.lookup('own7')).toMatchObject({ kind: 'file', file: { servers: [h.servers[7]!.key] } });
    expect(h.count('meta-request')).toBe(1);
    h.sent.clear();
    const missing = await lookup.lookup('nowhere');
    expect(missing.kind).toBe('none');
    if (missing.kind === 'none') expect(missing.answered).toHaveLength(100);
    expect(h.count('meta-request')).toBe(0);
    // A server that registers now is asked until its catalogue is in.
    const late = h.pool.admit('127.0.0.1', 20_000, 'late')!;
    h.holdings.set(late.key, { files: new Map([['nowhere', { kind: 'f', version: 'v9' }]]), generation: 99, complete: true, pageSize: 100 });
    h.sent.clear();
    expect(await lookup.lookup('nowhere')).toMatchObject({ kind: 'file', file: { version: 'v9', servers: [late.key] } });
    expect(h.count('meta-request')).toBe(1);
  });

  it('decide on the first two holders that agree, not waiting for the slow ones', async () => {
    const h = start(40, {});
    for (const server of h.servers) hold(h, server, { common: 'f' });
    await settle(60);
    // Two fast holders, the rest slow (2 s): without deciding on two agreeing answers, the lookup
    // would wait out its grace (1 s here) for the slow ones.
    h.servers.forEach((server, i) => {
      h.holdings.get(server.key)!.delayMs = i < 2 ? 1 : 2_000;
      server.rtt.sample(i < 2 ? 1 : 500);
    });
    const lookup = new FileLookup({ pool: h.pool, tracker: h.tracker, logger: silentLogger, chunkSize: 1_024, index: h.index, cacheMs: 0, graceMs: 1_000 });
    const startedAt = performance.now();
    const found = await lookup.lookup('common');
    const tookMs = performance.now() - startedAt;
    expect(found.kind).toBe('file');
    expect(tookMs).toBeLessThan(500);
    if (found.kind === 'file') expect(found.file.servers.length).toBeGreaterThanOrEqual(2);
  });

  it('ask the holders that decided a path last again first', async () => {
    const h = start(60);
    for (const server of h.servers) hold(h, server, { common: 'f' });
    await settle(60);
    const lookup = new FileLookup({ pool: h.pool, tracker: h.tracker, logger: silentLogger, chunkSize: 1_024, index: h.index, cacheMs: 0 });
    const first = await lookup.lookup('common');
    if (first.kind !== 'file') throw new Error('not found');
    const deciders = first.file.servers.slice(0, 2);
    for (let round = 0; round < 5; round++) {
      await settle(20);
      h.sent.clear();
      await lookup.lookup('common');
      for (const key of deciders) expect(h.sent.get(key)?.some((packet) => packet.type === 'meta-request'), key).toBe(true);
    }
  });

  it('asks every server when the pool is below indexFrom', async () => {
    const h = start(10);
    for (const server of h.servers) hold(h, server, { common: 'f' });
    await settle();
    const lookup = new FileLookup({ pool: h.pool, tracker: h.tracker, logger: silentLogger, chunkSize: 1_024, index: h.index, cacheMs: 0 });
    h.sent.clear();
    await lookup.lookup('nowhere');
    expect(h.count('meta-request')).toBe(10);
  });

  it('list a directory from the index, asking only the unindexed servers', async () => {
    const h = start(40);
    h.servers.forEach((server, i) => hold(h, server, { d: 'd', [`d/f${i % 3}`]: 'f' }));
    const late = h.pool.admit('127.0.0.1', 20_000, 'late')!;
    h.holdings.set(late.key, { files: new Map([['d', { kind: 'd' }], ['d/late', { kind: 'f' }]]), generation: 5, complete: true, pageSize: 100 });
    await settle(60);
    const lister = new DirectoryLister({ pool: h.pool, tracker: h.tracker, index: h.index, cacheMs: 0 });
    h.sent.clear();
    const listing = await lister.list('d');
    expect(listing).toMatchObject({ kind: 'directory', incomplete: false });
    if (listing.kind === 'directory') expect(listing.entries.map((entry) => entry.name)).toEqual(['f0', 'f1', 'f2', 'late']);
    expect(h.count('list-request')).toBe(1);
    expect(h.count('list-request', late)).toBe(1);
    h.sent.clear();
    expect(await lister.list('nowhere')).toEqual({ kind: 'none' });
  });
});

describe('chooseHolders', () => {
  it('takes half the fastest and the rest at random, never one twice', () => {
    const pool = new ServerPool({ heartbeatMs: 3_600_000, maxServers: 1_000 });
    const servers = Array.from({ length: 200 }, (_, i) => pool.admit('127.0.0.1', 30_000 + i, `s${i}`)!);
    servers.forEach((server, i) => {
      if (i % 2 === 0) server.rtt.sample(1 + i);
    });
    let seed = 1;
    const random = () => ((seed = (seed * 16_807) % 2_147_483_647) / 2_147_483_647);
    const chosen = chooseHolders(servers, 8, random);
    expect(new Set(chosen).size).toBe(8);
    expect(chosen.slice(0, 4).map((server) => server.name)).toEqual(['s0', 's2', 's4', 's6']);
    expect(chooseHolders(servers.slice(0, 5), 8)).toHaveLength(5);
    pool.close();
  });
});
