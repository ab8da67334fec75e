import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StaleVersionError } from '../src/store/errors.js';
import { Manifests, versionOfBytes } from '../src/store/manifests.js';
import { OpenFiles, type OpenFile } from '../src/store/open-files.js';
import { PathGuard } from '../src/store/path-guard.js';

const CHUNK = 1_024;
let root: string;
let openFiles: OpenFiles;
let counters: { digestsComputed: number };
let changes: string[];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'httpgw-manifests-'));
  const guard = new PathGuard(root, false);
  await guard.init();
  openFiles = new OpenFiles(guard, { max: 64, revalidateMs: 1_000, now: Date.now });
  counters = { digestsComputed: 0 };
  changes = [];
});
afterEach(async () => {
  await openFiles.close();
  await rm(root, { recursive: true, force: true });
});

function manifests(maxBytes = 1024 * 1024): Manifests {
  return new Manifests({
    maxBytes,
    counters,
    changed: (path: string, _file: OpenFile, what: string) => {
      changes.push(`${path} ${what}`);
      return new StaleVersionError(`${path} ${what}`);
    },
  });
}

describe('Manifests', () => {
  it('concurrent asks share one pass over the file; later asks are answered from the cache', async () => {
    const data = randomBytes(10 * CHUNK + 1);
    await writeFile(join(root, 'f'), data);
    const store = manifests();
    const file = await openFiles.get('f');
    expect(store.known(file.identity, CHUNK)).toBeUndefined();
    const [first, second] = await Promise.all([store.of('f', file, CHUNK), store.of('f', file, CHUNK)]);
    expect(second).toBe(first);
    expect(first.version).toBe(versionOfBytes(data, CHUNK));
    expect(counters.digestsComputed).toBe(11);
    expect(store.known(file.identity, CHUNK)).toBe(first);
    expect(await store.of('f', file, CHUNK)).toBe(first);
    // Another chunk size is another manifest.
    expect((await store.of('f', file, 2 * CHUNK)).version).toBe(versionOfBytes(data, 2 * CHUNK));
    expect(counters.digestsComputed).toBe(17);
  });

  it('evicts the least recently used manifests beyond maxBytes (16 bytes a chunk + 256)', async () => {
    await writeFile(join(root, 'a'), randomBytes(10 * CHUNK));
    await writeFile(join(root, 'b'), randomBytes(10 * CHUNK));
    const store = manifests(2 * (10 * 16 + 256) - 1);
    const a = await openFiles.get('a');
    const b = await openFiles.get('b');
    await store.of('a', a, CHUNK);
    await store.of('b', b, CHUNK);
    expect(store.known(a.identity, CHUNK)).toBeUndefined();
    expect(store.known(b.identity, CHUNK)).toBeDefined();
  });

  it('a file that shrank while hashed is reported through `changed`, and nothing is cached', async () => {
    await writeFile(join(root, 'f'), randomBytes(4 * CHUNK));
    const store = manifests();
    const file = await openFiles.get('f');
    await writeFile(join(root, 'f'), randomBytes(CHUNK));
    await expect(store.of('f', file, CHUNK)).rejects.toBeInstanceOf(StaleVersionError);
    expect(changes).toEqual(['f shrank while its digest was computed']);
    expect(store.known(file.identity, CHUNK)).toBeUndefined();
    expect(counters.digestsComputed).toBe(0);
  });
});
