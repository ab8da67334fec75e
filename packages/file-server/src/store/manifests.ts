import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { MD5_BYTES, chunkDigest, md5Many } from '@httpgw/protocol';
import { LRUCache } from 'lru-cache';
import { isSameFile, type FileIdentity } from './identity.js';
import type { OpenFile } from './open-files.js';

/**
 * One file's content at one chunk size: the MD5 of every chunk, and the version built from them (as
 * BitTorrent's infohash is built from piece hashes). Chunks are later sent with these MD5s, never with
 * MD5s of bytes read afterwards, so a chunk that changed since fails its check at the gateway.
 */
export interface Manifest {
  version: string;
  chunkSize: number;
  /** MD5_BYTES per chunk, chunk n at n·MD5_BYTES. */
  digests: Buffer;
}

export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** The version of `size` bytes whose chunks of `chunkSize` have these MD5s: size, then a digest of the digests. */
export function versionOf(size: number, chunkSize: number, digests: Buffer): string {
  const header = Buffer.alloc(12);
  header.writeUInt32BE(chunkSize, 0);
  header.writeBigUInt64BE(BigInt(size), 4);
  const digest = createHash('md5').update(header).update(digests).digest('base64url');
  return `${size.toString(36)}-${digest}`;
}

/** Chunks read per positional read while hashing a whole file (about 1 MiB at the default chunk size). */
const CHUNKS_PER_READ = 16;

/**
 * Reads a whole file through `handle` and hashes each chunk. Throws FileShrankError when the file
 * ends early; the caller checks the file's identity afterwards (a change meanwhile voids the result).
 */
export async function computeManifest(handle: FileHandle, size: number, chunkSize: number): Promise<Manifest> {
  const chunks = chunkCount(size, chunkSize);
  const digests = Buffer.alloc(chunks * MD5_BYTES);
  const buffer = Buffer.allocUnsafe(Math.min(size, CHUNKS_PER_READ * chunkSize));
  for (let first = 0; first < chunks; first += CHUNKS_PER_READ) {
    const offset = first * chunkSize;
    const length = Math.min(buffer.length, size - offset);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
      if (bytesRead === 0) throw new FileShrankError('the file shrank while its digest was computed');
      filled += bytesRead;
    }
    // The read's chunks at once, four at a time in SIMD lanes (about twice node:crypto's speed).
    const read: Uint8Array[] = [];
    for (let at = 0; at < length; at += chunkSize) read.push(buffer.subarray(at, Math.min(at + chunkSize, length)));
    md5Many(read).forEach((digest, i) => digests.set(digest, (first + i) * MD5_BYTES));
  }
  return { version: versionOf(size, chunkSize, digests), chunkSize, digests };
}

export class FileShrankError extends Error {
  override readonly name = 'FileShrankError';
}

/** The version of a file holding exactly `data`, at `chunkSize` (what a file server reports for it). */
export function versionOfBytes(data: Uint8Array, chunkSize: number): string {
  const chunks = chunkCount(data.length, chunkSize);
  const digests = Buffer.alloc(chunks * MD5_BYTES);
  for (let i = 0; i < chunks; i++) chunkDigest(data.subarray(i * chunkSize, (i + 1) * chunkSize)).copy(digests, i * MD5_BYTES);
  return versionOf(data.length, chunkSize, digests);
}

export interface ManifestsInit {
  /** Bytes of chunk MD5s kept (16 per chunk). */
  maxBytes: number;
  /** Where the chunk MD5s computed are counted. */
  counters: { digestsComputed: number };
  /** The error for a file that changed while it was hashed (the store forgets its handle and counts it). */
  changed: (path: string, file: OpenFile, what: string) => Error;
}

/** Who asked first for a manifest being computed: its pass over the file uses their handle. */
interface Asker {
  path: string;
  file: OpenFile;
  chunkSize: number;
}

/**
 * Manifests by `identity key|chunk size`, least recently used evicted beyond `maxBytes`: a file's
 * version stays known while its handle is closed. A manifest being computed is a pending fetch of
 * the cache, so concurrent asks share one pass over the file.
 */
export class Manifests {
  private readonly cache: LRUCache<string, Manifest, Asker>;
  private readonly init: ManifestsInit;

  constructor(init: ManifestsInit) {
    this.init = init;
    // The MD5 lanes' wasm is generated and compiled now, not while the first file's asker waits.
    md5Many([]);
    this.cache = new LRUCache<string, Manifest, Asker>({
      maxSize: init.maxBytes,
      sizeCalculation: (manifest) => manifest.digests.length + 256,
      fetchMethod: (_key, _stale, { context }) => this.compute(context),
      // A pass evicted by others' manifests still answers those waiting for it (it is not cached).
      ignoreFetchAbort: true,
    });
  }

  /** The manifest of a file with `identity` at `chunkSize`, if known (no I/O: the read path's first try). */
  known(identity: FileIdentity, chunkSize: number): Manifest | undefined {
    return this.cache.get(manifestKey(identity, chunkSize));
  }

  /** The manifest of `file` at `chunkSize`: cached, being computed, or computed now (one pass shared by all who ask). */
  of(path: string, file: OpenFile, chunkSize: number): Promise<Manifest> {
    const key = manifestKey(file.identity, chunkSize);
    const known = this.cache.get(key);
    if (known) return Promise.resolve(known);
    return this.cache.forceFetch(key, { context: { path, file, chunkSize } });
  }

  private async compute({ path, file, chunkSize }: Asker): Promise<Manifest> {
    let manifest: Manifest;
    try {
      manifest = await computeManifest(file.handle, file.identity.size, chunkSize);
    } catch (error) {
      if (error instanceof FileShrankError) throw this.init.changed(path, file, 'shrank while its digest was computed');
      throw error;
    }
    if (!isSameFile(await file.handle.stat({ bigint: true }), file.identity)) throw this.init.changed(path, file, 'changed while its digest was computed');
    this.init.counters.digestsComputed += manifest.digests.length / MD5_BYTES;
    return manifest;
  }
}

function manifestKey(identity: FileIdentity, chunkSize: number): string {
  return `${identity.key}|${chunkSize}`;
}
