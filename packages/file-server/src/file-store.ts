import { constants as fsConstants, readSync, type Dirent, type Stats } from 'node:fs';
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { MAX_LIST_ENTRIES, chunkDigest, normalizePath, type EntryKind, type ListEntry } from '@httpgw/protocol';

/** How long a listing snapshot serves the pages after the first one. */
const LISTING_SNAPSHOT_MS = 30_000;

export interface FileStoreInit {
  /** Directory served; nothing outside it is ever opened. */
  root: string;
  /** Serve names starting with '.'; off by default. */
  allowDotfiles?: boolean;
  /** Open file handles kept for positional reads. */
  maxOpenFiles?: number;
  /** How long an open handle or a directory listing is trusted before the path is checked again. */
  revalidateMs?: number;
  now?: () => number;
}

export interface FileMeta {
  kind: EntryKind;
  size: number;
  mtimeMs: number;
  version: string;
}

export interface ChunkRead {
  data: Buffer;
  hasNext: boolean;
  md5: Buffer;
}

/** The file changed since the gateway learned its version: refuse rather than mix contents. */
export class StaleVersionError extends Error {
  override readonly name = 'StaleVersionError';
}
/** The path is malformed, hidden, or resolves outside the root. */
export class ForbiddenPathError extends Error {
  override readonly name = 'ForbiddenPathError';
}
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

interface OpenFile {
  handle: FileHandle;
  stats: Stats;
  version: string;
  checkedAt: number;
  /** MD5 of each chunk already read, for the chunk size they were read at: a re-read costs no hashing. */
  digests: { chunkSize: number; byIndex: Map<number, Buffer> };
}

/** Digests kept per open file at most (16 B each; 65,536 cover 4 GiB at 64 KiB chunks). */
const MAX_DIGESTS_PER_FILE = 65_536;

interface ListingSnapshot {
  /** The directory's real path. */
  real: string;
  /** Visible names, sorted; a cursor is an index into this list. */
  names: Dirent[];
  /** Filled as pages are read: an entry, null when the name is not listed, undefined before its stat. */
  entries: Array<ListEntry | null>;
}

interface CachedListing {
  snapshot: Promise<ListingSnapshot>;
  checkedAt: number;
}

/**
 * The same bytes have the same size and modification time wherever they are copied with their times
 * (cp -p, rsync -t), so servers holding copies agree on the version, as nginx's ETag does.
 */
export function versionOf(stats: Stats): string {
  return `${stats.size.toString(36)}-${Math.trunc(stats.mtimeMs * 1000).toString(36)}`;
}

/**
 * Files under one root: safe path resolution, metadata, positional chunk reads from a bounded cache
 * of open handles, and paged directory listings.
 */
export class FileStore {
  private readonly rootInput: string;
  private root = '';
  private readonly allowDotfiles: boolean;
  private readonly maxOpenFiles: number;
  private readonly revalidateMs: number;
  private readonly now: () => number;
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly openFiles = new Map<string, Promise<OpenFile>>();
  private readonly listings = new Map<string, CachedListing>();
  /** Chunk MD5s computed (not found in a file's digest cache). */
  readonly counters = { digestsComputed: 0 };

  constructor(init: FileStoreInit) {
    this.rootInput = init.root;
    this.allowDotfiles = init.allowDotfiles ?? false;
    this.maxOpenFiles = init.maxOpenFiles ?? 64;
    this.revalidateMs = init.revalidateMs ?? 1_000;
    this.now = init.now ?? Date.now;
  }

  /** Resolves the root once (following links), and fails loudly when it is not a directory. */
  async init(): Promise<string> {
    this.root = await realpath(this.rootInput);
    if (!(await stat(this.root)).isDirectory()) throw new Error(`root ${this.rootInput} is not a directory`);
    return this.root;
  }

  async meta(path: string): Promise<FileMeta> {
    const real = await this.resolve(path).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (real === undefined) return { kind: 'none', size: 0, mtimeMs: 0, version: '' };
    const stats = await stat(real);
    if (stats.isDirectory()) return { kind: 'directory', size: 0, mtimeMs: stats.mtimeMs, version: '' };
    if (!stats.isFile()) return { kind: 'none', size: 0, mtimeMs: 0, version: '' };
    return { kind: 'file', size: stats.size, mtimeMs: stats.mtimeMs, version: versionOf(stats) };
  }

