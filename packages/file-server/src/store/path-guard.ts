import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { normalizePath } from '@httpgw/protocol';
import { ForbiddenPathError, NotFoundError, isErrno } from './errors.js';

/**
 * The one way from a protocol path to a file system path: canonical form (no '..', no control
 * characters, no dotfiles unless allowed), links followed, and the result checked to be under the root.
 */
export class PathGuard {
  readonly allowDotfiles: boolean;
  private readonly rootInput: string;
  private realRoot = '';

  constructor(root: string, allowDotfiles: boolean) {
    this.rootInput = root;
    this.allowDotfiles = allowDotfiles;
  }

  /** The root's real path ('' before init()). */
  get root(): string {
    return this.realRoot;
  }

  /** Resolves the root once (following links), and fails loudly when it is not a directory. */
  async init(): Promise<string> {
    this.realRoot = await realpath(this.rootInput);
    if (!(await stat(this.realRoot)).isDirectory()) throw new Error(`root ${this.rootInput} is not a directory`);
    return this.realRoot;
  }

  /** Whether a directory listing shows `name`. */
  shows(name: string): boolean {
    return this.allowDotfiles || !name.startsWith('.');
  }

  /** `path` in canonical form, relative to the root; ForbiddenPathError when the protocol cannot carry it. */
  check(path: string): string {
    try {
      return normalizePath(path, { allowDotfiles: this.allowDotfiles });
    } catch (error) {
      throw new ForbiddenPathError(error instanceof Error ? error.message : String(error));
    }
  }

  /** Canonical path → real path under the root, or ForbiddenPathError / NotFoundError. */
  async resolve(path: string): Promise<string> {
    const relativePath = this.check(path);
    let real: string;
    try {
      real = await realpath(join(this.realRoot, relativePath));
    } catch (error) {
      // ELOOP: a cycle of links names nothing (and its message would carry the real path to the gateway).
      if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR') || isErrno(error, 'ELOOP')) throw new NotFoundError(`${path} does not exist`);
      throw error;
    }
    const inside = relative(this.realRoot, real);
    if (inside.startsWith('..') || isAbsolute(inside)) throw new ForbiddenPathError(`${path} leads outside the root`);
    return real;
  }
}
