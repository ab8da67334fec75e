import { createHash } from 'node:crypto';

/** The per-chunk MD5 carried in `chunk` packets. */
export function chunkDigest(data: Uint8Array): Buffer {
  return createHash('md5').update(data).digest();
}

/** Compares a chunk's data with the MD5 it came with. */
export function chunkDigestMatches(data: Uint8Array, md5: Uint8Array): boolean {
  return chunkDigest(data).equals(md5);
}
