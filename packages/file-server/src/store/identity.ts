import type { BigIntStats } from 'node:fs';

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
