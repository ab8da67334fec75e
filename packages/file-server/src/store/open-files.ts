import { constants as fsConstants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { NotFoundError, UnreadableError, isErrno } from './errors.js';
import { identityOf, isSameFile, type FileIdentity } from './identity.js';
import type { PathGuard } from './path-guard.js';

/** How long a handle dropped from the cache stays open, so reads already holding it finish first. */
const CLOSE_GRACE_MS = 5_000;

/** An open handle, the identity of the file it was opened on, and when its path was last checked. */
export interface OpenFile {
  handle: FileHandle;
  identity: FileIdentity;
  checkedAt: number;
}

export interface OpenFilesInit {
  /** Handles kept open at most; the least recently used goes first. */
  max: number;
  /** How long a handle is trusted before its path is checked again. */
  revalidateMs: number;
  now: () => number;
}

/**
 * A bounded cache of open handles by path, for positional reads. An opening in progress is cached as
 * well, so concurrent reads of a path share one open. A handle older than `revalidateMs` is checked
 * against its path again, and replaced when the path now names another file.
 */
export class OpenFiles {
  private readonly guard: PathGuard;
  private readonly revalidateMs: number;
  private readonly now: () => number;
  private readonly cache: LRUCache<string, Promise<OpenFile>>;
  /** Set while close() empties the cache: its handles close at once, not after the grace period. */
  private closing = false;

  constructor(guard: PathGuard, init: OpenFilesInit) {
    this.guard = guard;
    this.revalidateMs = init.revalidateMs;
    this.now = init.now;
    this.cache = new LRUCache<string, Promise<OpenFile>>({
      max: Math.max(1, init.max),
      // Evicted, or dropped by forget(): reads already holding the handle finish first, so close
      // after a grace period, not at once. A failed opening has nothing to close.
      dispose: (opening) => {
        if (!this.closing) void opening.then((file) => closeAfterGrace(file.handle), () => {});
      },
    });
  }

  /** The open file at `path`, opened now or revalidated when it was last checked too long ago. */
  get(path: string): Promise<OpenFile> {
    const cached = this.cache.get(path);
    if (cached) return cached.then((file) => (this.now() - file.checkedAt < this.revalidateMs ? file : this.revalidate(path, file)));
    const opening = this.openFresh(path);
    this.cache.set(path, opening);
    opening.catch(() => {
      if (this.cache.peek(path) === opening) this.cache.delete(path);
    });
    return opening;
  }

  /** `file` is out of date: forget it and open the path again. */
  reopen(path: string, file: OpenFile): Promise<OpenFile> {
    this.forget(path, file);
    return this.get(path);
  }

  /**
   * Drops the path's cached handle (at worst a newer one another read opened meanwhile: it is opened
   * again) and closes `file`'s after a grace period, so reads already holding it finish first.
   */
  forget(path: string, file: OpenFile): void {
    this.cache.delete(path);
    closeAfterGrace(file.handle);
  }

  async close(): Promise<void> {
    const files = [...this.cache.values()];
    this.closing = true;
    try {
      this.cache.clear();
    } finally {
      this.closing = false;
    }
    await Promise.allSettled(files.map(async (file) => (await file).handle.close()));
  }

  private async openFresh(path: string): Promise<OpenFile> {
    const real = await this.guard.resolve(path);
    let handle: FileHandle;
    try {
      // O_NONBLOCK: a FIFO placed under the root opens at once (and is refused below) instead of hanging a read slot.
      handle = await open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    } catch (error) {
      if (isErrno(error, 'EACCES') || isErrno(error, 'EPERM')) throw new UnreadableError(`${path} cannot be read: permission denied`);
      throw error;
    }
    try {
      const stats = await handle.stat({ bigint: true });
      if (!stats.isFile()) throw new NotFoundError(`${path} is not a regular file`);
      return { handle, identity: identityOf(stats), checkedAt: this.now() };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The path may now name another file (replaced, renamed, rewritten): reopen when it does. */
  private async revalidate(path: string, file: OpenFile): Promise<OpenFile> {
    const current = await stat(await this.guard.resolve(path), { bigint: true });
    if (isSameFile(current, file.identity)) {
      file.checkedAt = this.now();
      return file;
    }
    return this.reopen(path, file);
  }
}

/** Handles already due to close: forget() and the cache's dispose may both drop the same one. */
const closing = new WeakSet<FileHandle>();

function closeAfterGrace(handle: FileHandle): void {
  if (closing.has(handle)) return;
  closing.add(handle);
  setTimeout(() => void handle.close().catch(() => {}), CLOSE_GRACE_MS).unref();
}
