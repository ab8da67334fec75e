import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NotFoundError } from '../src/store/errors.js';
import { OpenFiles, type OpenFilesInit } from '../src/store/open-files.js';
import { PathGuard } from '../src/store/path-guard.js';

let root: string;
let clock: number;
let guard: PathGuard;
const stores: OpenFiles[] = [];

beforeEach(async () => {
  // Only the grace-period timers are faked: file system calls run for real.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  root = await mkdtemp(join(tmpdir(), 'httpgw-open-'));
  clock = 1_000_000;
  guard = new PathGuard(root, false);
  await guard.init();
  await Promise.all(['a', 'b', 'c'].map((name) => writeFile(join(root, name), name)));
});
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  vi.useRealTimers();
  await rm(root, { recursive: true, force: true });
});

function openFiles(init: Partial<OpenFilesInit> = {}): OpenFiles {
  const store = new OpenFiles(guard, { max: 64, revalidateMs: 1_000, now: () => clock, ...init });
  stores.push(store);
  return store;
}

const isOpen = (file: { handle: { fd: number } }) => file.handle.fd !== -1;

describe('OpenFiles', () => {
  it('concurrent reads of a path share one open; a later read reuses it', async () => {
    const store = openFiles();
    const [first, second] = await Promise.all([store.get('a'), store.get('a')]);
    expect(second).toBe(first);
    expect(await store.get('a')).toBe(first);
    expect(first.identity.size).toBe(1);
  });

  it('beyond max, the least recently used handle is dropped and closed after a 5 s grace, not at once', async () => {
    const store = openFiles({ max: 2 });
    const a = await store.get('a');
    const b = await store.get('b');
    await store.get('a'); // b is now the least recently used
    await store.get('c');
    expect(isOpen(b)).toBe(true);
    vi.advanceTimersByTime(4_999);
    await Promise.resolve();
    expect(isOpen(b)).toBe(true);
    vi.advanceTimersByTime(1);
    expect(isOpen(b)).toBe(false);
    expect(isOpen(a)).toBe(true);
    expect(await store.get('a')).toBe(a);
    const reopened = await store.get('b');
    expect(reopened).not.toBe(b);
    expect(isOpen(reopened)).toBe(true);
  });

  it('a handle is trusted for revalidateMs, then checked: kept when the file is the same, replaced when not', async () => {
    const store = openFiles();
    const first = await store.get('a');
    await writeFile(join(root, 'a.new'), 'replaced');
    await rename(join(root, 'a.new'), join(root, 'a'));
    clock += 999;
    expect(await store.get('a')).toBe(first);
    clock += 1;
    const second = await store.get('a');
    expect(second).not.toBe(first);
    expect(second.identity.size).toBe('replaced'.length);
    expect(isOpen(first)).toBe(true);
    vi.advanceTimersByTime(5_000);
    expect(isOpen(first)).toBe(false);
    clock += 5_000;
    expect(await store.get('a')).toBe(second);
    expect(second.checkedAt).toBe(clock);
  });

  it('forget() drops the handle: the next read opens the path again, the old handle closes after the grace', async () => {
    const store = openFiles();
    const first = await store.get('a');
    store.forget('a', first);
    const second = await store.get('a');
    expect(second).not.toBe(first);
    vi.advanceTimersByTime(5_000);
    expect(isOpen(first)).toBe(false);
    expect(isOpen(second)).toBe(true);
  });

  it('a failed open is not cached, and close() closes every handle at once', async () => {
    const store = openFiles();
    await expect(store.get('missing')).rejects.toBeInstanceOf(NotFoundError);
    await writeFile(join(root, 'missing'), 'now here');
    const found = await store.get('missing');
    const a = await store.get('a');
    await store.close();
    expect(isOpen(found)).toBe(false);
    expect(isOpen(a)).toBe(false);
  });
});
