import { fstatSync, readSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { DEFAULT_CHUNK_SIZE, MD5_BYTES, type EntryKind, type ListEntry } from '@httpgw/protocol';
import { DigestPendingError, NotFoundError, StaleVersionError } from './errors.js';
import { identityOf, isSameFile } from './identity.js';
import { Listings } from './listings.js';
import { Manifests, type Manifest } from './manifests.js';
import { OpenFiles, type OpenFile } from './open-files.js';
import { PathGuard } from './path-guard.js';
import { ReadBuffers } from './read-buffers.js';

export { DigestPendingError, ForbiddenPathError, NotFoundError, StaleVersionError, UnreadableError } from './errors.js';

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
  /** Lent by the store: hand it back with release() once sent. */
  data: Buffer;
  hasNext: boolean;
  md5: Buffer;
}

/**
 * Files under one root: safe path resolution (PathGuard), metadata, content versions (Manifests),
 * positional chunk reads from a bounded cache of open handles (OpenFiles), and paged directory
 * listings (Listings).
 *
 * Integrity: a file's version is computed from its bytes at one identity (FileIdentity); every chunk
 * read checks afterwards that the identity is unchanged, and goes out with the MD5 from the version's
 * manifest. A file that changes is answered `stale`, never with bytes of another version.
 */
export class FileStore {
  private readonly guard: PathGuard;
  private readonly openFiles: OpenFiles;
  private readonly manifests: Manifests;
  private readonly listings: Listings;
  private readonly metaWaitMs: number;
  /** Where chunk reads go; release() gives each back once its datagram is sent. */
  private readonly readBuffers = new ReadBuffers();
  /** Chunk MD5s computed (each file version is hashed once per chunk size, when first asked for). */
  readonly counters = { digestsComputed: 0, changedWhileRead: 0 };

  constructor(init: FileStoreInit) {
    const revalidateMs = init.revalidateMs ?? 1_000;
    const now = init.now ?? Date.now;
    this.guard = new PathGuard(init.root, init.allowDotfiles ?? false);
    this.openFiles = new OpenFiles(this.guard, { max: init.maxOpenFiles ?? 64, revalidateMs, now });
    this.manifests = new Manifests({
      maxBytes: init.manifestCacheBytes ?? 64 * 1024 * 1024,
      counters: this.counters,
      changed: (path, file, what) => this.changed(path, file, what),
    });
    this.listings = new Listings(this.guard, { revalidateMs, now });
    this.metaWaitMs = init.metaWaitMs ?? 150;
  }

  /** The one way from protocol paths to the file system (the catalogue walks the tree through it). */
  get pathGuard(): PathGuard {
    return this.guard;
  }

  /** Resolves the root once (following links), and fails loudly when it is not a directory. */
  init(): Promise<string> {
    return this.guard.init();
  }

  /**
   * What is at `path`; for a file, its content version at `chunkSize` (computed from its bytes the first
   * time: DigestPendingError when that takes longer than metaWaitMs, while it goes on in the background).
   */
  async meta(path: string, chunkSize = DEFAULT_CHUNK_SIZE): Promise<FileMeta> {
    const real = await this.guard.resolve(path).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (real === undefined) return { kind: 'none', size: 0, mtimeMs: 0, version: '' };
    const stats = await stat(real, { bigint: true });
    if (stats.isDirectory()) return { kind: 'directory', size: 0, mtimeMs: Number(stats.mtimeNs / 1000n) / 1000, version: '' };
    if (!stats.isFile()) return { kind: 'none', size: 0, mtimeMs: 0, version: '' };
    const identity = identityOf(stats);
    const known = this.manifests.known(identity, chunkSize);
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
    const file = await this.openFiles.get(path);
    const manifest = this.manifests.known(file.identity, chunkSize) ?? (await this.manifests.of(path, file, chunkSize));
    if (manifest.version !== version) throw new StaleVersionError(`${path} changed: version ${manifest.version}, asked for ${version}`);
    const offset = index * chunkSize;
    const size = file.identity.size;
    if (offset > size || (offset === size && size > 0)) throw new NotFoundError(`chunk ${index} is past the end of ${path}`);
    const data = this.readBuffers.take(Math.min(chunkSize, size - offset));
    try {
      let filled = 0;
      while (filled < data.length) {
        // A blocking pread, as nginx does without `aio threads`: from the page cache it costs a copy,
        // while a threadpool read costs two cross-thread wake-ups and answers out of order.
        const bytesRead = readSync(file.handle.fd, data, filled, data.length - filled, offset + filled);
        if (bytesRead === 0) throw this.changed(path, file, 'shrank while being read');
        filled += bytesRead;
      }
      // After the read, not before: a write that landed in these bytes has already moved mtime and ctime.
      if (!isSameFile(fstatSync(file.handle.fd, { bigint: true }), file.identity)) throw this.changed(path, file, 'changed while being read');
    } catch (error) {
      this.readBuffers.release(data);
      throw error;
    }
    const at = index * MD5_BYTES;
    return { data, hasNext: offset + data.length < size, md5: manifest.digests.subarray(at, at + MD5_BYTES) };
  }

  /** A chunk read's data is sent (or dropped): its buffer may take another read. Data not from readChunk is ignored. */
  release(data: Buffer): void {
    this.readBuffers.release(data);
  }

  /** One page of the directory at `path` from `cursor` (see Listings.page). */
  list(path: string, cursor: number, maxBytes: number): Promise<{ entries: ListEntry[]; next: number }> {
    return this.listings.page(path, cursor, maxBytes);
  }

  close(): Promise<void> {
    return this.openFiles.close();
  }

  /** The file's handle goes: the next read reopens the path and sees the file as it is now. */
  private changed(path: string, file: OpenFile, what: string): StaleVersionError {
    this.counters.changedWhileRead++;
    this.openFiles.forget(path, file);
    return new StaleVersionError(`${path} ${what}`);
  }

  /**
   * The manifest of the file now at `path` (reopened when its identity is not `identityKey`). A file
   * that changes while it is hashed is hashed again, a few times, then DigestPendingError.
   */
  private async currentManifest(path: string, chunkSize: number, identityKey: string): Promise<{ file: OpenFile; manifest: Manifest }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      let file = await this.openFiles.get(path);
      if (file.identity.key !== identityKey) file = await this.openFiles.reopen(path, file);
      try {
        return { file, manifest: await this.manifests.of(path, file, chunkSize) };
      } catch (error) {
        if (!(error instanceof StaleVersionError)) throw error;
        identityKey = '';
      }
    }
    throw new DigestPendingError(`${path} keeps changing`);
  }
}
