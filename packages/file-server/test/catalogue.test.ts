import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIN_DATAGRAM_BYTES, MTU_SAFE_DATAGRAM_BYTES, encode } from '@httpgw/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/store/catalogue.js';
import { PathGuard } from '../src/store/path-guard.js';

let root: string;
let outside: string;
let guard: PathGuard;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'httpgw-catalogue-'));
  outside = await mkdtemp(join(tmpdir(), 'httpgw-catalogue-outside-'));
  guard = new PathGuard(root, false);
  await guard.init();
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function put(path: string, content = path): Promise<void> {
  await mkdir(join(root, path, '..'), { recursive: true });
  await writeFile(join(root, path), content);
}

describe('Catalogue', () => {
  it('lists every file and directory served, sorted, with sizes; hides dotfiles and links that leave the root', async () => {
    await put('b.txt', 'bb');
    await put('a/x.bin', 'xxxx');
    await put('a/deep/y', 'y');
    await put('.hidden/z');
    await put('.dotfile');
    await writeFile(join(outside, 'secret'), 's');
    await symlink(join(outside, 'secret'), join(root, 'escape'));
    await symlink(join(root, 'b.txt'), join(root, 'inside-link'));
    const snapshot = await new Catalogue(guard).rescan();
    expect(snapshot.entries.map(([path, kind, size]) => [path, kind, size])).toEqual([
      ['a', 'd', 0],
      ['a/deep', 'd', 0],
      ['a/deep/y', 'f', 1],
      ['a/x.bin', 'f', 4],
      ['b.txt', 'f', 2],
      ['inside-link', 'f', 2],
    ]);
    expect(snapshot.complete).toBe(true);
    expect(Number.isSafeInteger(snapshot.generation)).toBe(true);
  });

  it('changes its generation when a file appears, goes or changes, and only then', async () => {
    await put('a/one');
    const catalogue = new Catalogue(guard);
    const first = (await catalogue.rescan()).generation;
    expect((await catalogue.rescan()).generation).toBe(first);
    await put('a/two');
    const second = (await catalogue.rescan()).generation;
    expect(second).not.toBe(first);
    await utimes(join(root, 'a/two'), 1, 1);
    const third = (await catalogue.rescan()).generation;
    expect(third).not.toBe(second);
    await rm(join(root, 'a/two'));
    expect((await catalogue.rescan()).generation).not.toBe(third);
    // Another tree with the same entries (names, sizes, times) has the same generation.
    const twin = await mkdtemp(join(tmpdir(), 'httpgw-catalogue-twin-'));
    try {
      await mkdir(join(twin, 'a'));
      await writeFile(join(twin, 'a/one'), 'a/one');
      for (const tree of [root, twin]) {
        await utimes(join(tree, 'a/one'), 5_000, 5_000);
        await utimes(join(tree, 'a'), 5_000, 5_000);
      }
      const twinGuard = new PathGuard(twin, false);
      await twinGuard.init();
      expect((await new Catalogue(twinGuard).rescan()).generation).toBe((await catalogue.rescan()).generation);
    } finally {
      await rm(twin, { recursive: true, force: true });
    }
  });

  it('is incomplete beyond maxEntries', async () => {
    for (let i = 0; i < 30; i++) await put(`f${String(i).padStart(2, '0')}`);
    const snapshot = await new Catalogue(guard, { maxEntries: 10 }).rescan();
    expect(snapshot.entries).toHaveLength(10);
    expect(snapshot.complete).toBe(false);
  });

  it('pages within the datagram limit, every entry once, and marks a page that had to leave a path out', async () => {
    for (let i = 0; i < 200; i++) await put(`dir${i % 7}/file-with-a-longish-name-${i}.bin`);
    const long = `${'d'.repeat(200)}/${'e'.repeat(250)}`;
    await put(long);
    const catalogue = new Catalogue(guard);
    const { entries: all, generation } = await catalogue.rescan();
    for (const limit of [MIN_DATAGRAM_BYTES, MTU_SAFE_DATAGRAM_BYTES]) {
      const seen: string[] = [];
      let complete = true;
      for (let cursor = 0; cursor !== -1; ) {
        const page = await catalogue.page(cursor, limit);
        expect(page.generation).toBe(generation);
        expect(encode({ type: 'catalog', requestId: 2 ** 52, ...page }).length).toBeLessThanOrEqual(limit);
        seen.push(...page.entries.map(([path]) => path));
        complete &&= page.complete;
        expect(page.next === -1 || page.next > cursor).toBe(true);
        cursor = page.next;
      }
      // The 451-byte path does not fit a 576-byte datagram: left out, and said so.
      const expected = all.map(([path]) => path).filter((path) => limit > MIN_DATAGRAM_BYTES || path !== long);
      expect(seen).toEqual(expected);
      expect(complete).toBe(limit > MIN_DATAGRAM_BYTES);
    }
  });
});
