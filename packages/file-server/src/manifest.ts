import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { MD5_BYTES, chunkDigest } from '@httpgw/protocol';

/**
 * What a file is on this server at one moment: device, inode, size, and modification and change times
 * in nanoseconds. Any write changes mtime and ctime (ctime even when a restore sets mtime back), so a
 * changed key means the bytes may have changed; an equal key means they did not, down to the file
 * system's timestamp granularity (see docs/SECURITY.md).
 */
export interface FileIdentity {
  key: string;
  size: number;
  mtimeMs: number;
}

export function identityOf(stats: BigIntStats): FileIdentity {
  return {
    key: `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`,
    size: Number(stats.size),
    mtimeMs: Number(stats.mtimeNs / 1000n) / 1000,
  };
}

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
    for (let at = 0; at < length; at += chunkSize) {
      chunkDigest(buffer.subarray(at, Math.min(at + chunkSize, length))).copy(digests, (first + at / chunkSize) * MD5_BYTES);
    }
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
