import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkDigest } from '@httpgw/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DigestPendingError, FileStore, StaleVersionError } from '../src/store/file-store.js';
import { versionOfBytes } from '../src/store/manifests.js';

const CHUNK = 4_096;
let root: string;
let store: FileStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'httpgw-store-'));
  store = new FileStore({ root });
  await store.init();
});
afterEach(async () => {
  await store.close();
  await rm(root, { recursive: true, force: true });
});

describe('FileStore versions', () => {
  it('a version is a digest of the bytes: equal for equal bytes whatever the times, different for one byte', async () => {
    const data = randomBytes(3 * CHUNK + 5);
    await writeFile(join(root, 'a.bin'), data);
    await writeFile(join(root, 'b.bin'), data);
    const other = Buffer.from(data);
    other[CHUNK + 1]! ^= 1;
    await writeFile(join(root, 'c.bin'), other);
    const time = new Date('2026-01-01T00:00:00Z');
    await utimes(join(root, 'c.bin'), time, time);
    await utimes(join(root, 'a.bin'), time, time);
    const [a, b, c] = await Promise.all(['a.bin', 'b.bin', 'c.bin'].map((name) => store.meta(name, CHUNK)));
    expect(a!.version).toBe(versionOfBytes(data, CHUNK));
    expect(b!.version).toBe(a!.version);
    expect(c!.version).not.toBe(a!.version);
    expect(c!.mtimeMs).toBe(a!.mtimeMs);
    // Another chunk size is another version of the same bytes.
    expect((await store.meta('a.bin', 2 * CHUNK)).version).toBe(versionOfBytes(data, 2 * CHUNK));
  });

  it('chunks go out with the MD5s computed with the version; each file version is hashed once', async () => {
    const data = randomBytes(5 * CHUNK);
    await writeFile(join(root, 'f.bin'), data);
    const { version } = await store.meta('f.bin', CHUNK);
    for (let round = 0; round < 2; round++) {
      for (let index = 0; index < 5; index++) {
        const read = await store.readChunk('f.bin', version, index, CHUNK);
        expect(read.data.equals(data.subarray(index * CHUNK, (index + 1) * CHUNK))).toBe(true);
        expect(Buffer.from(read.md5).equals(chunkDigest(read.data))).toBe(true);
        expect(read.hasNext).toBe(index < 4);
      }
    }
    expect(store.counters.digestsComputed).toBe(5);
  });

  it('an in-place rewrite is caught at the next read (not a second later): stale, then the new version', async () => {
    const data = randomBytes(4 * CHUNK);
    await writeFile(join(root, 'f.bin'), data);
    const { version } = await store.meta('f.bin', CHUNK);
    await store.readChunk('f.bin', version, 0, CHUNK);
    const handle = await open(join(root, 'f.bin'), 'r+');
    const patch = randomBytes(100);
    await handle.write(patch, 0, patch.length, 2 * CHUNK);
    await handle.close();
    await expect(store.readChunk('f.bin', version, 1, CHUNK)).rejects.toBeInstanceOf(StaleVersionError);
    await expect(store.readChunk('f.bin', version, 2, CHUNK)).rejects.toBeInstanceOf(StaleVersionError);
    const now = await store.meta('f.bin', CHUNK);
    const changed = Buffer.from(data);
    patch.copy(changed, 2 * CHUNK);
    expect(now.version).toBe(versionOfBytes(changed, CHUNK));
    const read = await store.readChunk('f.bin', now.version, 2, CHUNK);
    expect(read.data.equals(changed.subarray(2 * CHUNK, 3 * CHUNK))).toBe(true);
  });

  it('a restore with the old modification time is still a new version (ctime moved, the bytes differ)', async () => {
    const path = join(root, 'f.bin');
    await writeFile(path, randomBytes(2 * CHUNK));
    const time = new Date('2026-01-01T00:00:00Z');
    await utimes(path, time, time);
    const before = await store.meta('f.bin', CHUNK);
    await writeFile(path, randomBytes(2 * CHUNK));
    await utimes(path, time, time);
    const after = await store.meta('f.bin', CHUNK);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.version).not.toBe(before.version);
    await expect(store.readChunk('f.bin', before.version, 0, CHUNK)).rejects.toBeInstanceOf(StaleVersionError);
  });

  it('a file too large to hash within metaWaitMs: busy first, its version once the digest is done', async () => {
    const patient = new FileStore({ root, metaWaitMs: 0 });
    await patient.init();
    const sparse = await open(join(root, 'big.bin'), 'w');
    await sparse.truncate(64 * 1024 * 1024);
    await sparse.close();
    await expect(patient.meta('big.bin', 60 * 1024)).rejects.toBeInstanceOf(DigestPendingError);
    await expect.poll(() => patient.meta('big.bin', 60 * 1024).then((meta) => meta.version, () => undefined), { timeout: 10_000 }).toMatch(/^13ydj4-/);
    await patient.close();
  });
});
