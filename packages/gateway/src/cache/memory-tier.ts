import { LRUCache } from 'lru-cache';
import { keepChunk } from '../transfer/chunk-memory.js';
import { FrequencySketch } from './frequency-sketch.js';

/** Bytes an entry costs beyond its data: the key, the LRU's node, the Buffer object. */
const ENTRY_OVERHEAD = 256;

export interface MemoryTierCounters {
  /** Entries pushed out to make room, and bytes they held. */
  evictions: number;
  evictedBytes: number;
  /** Chunks offered but kept out: less popular lately than what they would have pushed out. */
  rejected: number;
}

/**
 * Chunks in memory, bounded in bytes: LRU order with a TinyLFU admission filter. When the cache is
 * full, a new chunk gets in only if it was asked for more often lately than the least recently used
 * one it would push out, so a scan through one huge file (each chunk asked once) cannot flush the
 * small files and first chunks that many clients keep asking for. Until it is full, everything gets in.
 */
export class MemoryTier {
  readonly counters: MemoryTierCounters = { evictions: 0, evictedBytes: 0, rejected: 0 };
  private readonly entries: LRUCache<string, Buffer>;
  private readonly sketch: FrequencySketch;
  readonly maxBytes: number;

  constructor(maxBytes: number, typicalEntryBytes: number) {
    this.maxBytes = maxBytes;
    this.entries = new LRUCache<string, Buffer>({
      maxSize: maxBytes,
      sizeCalculation: (data) => entrySize(data),
      dispose: (data, _key, reason) => {
        if (reason !== 'evict') return;
        this.counters.evictions++;
        this.counters.evictedBytes += data.length;
      },
    });
    this.sketch = new FrequencySketch(Math.ceil(maxBytes / (typicalEntryBytes + ENTRY_OVERHEAD)));
  }

  get bytes(): number {
    return this.entries.calculatedSize;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The chunk, counted as asked for (hit or miss: popularity is what the admission filter weighs). */
  get(key: string): Buffer | undefined {
    this.sketch.increment(key);
    return this.entries.get(key);
  }

  /** The chunk if held, without counting a request or touching recency. */
  peek(key: string): Buffer | undefined {
    return this.entries.peek(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Keeps `data` if it fits or is more popular than what it would push out; true if kept. */
  offer(key: string, data: Buffer): boolean {
    const size = entrySize(data);
    if (size > this.maxBytes) return false;
    if (this.entries.has(key)) return true;
    if (this.entries.calculatedSize + size > this.maxBytes) {
      const victim = this.entries.rkeys().next();
      if (!victim.done && this.sketch.frequency(key) <= this.sketch.frequency(victim.value)) {
        this.counters.rejected++;
        return false;
      }
    }
    // Held from now on: the writer that delivers it must not free its memory (chunk-memory.ts).
    keepChunk(data);
    this.entries.set(key, data);
    return true;
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}

/** What an entry costs: the whole ArrayBuffer the chunk lives in (a datagram's), plus bookkeeping. */
function entrySize(data: Buffer): number {
  return Math.max(data.length, data.buffer.byteLength) + ENTRY_OVERHEAD;
}
