import type { Logger } from '@httpgw/runtime';
import { LRUCache } from 'lru-cache';
import type { FileVersion } from '../lookup/file-lookup.js';
import type { DiskTier, DiskTierCounters } from './disk-tier.js';
import { MemoryTier, type MemoryTierCounters } from './memory-tier.js';
import { SharedChunks } from './shared-chunks.js';

/** What the cache knows of a version it holds chunks of: enough to serve it with no server left. */
export interface CachedVersion {
  path: string;
  version: string;
  size: number;
  mtimeMs: number;
  /** Servers that held it when last asked: a later "not found" from one of them means it was deleted. */
  holders: string[];
  /** When servers last reported this version (ms since the epoch): a response's age counts from it. */
  validatedAt: number;
}

export interface ChunkCacheInit {
  chunkSize: number;
  /** Bytes of chunks kept in memory (0: none). */
  memoryBytes: number;
  disk?: DiskTier;
  /** Serve a fully cached version when no server holding it answers (default true). */
  serveStale?: boolean;
  /** The oldest a version served stale may be, counted from when servers last reported it. */
  staleMaxAgeMs?: number;
  logger: Logger;
  now?: () => number;
}

export interface CacheCounters {
  /** Responses served whole from the cache, from it while no server answered, and the rest. */
  hits: number;
  stale: number;
  misses: number;
  /** Bytes of chunks handed to responses from memory, from disk, and fetched from the servers. */
  memoryBytesServed: number;
  diskBytesServed: number;
  fetchedBytes: number;
  /** The same in chunks. */
  memoryChunksServed: number;
  diskChunksServed: number;
  fetchedChunks: number;
  /** Versions whose chunks were dropped because the servers now report another one. */
  invalidations: number;
}

export interface CacheStats extends CacheCounters {
  /** Chunks a transfer got from another one's fetch in flight. */
  collapsed: number;
  memory: ({ bytes: number; maxBytes: number; entries: number } & MemoryTierCounters) | undefined;
  disk: ({ bytes: number; entries: number; indexed: boolean } & DiskTierCounters) | undefined;
}

/** Where the chunks of a range are: counts. */
export interface ChunkPresence {
  memory: number;
  disk: number;
  inFlight: number;
  missing: number;
}

/**
 * The gateway's cache of file chunks: a memory tier, an optional disk tier, the chunks being fetched
 * right now (shared by concurrent downloads), and what each cached path's version is. Chunks are
 * keyed by path, version and chunk number, and a version is a digest of the content, so a new
 * version of a file never meets an old chunk; when the servers report a new version, the old one's
 * chunks are dropped.
 */
export class ChunkCache {
  readonly counters: CacheCounters = { hits: 0, stale: 0, misses: 0, memoryBytesServed: 0, diskBytesServed: 0, fetchedBytes: 0, memoryChunksServed: 0, diskChunksServed: 0, fetchedChunks: 0, invalidations: 0 };
  readonly memory: MemoryTier | undefined;
  readonly disk: DiskTier | undefined;
  readonly shared = new SharedChunks();
  readonly chunkSize: number;
  readonly serveStale: boolean;
  readonly staleMaxAgeMs: number;
  /** Each cached path's version, and when its record was last written to disk. */
  private readonly versions = new LRUCache<string, { record: CachedVersion; persistedAt: number }>({ max: 100_000 });
  /** Records on disk younger than this are not rewritten only to move their validation time. */
  private static readonly RECORD_REFRESH_MS = 60_000;
  private readonly logger: Logger;
  private readonly now: () => number;

  constructor(init: ChunkCacheInit) {
    this.chunkSize = init.chunkSize;
    this.memory = init.memoryBytes > 0 ? new MemoryTier(init.memoryBytes, init.chunkSize) : undefined;
    this.disk = init.disk;
    this.serveStale = init.serveStale ?? true;
    this.staleMaxAgeMs = init.staleMaxAgeMs ?? 24 * 3_600_000;
    this.logger = init.logger;
    this.now = init.now ?? Date.now;
  }

  /** Whether any tier is on: without one, only concurrent fetches are shared. */
  get stores(): boolean {
    return this.memory !== undefined || this.disk !== undefined;
  }

  /** The prefix of every chunk key of a version: the chunk's number follows. */
  keyPrefix(file: Pick<FileVersion, 'path' | 'version'>): string {
    return `${file.path}\n${file.version}\n`;
  }

  /**
   * The servers report `file` (a lookup just decided): remember it, and drop the chunks of the
   * version cached before if it was another one.
   */
  validated(file: FileVersion, at = this.now()): void {
    if (!this.stores) return;
    const known = this.versions.get(file.path);
    const changed = known !== undefined && known.record.version !== file.version;
    if (changed) this.invalidate(known.record);
    const record: CachedVersion = { path: file.path, version: file.version, size: file.size, mtimeMs: file.mtimeMs, holders: [...file.servers], validatedAt: at };
    const persist = this.disk !== undefined && (!known || changed || at - known.persistedAt >= ChunkCache.RECORD_REFRESH_MS);
    this.versions.set(file.path, { record, persistedAt: persist || !known ? at : known.persistedAt });
    if (persist) void this.disk?.writeRecord(recordKey(file.path), record);
  }

