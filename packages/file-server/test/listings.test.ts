import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_LIST_ENTRIES } from '@httpgw/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../src/store/errors.js';
import { Listings, type ListingsInit } from '../src/store/listings.js';
import { PathGuard } from '../src/store/path-guard.js';

/** Budget for exactly one entry of a short name per page (each costs its name's bytes + 64). */
const ONE_PER_PAGE = 70;

let root: string;
let clock: number;
let guard: PathGuard;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'httpgw-listings-'));
  clock = 1_000_000;
  guard = new PathGuard(root, false);
  await guard.init();
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function listings(init: Partial<ListingsInit> = {}): Listings {
  return new Listings(guard, { revalidateMs: 1_000, now: () => clock, ...init });
}

async function files(dir: string, names: string[]): Promise<void> {
  await mkdir(join(root, dir), { recursive: true });
  await Promise.all(names.map((name) => writeFile(join(root, dir, name), name)));
}

async function names(store: Listings, path: string, cursor: number, maxBytes = ONE_PER_PAGE): Promise<string[]> {
  return (await store.page(path, cursor, maxBytes)).entries.map((entry) => entry.name);
}

describe('Listings', () => {
  it('pages through a directory sorted by name, hidden names left out, then next = -1', async () => {
    await files('d', ['c', 'a', '.hidden', 'b']);
    await mkdir(join(root, 'd', 'sub'));
    const store = listings();
    const seen: string[] = [];
    let cursor = 0;
    do {
      const page = await store.page('d', cursor, ONE_PER_PAGE);
      expect(page.entries).toHaveLength(1);
      seen.push(...page.entries.map((entry) => `${entry.kind}:${entry.name}`));
      cursor = page.next;
    } while (cursor !== -1);
    expect(seen).toEqual(['file:a', 'file:b', 'file:c', 'directory:sub']);
    const whole = await store.page('d', 0, 10_000);
    expect(whole.entries.map((entry) => entry.name)).toEqual(['a', 'b', 'c', 'sub']);
    expect(whole.next).toBe(-1);
  });

  it('a page holds MAX_LIST_ENTRIES entries at most', async () => {
    await files('many', Array.from({ length: MAX_LIST_ENTRIES + 3 }, (_, i) => `f${String(i).padStart(5, '0')}`));
    const page = await listings().page('many', 0, 10_000_000);
    expect(page.entries).toHaveLength(MAX_LIST_ENTRIES);
    expect(page.next).toBe(MAX_LIST_ENTRIES);
  });

  it('later pages come from the first page\'s snapshot for 30 s; a first page is fresh after revalidateMs', async () => {
    await files('d', ['a', 'b', 'c']);
    const store = listings();
    expect(await names(store, 'd', 0)).toEqual(['a']);
    await writeFile(join(root, 'd', 'aa'), 'aa');
    clock += 5_000;
    // Past revalidateMs but within the snapshot's 30 s: cursor 1 is still 'b' of the first list.
    expect(await names(store, 'd', 1)).toEqual(['b']);
    clock += 26_000;
    // 31 s on: the directory is read again, cursor 1 is now 'aa'.
    expect(await names(store, 'd', 1)).toEqual(['aa']);
    await writeFile(join(root, 'd', '0'), '0');
    clock += 999;
    expect(await names(store, 'd', 0)).toEqual(['a']);
    clock += 1;
    expect(await names(store, 'd', 0)).toEqual(['0']);
  });

  it('keeps at most `max` snapshots, dropping the least recently used only', async () => {
    await files('x', ['a', 'b']);
    await files('y', ['a', 'b']);
    await files('z', ['a', 'b']);
    const store = listings({ max: 2 });
    await names(store, 'x', 0);
    await names(store, 'y', 0);
    await names(store, 'z', 0); // x goes
    await Promise.all(['x', 'y', 'z'].map((dir) => writeFile(join(root, dir, 'aa'), 'aa')));
    clock += 5_000;
    expect(await names(store, 'z', 1)).toEqual(['b']);
    expect(await names(store, 'x', 1)).toEqual(['aa']); // read again: x's snapshot was evicted (y goes now)
    expect(await names(store, 'z', 1)).toEqual(['b']); // z is still served from its snapshot
  });

  it('a missing path or a file is NotFoundError, and a failure is not remembered', async () => {
    await files('d', ['f']);
    const store = listings();
    await expect(store.page('nope', 0, ONE_PER_PAGE)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.page('d/f', 0, ONE_PER_PAGE)).rejects.toBeInstanceOf(NotFoundError);
    await files('nope', ['x']);
    expect(await names(store, 'nope', 0)).toEqual(['x']);
  });
});
