import { fstatSync, constants as fsConstants, readSync, type Dirent } from 'node:fs';
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { DEFAULT_CHUNK_SIZE, MAX_LIST_ENTRIES, MD5_BYTES, normalizePath, type EntryKind, type ListEntry } from '@httpgw/protocol';
import { LRUCache } from 'lru-cache';
import { FileShrankError, computeManifest, identityOf, type FileIdentity, type Manifest } from './manifest.js';

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
  /** Bytes of chunk MD5s kept for files' manifests (16 per chunk: 64 MiB cover 256 GB at 60 KiB chunks). */
  manifestCacheBytes?: number;
  /** How long a metadata answer waits for a file's digest before saying `busy` (the digest goes on). */
  metaWaitMs?: number;
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

/** The file changed since the gateway learned its version, or while it was read: refuse rather than mix contents. */
export class StaleVersionError extends Error {
  override readonly name = 'StaleVersionError';
}
/** The file exists but this process may not read it (permissions): no retry will help. */
export class UnreadableError extends Error {
  override readonly name = 'UnreadableError';
}
/** The file's digest is still being computed (or the file keeps changing): ask again shortly. */
export class DigestPendingError extends Error {
  override readonly name = 'DigestPendingError';
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
  identity: FileIdentity;
  checkedAt: number;
}

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
 * Files under one root: safe path resolution, metadata, content versions (see Manifest), positional
 * chunk reads from a bounded cache of open handles, and paged directory listings.
 *
 * Integrity: a file's version is computed from its bytes at one identity (FileIdentity); every chunk
 * read checks afterwards that the identity is unchanged, and goes out with the MD5 from the version's
 * manifest. A file that changes is answered `stale`, never with bytes of another version.
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
  /** Manifests by `identity key|chunk size`: a file's version stays known while its handle is closed. */
  private readonly manifests: LRUCache<string, Manifest>;
  /** Manifests being computed, so concurrent asks share one pass over the file. */
  private readonly computing = new Map<string, Promise<Manifest>>();
  private readonly metaWaitMs: number;
  /** Chunk MD5s computed (each file version is hashed once per chunk size, when first asked for). */
  readonly counters = { digestsComputed: 0, changedWhileRead: 0 };

  constructor(init: FileStoreInit) {
    this.rootInput = init.root;
    this.allowDotfiles = init.allowDotfiles ?? false;
    this.maxOpenFiles = init.maxOpenFiles ?? 64;
    this.revalidateMs = init.revalidateMs ?? 1_000;
    this.metaWaitMs = init.metaWaitMs ?? 150;
    this.now = init.now ?? Date.now;
    this.manifests = new LRUCache({ maxSize: init.manifestCacheBytes ?? 64 * 1024 * 1024, sizeCalculation: (manifest) => manifest.digests.length + 256 });
  }

  /** Resolves the root once (following links), and fails loudly when it is not a directory. */
  async init(): Promise<string> {
    this.root = await realpath(this.rootInput);
    if (!(await stat(this.root)).isDirectory()) throw new Error(`root ${this.rootInput} is not a directory`);
    return this.root;
  }

  /**
   * What is at `path`; for a file, its content version at `chunkSize` (computed from its bytes the first
   * time: DigestPendingError when that takes longer than metaWaitMs, while it goes on in the background).
   */
  async meta(path: string, chunkSize = DEFAULT_CHUNK_SIZE): Promise<FileMeta> {
    const real = await this.resolve(path).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (real === undefined) return { kind: 'none', size: 0, mtimeMs: 0, version: '' };
    const stats = await stat(real, { bigint: true });
    if (stats.isDirectory()) return { kind: 'directory', size: 0, mtimeMs: Number(stats.mtimeNs / 1000n) / 1000, version: '' };
    if (!stats.isFile()) return { kind: 'none', size: 0, mtimeMs: 0, version: '' };
    const identity = identityOf(stats);
    const known = this.manifests.get(manifestKey(identity, chunkSize));
    if (known) return { kind: 'file', size: identity.size, mtimeMs: identity.mtimeMs, version: known.version };
    const timer = new Promise<never>((_resolve, reject) => setTimeout(() => reject(new DigestPendingError(`${path}: digest in progress, ask again`)), this.metaWaitMs).unref());
    const { file, manifest } = await Promise.race([this.currentManifest(path, chunkSize, identity.key), timer]);
    return { kind: 'file', size: file.identity.size, mtimeMs: file.identity.mtimeMs, version: manifest.version };
  }

  /**
   * Reads chunk `index` of `chunkSize` bytes of `version` with one positional read, then checks that
   * the file is still the one the version was computed from (StaleVersionError if not).
   */
  async readChunk(path: string, version: string, index: number, chunkSize: number): Promise<ChunkRead> {
    const file = await this.openFile(path);
    const manifest = this.manifests.get(manifestKey(file.identity, chunkSize)) ?? (await this.manifestOf(path, file, chunkSize));
    if (manifest.version !== version) throw new StaleVersionError(`${path} changed: version ${manifest.version}, asked for ${version}`);
    const offset = index * chunkSize;
    const size = file.identity.size;
    if (offset > size || (offset === size && size > 0)) throw new NotFoundError(`chunk ${index} is past the end of ${path}`);
    const data = Buffer.allocUnsafe(Math.min(chunkSize, size - offset));
    let filled = 0;
    while (filled < data.length) {
      // A blocking pread, as nginx does without `aio threads`: from the page cache it costs a copy,
      // while a threadpool read costs two cross-thread wake-ups and answers out of order.
      const bytesRead = readSync(file.handle.fd, data, filled, data.length - filled, offset + filled);
      if (bytesRead === 0) throw this.changed(path, file, 'shrank while being read');
      filled += bytesRead;
    }
    // After the read, not before: a write that landed in these bytes has already moved mtime and ctime.
    if (identityOf(fstatSync(file.handle.fd, { bigint: true })).key !== file.identity.key) throw this.changed(path, file, 'changed while being read');
    const at = index * MD5_BYTES;
    return { data, hasNext: offset + data.length < size, md5: manifest.digests.subarray(at, at + MD5_BYTES) };
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

  /** The file's handle goes: the next read reopens the path and sees the file as it is now. */
  private changed(path: string, file: OpenFile, what: string): StaleVersionError {
    this.counters.changedWhileRead++;
    this.forgetHandle(path, file);
    return new StaleVersionError(`${path} ${what}`);
  }

  /**
   * The manifest of the file now at `path` (reopened when its identity is not `identityKey`). A file
   * that changes while it is hashed is hashed again, a few times, then DigestPendingError.
   */
  private async currentManifest(path: string, chunkSize: number, identityKey: string): Promise<{ file: OpenFile; manifest: Manifest }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      let file = await this.openFile(path);
      if (file.identity.key !== identityKey) file = await this.reopen(path, file);
      try {
        return { file, manifest: await this.manifestOf(path, file, chunkSize) };
      } catch (error) {
        if (!(error instanceof StaleVersionError)) throw error;
        identityKey = '';
      }
    }
    throw new DigestPendingError(`${path} keeps changing`);
  }

  /** The manifest of `file` at `chunkSize`: cached, being computed, or computed now (one pass shared by all who ask). */
  private manifestOf(path: string, file: OpenFile, chunkSize: number): Promise<Manifest> {
    const key = manifestKey(file.identity, chunkSize);
    const known = this.manifests.get(key);
    if (known) return Promise.resolve(known);
    let pending = this.computing.get(key);
    if (!pending) {
      pending = (async () => {
        let manifest: Manifest;
        try {
          manifest = await computeManifest(file.handle, file.identity.size, chunkSize);
        } catch (error) {
          if (error instanceof FileShrankError) throw this.changed(path, file, 'shrank while its digest was computed');
          throw error;
        }
        if (identityOf(await file.handle.stat({ bigint: true })).key !== file.identity.key) throw this.changed(path, file, 'changed while its digest was computed');
        this.counters.digestsComputed += manifest.digests.length / MD5_BYTES;
        this.manifests.set(key, manifest);
        return manifest;
      })().finally(() => this.computing.delete(key));
      this.computing.set(key, pending);
    }
    return pending;
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
    const current = await stat(await this.resolve(path), { bigint: true });
    if (identityOf(current).key === file.identity.key) {
      file.checkedAt = this.now();
      return file;
    }
    return this.reopen(path, file);
  }

  private reopen(path: string, file: OpenFile): Promise<OpenFile> {
    this.forgetHandle(path, file);
    return this.openFile(path);
  }

  /**
   * Drops the path's cached handle (at worst a newer one another read opened meanwhile: it is opened
   * again) and closes `file`'s after a grace period, so reads already holding it finish first.
   */
  private forgetHandle(path: string, file: OpenFile): void {
    this.openFiles.delete(path);
    setTimeout(() => void file.handle.close().catch(() => {}), 5_000).unref();
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

function manifestKey(identity: FileIdentity, chunkSize: number): string {
  return `${identity.key}|${chunkSize}`;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && 'code' in error && error.code === code;
}