  /**
   * A version of `path` that may be served although no server holding it answered: fully cached,
   * validated no longer than the stale bound ago, and none of its holders said it is gone.
   * `answered`: servers that answered the lookup (they do not hold the path).
   */
  async staleVersion(path: string, answered: readonly string[]): Promise<CachedVersion | undefined> {
    if (!this.serveStale || !this.stores) return undefined;
    let record = this.versions.get(path)?.record;
    if (!record && this.disk) {
      record = parseRecord(await this.disk.readRecord(recordKey(path)), path);
      if (record) this.versions.set(path, { record, persistedAt: record.validatedAt });
    }
    if (!record || this.now() - record.validatedAt > this.staleMaxAgeMs) return undefined;
    // A holder that answers "not found" says the file was deleted: that is news, not a failure.
    if (record.holders.some((holder) => answered.includes(holder))) return undefined;
    await this.disk?.whenIndexed();
    const chunks = Math.max(1, Math.ceil(record.size / this.chunkSize));
    const presence = this.presence(record, 0, chunks - 1);
    return presence.missing + presence.inFlight === 0 ? record : undefined;
  }

  /** Where the chunks `first..last` of a version are now. */
  presence(file: Pick<FileVersion, 'path' | 'version'>, first: number, last: number): ChunkPresence {
    const prefix = this.keyPrefix(file);
    const presence: ChunkPresence = { memory: 0, disk: 0, inFlight: 0, missing: 0 };
    for (let chunk = first; chunk <= last; chunk++) {
      const key = prefix + chunk;
      if (this.memory?.has(key)) presence.memory++;
      else if (this.disk?.has(key)) presence.disk++;
      else if (this.shared.isInFlight(key)) presence.inFlight++;
      else presence.missing++;
    }
    return presence;
  }

  /**
   * A chunk in memory, counted as a request for it (the admission filter weighs popularity) unless
   * `countRequest` is false: the same transfer asking again after waiting for room is not more demand.
   */
  fromMemory(key: string, countRequest = true): Buffer | undefined {
    const data = countRequest ? this.memory?.get(key) : this.memory?.peek(key);
    if (!data) return undefined;
    this.counters.memoryBytesServed += data.length;
    this.counters.memoryChunksServed++;
    return data;
  }

  /** A chunk from disk, kept in memory too if the admission filter lets it in. */
  async fromDisk(key: string): Promise<Buffer | undefined> {
    const data = await this.disk?.read(key);
    if (!data) return undefined;
    this.counters.diskBytesServed += data.length;
    this.counters.diskChunksServed++;
    this.memory?.offer(key, data);
    return data;
  }

  /** A chunk fetched from the servers (its MD5 checked): kept in memory and written to disk behind the response. */
  store(key: string, data: Buffer): boolean {
    this.counters.fetchedBytes += data.length;
    this.counters.fetchedChunks++;
    const kept = this.memory?.offer(key, data) ?? false;
    this.disk?.write(key, data);
    return kept;
  }

  /** Per tier, for the metrics: chunks each answered (hits) or had to pass on (misses), bytes served and held. */
  tierStats(): Array<{ tier: string; hits: number; misses: number; bytesServed: number; bytesStored: number }> {
    const c = this.counters;
    const tiers = [];
    if (this.memory) tiers.push({ tier: 'memory', hits: c.memoryChunksServed, misses: c.diskChunksServed + c.fetchedChunks, bytesServed: c.memoryBytesServed, bytesStored: this.memory.bytes });
    if (this.disk) tiers.push({ tier: 'disk', hits: c.diskChunksServed, misses: c.fetchedChunks, bytesServed: c.diskBytesServed, bytesStored: this.disk.bytes });
    return tiers;
  }

  /** Figures for the log and the stats. */
  stats(): CacheStats {
    return {
      ...this.counters,
      collapsed: this.shared.collapsed,
      memory: this.memory ? { bytes: this.memory.bytes, maxBytes: this.memory.maxBytes, entries: this.memory.size, ...this.memory.counters } : undefined,
      disk: this.disk ? { bytes: this.disk.bytes, entries: this.disk.entries, indexed: this.disk.indexed, ...this.disk.counters } : undefined,
    };
  }

  private invalidate(old: CachedVersion): void {
    this.counters.invalidations++;
    const prefix = this.keyPrefix(old);
    const chunks = Math.max(1, Math.ceil(old.size / this.chunkSize));
    for (let chunk = 0; chunk < chunks; chunk++) {
      this.memory?.delete(prefix + chunk);
      this.disk?.delete(prefix + chunk);
    }
    this.logger.info('file changed on the servers: cached chunks of the old version dropped', { path: old.path, version: old.version });
  }
}

function recordKey(path: string): string {
  return `version\n${path}`;
}

/** A record read back from disk, if it has the shape of one for `path` (the disk is not trusted blindly). */
function parseRecord(value: unknown, path: string): CachedVersion | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const ok =
    record.path === path &&
    typeof record.version === 'string' &&
    Number.isSafeInteger(record.size) &&
    (record.size as number) >= 0 &&
    typeof record.mtimeMs === 'number' &&
    typeof record.validatedAt === 'number' &&
    Array.isArray(record.holders) &&
    record.holders.every((holder) => typeof holder === 'string');
  return ok ? (record as unknown as CachedVersion) : undefined;
}
