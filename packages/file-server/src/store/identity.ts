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
  /** The stats the identity was taken from, for `isSameFile`. */
  stats: BigIntStats;
}

export function identityOf(stats: BigIntStats): FileIdentity {
  return {
    key: `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`,
    size: Number(stats.size),
    mtimeMs: Number(stats.mtimeNs / 1000n) / 1000,
    stats,
  };
}

/** Whether `stats` still describe the file of `identity`: the check after every chunk read, so no key is built. */
export function isSameFile(stats: BigIntStats, identity: FileIdentity): boolean {
  const at = identity.stats;
  return stats.ctimeNs === at.ctimeNs && stats.mtimeNs === at.mtimeNs && stats.size === at.size && stats.ino === at.ino && stats.dev === at.dev;
}
