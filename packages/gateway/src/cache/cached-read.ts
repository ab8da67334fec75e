import { GatewayError } from '../errors.js';
import type { FileVersion } from '../lookup/file-lookup.js';
import type { ChunkRange } from '../transfer/chunk-range.js';
import type { ChunkCache } from './chunk-cache.js';

/** Disk reads started ahead of the one the client waits for. */
const DISK_READ_AHEAD = 4;

const NO_SERVERS: Set<string> = new Set();

/** What the access log and the writer see of a response served from the cache. */
export class CachedProgress {
  bytesDelivered = 0;
  readonly cacheOutcome = 'hit' as const;
  /** Set when a chunk was missing after all and the rest came from the servers. */
  fallback: { bytesDelivered: number; serversUsed: Set<string>; failed?: AbortSignal } | undefined;

  get serversUsed(): Set<string> {
    return this.fallback?.serversUsed ?? NO_SERVERS;
  }

  get failed(): AbortSignal | undefined {
    return this.fallback?.failed;
  }
}

/**
 * The chunks of a range that the cache holds, in order, from memory or disk (a few disk reads
 * ahead). A chunk gone meanwhile (evicted, its disk entry damaged) is fetched from the servers with
 * the rest of the range through `fetchRest`; with no servers to ask (a stale version) the response
 * fails, and is cut.
 */
export async function* cachedChunks(
  cache: ChunkCache,
  file: FileVersion,
  range: ChunkRange,
  progress: CachedProgress,
  fetchRest: ((firstByte: number) => { fetcher: CachedProgress['fallback'] & object; chunks: AsyncGenerator<Buffer, void, undefined> }) | undefined,
  signal?: AbortSignal,
): AsyncGenerator<Buffer, void, undefined> {
  const prefix = cache.keyPrefix(file);
  const diskReads = new Map<number, Promise<Buffer | undefined>>();
  for (let chunk = range.firstChunk; chunk <= range.lastChunk; chunk++) {
    if (signal?.aborted) return;
    let data = cache.fromMemory(prefix + chunk);
    if (!data && cache.disk) {
      for (let ahead = chunk; ahead <= Math.min(range.lastChunk, chunk + DISK_READ_AHEAD); ahead++) {
        if (!diskReads.has(ahead) && (ahead === chunk || !cache.memory?.has(prefix + ahead))) diskReads.set(ahead, cache.fromDisk(prefix + ahead));
      }
      data = await diskReads.get(chunk);
    }
    diskReads.delete(chunk);
    if (!data || !range.fits(chunk, data, chunk * range.chunkSize + data.length < range.size)) {
      const firstByte = Math.max(range.firstByte, chunk * range.chunkSize);
      if (!fetchRest || file.servers.length === 0) throw new GatewayError('GW_ERR_SOURCES_GONE', 'a cached chunk is gone and no server holds the file');
      const { fetcher, chunks } = fetchRest(firstByte);
      progress.fallback = fetcher;
      for await (const piece of chunks) {
        progress.bytesDelivered += piece.length;
        yield piece;
      }
      return;
    }
    const piece = range.trim(chunk, data);
    progress.bytesDelivered += piece.length;
    yield piece;
  }
}
