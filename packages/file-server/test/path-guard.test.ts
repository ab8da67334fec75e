import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForbiddenPathError, NotFoundError } from '../src/store/errors.js';
import { PathGuard } from '../src/store/path-guard.js';

let base: string;
let root: string;
let guard: PathGuard;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'httpgw-guard-')));
  root = join(base, 'root');
  await mkdir(join(root, 'sub'), { recursive: true });
  await writeFile(join(root, 'sub', 'a.txt'), 'a');
  await writeFile(join(root, '.env'), 'KEY=1');
  await writeFile(join(base, 'secret.txt'), 'secret');
  await symlink('../secret.txt', join(root, 'out.txt'));
  await symlink('sub/a.txt', join(root, 'in.txt'));
  await symlink('loop-b', join(root, 'loop-a'));
  await symlink('loop-a', join(root, 'loop-b'));
  await symlink('root', join(base, 'root-link'));
  guard = new PathGuard(join(base, 'root-link'), false);
  await guard.init();
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function outcome(path: string, on = guard): Promise<string> {
  try {
    return await on.resolve(path);
  } catch (error) {
    if (error instanceof ForbiddenPathError) return 'forbidden';
    if (error instanceof NotFoundError) return 'not-found';
    throw error;
  }
}

describe('PathGuard', () => {
  it('resolves the root once, through links, and refuses a root that is no directory', async () => {
    expect(guard.root).toBe(root);
    await expect(new PathGuard(join(root, 'sub', 'a.txt'), false).init()).rejects.toThrow(/is not a directory/);
    await expect(new PathGuard(join(base, 'missing'), false).init()).rejects.toThrow();
  });

  it('maps paths to real paths under the root, following links that stay inside', async () => {
    expect(await outcome('sub/a.txt')).toBe(join(root, 'sub', 'a.txt'));
    expect(await outcome('in.txt')).toBe(join(root, 'sub', 'a.txt'));
    expect(await outcome('')).toBe(root);
  });

  it.each([
    ['out.txt', 'forbidden'],
    ['../secret.txt', 'forbidden'],
    ['sub/../../secret.txt', 'forbidden'],
    ['.env', 'forbidden'],
    ['a\u0000b', 'forbidden'],
    ['missing.txt', 'not-found'],
    ['sub/a.txt/x', 'not-found'],
    ['loop-a', 'not-found'],
  ])('%j is %s', async (path, expected) => {
    expect(await outcome(path)).toBe(expected);
  });

  it('dotfiles: hidden unless allowed, in paths and in listings', async () => {
    const open = new PathGuard(root, true);
    await open.init();
    expect(await outcome('.env', open)).toBe(join(root, '.env'));
    expect(open.shows('.env')).toBe(true);
    expect(guard.shows('.env')).toBe(false);
    expect(guard.shows('a.txt')).toBe(true);
    expect(() => guard.check('.env')).toThrow(ForbiddenPathError);
    expect(guard.check('sub//a.txt')).toBe(open.check('sub/a.txt'));
  });
});