  /** Reads chunk `index` of `chunkSize` bytes with one positional read. */
  async readChunk(path: string, version: string, index: number, chunkSize: number): Promise<ChunkRead> {
    const file = await this.openFile(path);
    if (file.version !== version) throw new StaleVersionError(`${path} changed: version ${file.version}, asked for ${version}`);
    const offset = index * chunkSize;
    const size = file.stats.size;
    if (offset > size || (offset === size && size > 0)) throw new NotFoundError(`chunk ${index} is past the end of ${path}`);
    const data = Buffer.allocUnsafe(Math.min(chunkSize, size - offset));
    let filled = 0;
    while (filled < data.length) {
      // A blocking pread, as nginx does without `aio threads`: from the page cache it costs a copy,
      // while a threadpool read costs two cross-thread wake-ups and answers out of order.
      const bytesRead = readSync(file.handle.fd, data, filled, data.length - filled, offset + filled);
      if (bytesRead === 0) throw new StaleVersionError(`${path} shrank while being read`);
      filled += bytesRead;
    }
    return { data, hasNext: offset + data.length < size, md5: this.digestOf(file, index, chunkSize, data) };
  }

  /**
   * One page of a directory listing, sorted by name, starting at `cursor`, within `maxBytes` of names
   * and MAX_LIST_ENTRIES entries. Only the page's entries are stat'ed, so every answer costs one
   * page whatever the directory's size. Pages after the first come from the snapshot the first was
   * cut from while it is recent, so a gateway paging through a large directory sees one list.
   */
  async list(path: string, cursor: number, maxBytes: number): Promise<{ entries: ListEntry[]; next: number }> {
    const snapshot = await this.listing(path, cursor === 0 ? this.revalidateMs : Math.max(this.revalidateMs, LISTING_SNAPSHOT_MS));
    const end = Math.min(snapshot.names.length, cursor + MAX_LIST_ENTRIES);
    await this.describeEntries(path, snapshot, cursor, end);
    const entries: ListEntry[] = [];
    let budget = maxBytes;
    let index = cursor;
    for (; index < end; index++) {
      const entry = snapshot.entries[index];
      if (!entry) continue;
      // msgpack framing of one entry is ~50 bytes beside its name.
      const cost = Buffer.byteLength(entry.name) + 64;
      if (cost > budget && entries.length > 0) break;
      budget -= cost;
      entries.push(entry);
    }
    return { entries, next: index < snapshot.names.length ? index : -1 };
  }

  async close(): Promise<void> {
    const files = [...this.openFiles.values()];
    this.openFiles.clear();
    await Promise.allSettled(files.map(async (file) => (await file).handle.close()));
  }

  /** The chunk's MD5, from the file's digest cache when it was read before at this chunk size. */
  private digestOf(file: OpenFile, index: number, chunkSize: number, data: Buffer): Buffer {
    const digests = file.digests;
    if (digests.chunkSize !== chunkSize) {
      digests.chunkSize = chunkSize;
      digests.byIndex.clear();
    }
    let md5 = digests.byIndex.get(index);
    if (!md5) {
      md5 = chunkDigest(data);
      this.counters.digestsComputed++;
      if (digests.byIndex.size < MAX_DIGESTS_PER_FILE) digests.byIndex.set(index, md5);
    }
    return md5;
  }

  /** Canonical path → real path under the root, or ForbiddenPathError / NotFoundError. */
  private async resolve(path: string): Promise<string> {
    let relativePath: string;
    try {
      relativePath = normalizePath(path, { allowDotfiles: this.allowDotfiles });
    } catch (error) {
      throw new ForbiddenPathError(error instanceof Error ? error.message : String(error));
    }
    let real: string;
    try {
      real = await realpath(join(this.root, relativePath));
    } catch (error) {
      // ELOOP: a cycle of links names nothing (and its message would carry the real path to the gateway).
      if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR') || isErrno(error, 'ELOOP')) throw new NotFoundError(`${path} does not exist`);
      throw error;
    }
    const inside = relative(this.root, real);
    if (inside.startsWith('..') || isAbsolute(inside)) throw new ForbiddenPathError(`${path} leads outside the root`);
    return real;
  }

  private openFile(path: string): Promise<OpenFile> {
    const cached = this.openFiles.get(path);
    if (cached) {
      this.openFiles.delete(path);
      this.openFiles.set(path, cached);
      return cached.then((file) => (this.now() - file.checkedAt < this.revalidateMs ? file : this.revalidate(path, file)));
    }
    const opening = this.openFresh(path);
    this.openFiles.set(path, opening);
    opening.catch(() => this.openFiles.delete(path));
    this.evictBeyondLimit();
    return opening;
  }

