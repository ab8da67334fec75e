import { randomBytes } from 'node:crypto';

/**
 * Unpredictable 48-bit request ids, so an off-path host cannot forge an answer to a request it did
 * not see. Drawn from a pooled random buffer: one syscall per 1,024 ids, not one per chunk.
 */
export function createRequestIdSource(): () => number {
  const ID_BYTES = 6;
  let pool = randomBytes(ID_BYTES * 1024);
  let offset = 0;
  return () => {
    if (offset + ID_BYTES > pool.length) {
      pool = randomBytes(pool.length);
      offset = 0;
    }
    const id = pool.readUIntBE(offset, ID_BYTES);
    offset += ID_BYTES;
    return id;
  };
}
