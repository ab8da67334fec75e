import { createHash, randomBytes } from 'node:crypto';
import { mkdir, opendir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@httpgw/runtime';
import PQueue from 'p-queue';
import { keepChunk } from '../transfer/chunk-memory.js';

/**
 * An entry on disk: a header, the key it was stored under, the data. The checksum covers key and
 * data, so a file cut short by a crash, flipped bits or a file moved by hand is never served.
 */
const MAGIC = Buffer.from('HGWC');
const FORMAT = 1;
/** magic 4, format 1, key length u16, data length u32, MD5 of key + data 16. */
const HEADER_BYTES = 4 + 1 + 2 + 4 + 16;

export interface DiskTierInit {
  dir: string;
  maxBytes: number;
  logger: Logger;
  /** Writes waiting at most, in bytes: beyond it a chunk is not written (the response never waits for the disk). */
  maxPendingBytes?: number;
}

export interface DiskTierCounters {
  writes: number;
  writtenBytes: number;
  /** Chunks not written because writes were already backed up. */
  skipped: number;
  writeErrors: number;
  reads: number;
  readBytes: number;
  /** Entries whose checksum, length or key did not match: deleted, fetched again. */
  corrupt: number;
  evictions: number;
  evictedBytes: number;
}

/**
 * Chunks on disk, bounded in bytes, one file each under DIR/chunks/xy/<sha256 of key>. Written
 * behind the response (a queue of at most `maxPendingBytes`), to a temporary file first and then
 * renamed, so an entry is either whole or absent after a crash; read back only when its checksum
 * holds. On start the directory is indexed in the background (names and sizes, no content read):
 * until then, entries not yet seen are misses. Eviction is least recently used first.
 */
export class DiskTier {
  readonly counters: DiskTierCounters = { writes: 0, writtenBytes: 0, skipped: 0, writeErrors: 0, reads: 0, readBytes: 0, corrupt: 0, evictions: 0, evictedBytes: 0 };
  /** name -> size on disk, least recently used first (a Map keeps insertion order; a use re-inserts). */
  private readonly index = new Map<string, number>();
  private totalBytes = 0;
  private pendingBytes = 0;
  private readonly writes = new PQueue({ concurrency: 2 });
  private readonly maxPendingBytes: number;
  private indexing: Promise<void> | undefined;
  private isIndexed = false;
  private closed = false;

  private constructor(private readonly init: DiskTierInit) {
    this.maxPendingBytes = init.maxPendingBytes ?? 64 * 1024 * 1024;
  }

  /** Opens (creating) the directory; indexing what it holds goes on in the background. */
  static async open(init: DiskTierInit): Promise<DiskTier> {
    const tier = new DiskTier(init);
    await mkdir(join(init.dir, 'chunks'), { recursive: true });
    await mkdir(join(init.dir, 'versions'), { recursive: true });
    // Temporary files are writes a crash interrupted: never renamed, never valid.
    await rm(join(init.dir, 'tmp'), { recursive: true, force: true });
    await mkdir(join(init.dir, 'tmp'), { recursive: true });
    tier.indexing = tier.indexAll().catch((error: unknown) => init.logger.warn('cache directory could not be indexed', { dir: init.dir, error: String(error) }));
    return tier;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get entries(): number {
    return this.index.size;
  }

  /** Whether the background indexing of what was on disk at start is over. */
  get indexed(): boolean {
    return this.isIndexed;
  }

  /** Resolves once the background indexing is over. */
  whenIndexed(): Promise<void> {
    return this.indexing ?? Promise.resolve();
  }

  has(key: string): boolean {
    return this.index.has(nameOf(key));
  }

  /** The chunk stored under `key`, if it is there and whole; a damaged entry is deleted. */
  async read(key: string): Promise<Buffer | undefined> {
    const name = nameOf(key);
    const size = this.index.get(name);
    if (size === undefined) return undefined;
    let bytes: Buffer;
    try {
      bytes = await readFile(this.pathOf(name));
    } catch {
      this.forget(name);
      return undefined;
    }
    const data = decodeEntry(bytes, key);
    if (!data) {
      this.counters.corrupt++;
      this.init.logger.warn('damaged cache entry deleted', { file: this.pathOf(name) });
      this.remove(name);
      return undefined;
    }
    // Used: to the end of the eviction order.
    this.index.delete(name);
    this.index.set(name, size);
    this.counters.reads++;
    this.counters.readBytes += data.length;
    return data;
  }

  /** Stores `data` under `key` behind the caller's back; skipped when writes are backed up or it is there already. */
  write(key: string, data: Uint8Array): void {
    if (this.closed) return;
    const name = nameOf(key);
    if (this.index.has(name)) return;
    if (this.pendingBytes + data.length > this.maxPendingBytes || data.length + HEADER_BYTES > this.init.maxBytes) {
      this.counters.skipped++;
      return;
    }
    this.pendingBytes += data.length;
    // Written later: the response's writer must not free it meanwhile (chunk-memory.ts).
    keepChunk(data);
    void this.writes.add(async () => {
      try {
        if (this.closed || this.index.has(name)) return;
        const entry = encodeEntry(key, data);
        const temporary = join(this.init.dir, 'tmp', randomBytes(8).toString('hex'));
        const final = this.pathOf(name);
        await mkdir(join(this.init.dir, 'chunks', name.slice(0, 2)), { recursive: true });
        await writeFile(temporary, entry);
        await rename(temporary, final);
        this.add(name, entry.length);
        this.counters.writes++;
        this.counters.writtenBytes += data.length;
      } catch (error) {
        this.counters.writeErrors++;
        if (this.counters.writeErrors === 1 || this.counters.writeErrors % 1000 === 0) {
          this.init.logger.warn('cache write failed', { error: error instanceof Error ? error.message : String(error), failures: this.counters.writeErrors });
        }
      } finally {
        this.pendingBytes -= data.length;
      }
    });
  }

  /** Deletes the entry under `key`, if any. */
  delete(key: string): void {
    const name = nameOf(key);
    if (this.index.has(name)) this.remove(name);
  }

  /** Reads a small record (JSON) kept beside the chunks, e.g. what a cached version is. */
  async readRecord(key: string): Promise<unknown> {
    try {
      return JSON.parse(await readFile(this.recordPath(key), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Writes a record, whole or not at all (temporary file, then rename). */
  async writeRecord(key: string, value: unknown): Promise<void> {
    if (this.closed) return;
    const temporary = join(this.init.dir, 'tmp', randomBytes(8).toString('hex'));
    try {
      await writeFile(temporary, JSON.stringify(value));
      await rename(temporary, this.recordPath(key));
    } catch (error) {
      this.init.logger.warn('cache record write failed', { error: error instanceof Error ? error.message : String(error) });
    }
  }

  async deleteRecord(key: string): Promise<void> {
    await unlink(this.recordPath(key)).catch(() => {});
  }

  /** Waits for the writes queued so far (tests; a clean stop). */
  async flush(): Promise<void> {
    await this.writes.onIdle();
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private recordPath(key: string): string {
    return join(this.init.dir, 'versions', `${nameOf(key)}.json`);
  }

  private pathOf(name: string): string {
    return join(this.init.dir, 'chunks', name.slice(0, 2), name);
  }

  private add(name: string, size: number): void {
    const old = this.index.get(name);
    if (old !== undefined) this.totalBytes -= old;
    this.index.delete(name);
    this.index.set(name, size);
    this.totalBytes += size;
    this.evictOverflow();
  }

  /** The least recently used entries go until the tier is within its bound. */
  private evictOverflow(): void {
    while (this.totalBytes > this.init.maxBytes) {
      const oldest = this.index.keys().next();
      if (oldest.done) break;
      this.counters.evictions++;
      this.counters.evictedBytes += this.index.get(oldest.value)!;
      this.remove(oldest.value);
    }
  }

  private forget(name: string): void {
    const size = this.index.get(name);
    if (size === undefined) return;
    this.index.delete(name);
    this.totalBytes -= size;
  }

  private remove(name: string): void {
    this.forget(name);
    unlink(this.pathOf(name)).catch(() => {});
  }

  /** Names and sizes of what is on disk, a directory at a time; nothing is read. */
  private async indexAll(): Promise<void> {
    const chunks = join(this.init.dir, 'chunks');
    const found: Array<[string, number]> = [];
    for await (const shard of await opendir(chunks)) {
      if (!shard.isDirectory() || this.closed) continue;
      for await (const entry of await opendir(join(chunks, shard.name))) {
        if (!entry.isFile() || !/^[0-9a-f]{64}$/.test(entry.name)) continue;
        const info = await stat(join(chunks, shard.name, entry.name)).catch(() => undefined);
        if (info) found.push([entry.name, info.size]);
      }
    }
    // What was there before comes first in the eviction order: older than what was written since.
    const since = [...this.index];
    this.index.clear();
    for (const [name, size] of found) {
      if (this.index.has(name)) continue;
      this.index.set(name, size);
      this.totalBytes += size;
    }
    for (const [name, size] of since) {
      if (this.index.has(name)) this.totalBytes -= this.index.get(name)!;
      this.index.delete(name);
      this.index.set(name, size);
    }
    this.isIndexed = true;
    this.init.logger.info('cache directory indexed', { dir: this.init.dir, entries: this.index.size, bytes: this.totalBytes });
    // Over its bound (a smaller size than last time): the oldest go.
    this.evictOverflow();
  }
}

/** A file name for a key: its SHA-256, so any path is a safe, fixed-length name. */
function nameOf(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function encodeEntry(key: string, data: Uint8Array): Buffer {
  const keyBytes = Buffer.from(key);
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt8(FORMAT, 4);
  header.writeUInt16BE(keyBytes.length, 5);
  header.writeUInt32BE(data.length, 7);
  createHash('md5').update(keyBytes).update(data).digest().copy(header, 11);
  return Buffer.concat([header, keyBytes, data]);
}

/** The data of an entry if it is whole and stored under `key`; undefined otherwise. */
export function decodeEntry(bytes: Buffer, key: string): Buffer | undefined {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 4).equals(MAGIC) || bytes.readUInt8(4) !== FORMAT) return undefined;
  const keyLength = bytes.readUInt16BE(5);
  const dataLength = bytes.readUInt32BE(7);
  if (bytes.length !== HEADER_BYTES + keyLength + dataLength) return undefined;
  const keyBytes = bytes.subarray(HEADER_BYTES, HEADER_BYTES + keyLength);
  if (keyBytes.toString() !== key) return undefined;
  const data = bytes.subarray(HEADER_BYTES + keyLength);
  const sum = createHash('md5').update(keyBytes).update(data).digest();
  return sum.equals(bytes.subarray(11, 27)) ? data : undefined;
}