  private async openFresh(path: string): Promise<OpenFile> {
    const real = await this.resolve(path);
    // O_NONBLOCK: a FIFO placed under the root opens at once (and is refused below) instead of hanging a read slot.
    const handle = await open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw new NotFoundError(`${path} is not a regular file`);
      return { handle, stats, version: versionOf(stats), checkedAt: this.now(), digests: { chunkSize: 0, byIndex: new Map() } };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The path may now name another file (replaced, renamed, grown): reopen when it does. */
  private async revalidate(path: string, file: OpenFile): Promise<OpenFile> {
    const current = await stat(await this.resolve(path));
    if (current.ino === file.stats.ino && current.dev === file.stats.dev && versionOf(current) === file.version) {
      file.checkedAt = this.now();
      return file;
    }
    this.openFiles.delete(path);
    void file.handle.close().catch(() => {});
    return this.openFile(path);
  }

  private evictBeyondLimit(): void {
    while (this.openFiles.size > this.maxOpenFiles) {
      const [oldestPath, oldest] = this.openFiles.entries().next().value ?? [];
      if (oldestPath === undefined || oldest === undefined) return;
      this.openFiles.delete(oldestPath);
      // Reads already holding the handle finish first: close after a grace period, not at once.
      void oldest.then((file) => setTimeout(() => void file.handle.close().catch(() => {}), 5_000).unref(), () => {});
    }
  }

  /**
   * The sorted names in a directory, at most `maxAgeMs` old; one read at a time per path (a read in
   * progress is shared whatever its age). A missing path or one that is no directory is NotFoundError.
   */
  private listing(path: string, maxAgeMs: number): Promise<ListingSnapshot> {
    const cached = this.listings.get(path);
    // checkedAt is +Infinity while the read runs: now − ∞ is below any maximum age.
    if (cached && this.now() - cached.checkedAt < maxAgeMs) return cached.snapshot;
    const entry: CachedListing = { snapshot: this.readListing(path), checkedAt: Number.POSITIVE_INFINITY };
    if (this.listings.size > 256) this.listings.clear();
    this.listings.set(path, entry);
    entry.snapshot.then(
      () => {
        entry.checkedAt = this.now();
      },
      () => {
        if (this.listings.get(path) === entry) this.listings.delete(path);
      },
    );
    return entry.snapshot;
  }

  private async readListing(path: string): Promise<ListingSnapshot> {
    const real = await this.resolve(path);
    const dirents = await readdir(real, { withFileTypes: true }).catch((error: unknown) => {
      if (isErrno(error, 'ENOTDIR') || isErrno(error, 'ENOENT')) throw new NotFoundError(`${path} is not a directory`);
      throw error;
    });
    const visible = dirents.filter((dirent) => this.allowDotfiles || !dirent.name.startsWith('.'));
    visible.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { real, names: visible, entries: new Array<ListEntry | null>(visible.length) };
  }

  /** Stats the snapshot's names `from..to-1` not stat'ed yet, all at once (at most one page). */
  private async describeEntries(path: string, snapshot: ListingSnapshot, from: number, to: number): Promise<void> {
    const describe = async (index: number): Promise<void> => {
      const dirent = snapshot.names[index]!;
      const childPath = path === '' ? dirent.name : `${path}/${dirent.name}`;
      let entry: ListEntry | null = null;
      try {
        // A plain file or directory in a resolved directory stays under the root: lstat it (a link
        // swapped in meanwhile is skipped). Links and unknown types go through resolve(), which hides
        // those that leave the root. normalizePath drops names the protocol could not carry.
        normalizePath(childPath, { allowDotfiles: this.allowDotfiles });
        const plain = dirent.isFile() || dirent.isDirectory();
        const stats = plain ? await lstat(join(snapshot.real, dirent.name)) : await stat(await this.resolve(childPath));
        if (stats.isFile()) entry = { name: dirent.name, kind: 'file', size: stats.size, mtimeMs: stats.mtimeMs };
        else if (stats.isDirectory()) entry = { name: dirent.name, kind: 'directory', size: 0, mtimeMs: stats.mtimeMs };
      } catch {
        // Vanished, forbidden or unreadable entries are simply not listed.
      }
      snapshot.entries[index] = entry;
    };
    const pending: Array<Promise<void>> = [];
    for (let index = from; index < to; index++) if (snapshot.entries[index] === undefined) pending.push(describe(index));
    await Promise.all(pending);
  }
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && 'code' in error && error.code === code;
}
