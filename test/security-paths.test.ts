import { execFileSync } from 'node:child_process';
import { link, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore, versionOfBytes } from '@httpgw/file-server';
import { ForbiddenPathError, NotFoundError } from '../packages/file-server/src/store/errors.js';
import { makeTempDir, writeFiles } from './support/cluster.js';

let base: string;
let root: string;
let removeBase: () => Promise<void>;
let store: FileStore;
let dotStore: FileStore;

beforeAll(async () => {
  const dir = await makeTempDir();
  base = dir.path;
  removeBase = dir.remove;
  root = join(base, 'root');
  await writeFiles(join(base, 'outside'), { 'secret.txt': 'secret\n', 'nested/deep.txt': 'deep\n' });
  await writeFiles(root, { 'ok.txt': 'ok\n', 'sub/inner.txt': 'inner\n', '.env': 'KEY=1\n', '.git/config': 'x\n', 'sub/.hidden': 'h\n' });
  await symlink(join(base, 'outside', 'secret.txt'), join(root, 'abs-out.txt'));
  await symlink('../outside/secret.txt', join(root, 'rel-out.txt'));
  await symlink('../../outside', join(root, 'sub', 'dir-out'));
  await symlink(join(root, 'ok.txt'), join(root, 'in.txt'));
  await symlink('sub', join(root, 'dir-in'));
  // A chain of links that looks local at every step but ends outside.
  await symlink('hop2', join(root, 'hop1'));
  await symlink('../outside/secret.txt', join(root, 'hop2'));
  await symlink('loop-b', join(root, 'loop-a'));
  await symlink('loop-a', join(root, 'loop-b'));
  await symlink(join(base, 'outside', 'missing'), join(root, 'dangling'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
  // A root reached through a link of its own is fine: it is resolved once at startup.
  await symlink(root, join(base, 'root-link'));
  store = new FileStore({ root: join(base, 'root-link') });
  await store.init();
  dotStore = new FileStore({ root, allowDotfiles: true });
  await dotStore.init();
});
afterAll(async () => {
  await store?.close();
  await dotStore?.close();
  await removeBase?.();
});

async function outcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'ok';
  } catch (error) {
    if (error instanceof ForbiddenPathError) return 'forbidden';
    if (error instanceof NotFoundError) return 'not-found';
    return `other: ${String(error)}`;
  }
}

async function versionAt(path: string): Promise<string> {
  return versionOfBytes(await readFile(join(root, path)), 1024);
}

describe('FileStore keeps every read under its root', () => {
  it.each([
    ['abs-out.txt', 'a link to an absolute path outside'],
    ['rel-out.txt', 'a relative link leading outside'],
    ['sub/dir-out/secret.txt', 'a file under a directory link leading outside'],
    ['sub/dir-out/nested/deep.txt', 'a deeper file under it'],
    ['hop1', 'a chain of links ending outside'],
    ['../outside/secret.txt', '".." in the path'],
    ['sub/../../outside/secret.txt', '".." after a real directory'],
    ['sub\\..\\..\\outside\\secret.txt', 'backslashes'],
    ['ok.txt\u0000.png', 'a NUL'],
    ['ok\n.txt', 'a control character'],
    [`${'x'.repeat(256)}`, 'a name over 255 bytes'],
    ['.env', 'a dotfile'],
    ['.git/config', 'a file in a dot-directory'],
    ['sub/.hidden', 'a nested dotfile'],
  ])('refuses %j (%s) for metadata and for reads', async (path) => {
    expect(await outcome(() => store.meta(path))).toBe('forbidden');
    expect(await outcome(() => store.readChunk(path, 'any', 0, 1024))).toBe('forbidden');
  });

  it('takes absolute paths relative to the root', async () => {
    expect(await store.meta('/ok.txt')).toMatchObject({ kind: 'file', size: 3 });
    expect(await store.meta('/etc/passwd')).toMatchObject({ kind: 'none' });
  });

  it('serves links that stay under the root', async () => {
    expect((await store.readChunk('in.txt', await versionAt('ok.txt'), 0, 1024)).data.toString()).toBe('ok\n');
    expect((await store.readChunk('dir-in/inner.txt', await versionAt('sub/inner.txt'), 0, 1024)).data.toString()).toBe('inner\n');
  });

  it('reports dangling and looping links as missing, not as I/O errors that would carry the real path', async () => {
    expect(await store.meta('dangling')).toMatchObject({ kind: 'none' });
    expect(await store.meta('loop-a')).toMatchObject({ kind: 'none' });
    expect(await outcome(() => store.readChunk('loop-a', 'any', 0, 1024))).toBe('not-found');
  });

  it('opens a FIFO under the root without hanging, and serves nothing from it', async () => {
    expect(await store.meta('fifo')).toMatchObject({ kind: 'none' });
    const started = performance.now();
    expect(await outcome(() => store.readChunk('fifo', 'any', 0, 1024))).toBe('not-found');
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('hides dotfiles and links leaving the root from listings', async () => {
    const names = (await store.list('', 0, 60_000)).entries.map((entry) => entry.name);
    expect(names).toEqual(expect.arrayContaining(['ok.txt', 'sub', 'in.txt', 'dir-in']));
    for (const hidden of ['.env', '.git', 'abs-out.txt', 'rel-out.txt', 'hop1', 'hop2', 'dangling', 'fifo', 'loop-a']) expect(names).not.toContain(hidden);
    const sub = (await store.list('sub', 0, 60_000)).entries.map((entry) => entry.name);
    expect(sub).toEqual(['inner.txt']);
    expect(await outcome(() => store.list('sub/dir-out', 0, 60_000))).toBe('forbidden');
  });

  it('serves dotfiles only when allowed, and never links out even then', async () => {
    expect((await dotStore.readChunk('.env', await versionAt('.env'), 0, 1024)).data.toString()).toBe('KEY=1\n');
    expect((await dotStore.list('', 0, 60_000)).entries.map((entry) => entry.name)).toContain('.env');
    expect(await outcome(() => dotStore.meta('abs-out.txt'))).toBe('forbidden');
    expect(await outcome(() => dotStore.meta('../outside/secret.txt'))).toBe('forbidden');
  });

  it('cannot tell a hard link from a file: what the operator puts under the root is served', async () => {
    await mkdir(join(root, 'hard'), { recursive: true });
    await writeFile(join(base, 'outside', 'hard-target.txt'), 'hard\n');
    await link(join(base, 'outside', 'hard-target.txt'), join(root, 'hard', 'linked.txt'));
    // Documented in docs/SECURITY.md: only symbolic links are checked.
    expect(await store.meta('hard/linked.txt')).toMatchObject({ kind: 'file', size: 5 });
  });
});
