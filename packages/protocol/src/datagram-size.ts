import {
  CATALOG_DATAGRAM_OVERHEAD,
  CATALOG_ENTRY_OVERHEAD,
  CHUNK_DATAGRAM_OVERHEAD,
  LIST_DATAGRAM_OVERHEAD,
  LIST_ENTRY_OVERHEAD,
  MAX_DATAGRAM_BYTES,
  MIN_DATAGRAM_BYTES,
  MTU_SAFE_DATAGRAM_BYTES,
} from './constants.js';
import type { ListEntry } from './packets.js';

/**
 * The datagram size limit: every datagram a peer sends must fit the limit its receiver names, so
 * that a path that drops IP fragments loses nothing. Chunks fit by their size, listing pages by
 * paging; every other packet is small (below MIN_DATAGRAM_BYTES) by its fields' limits.
 */

/** Largest datagram a `chunk` of `chunkSize` bytes can take, authenticated or not. */
export function chunkDatagramBytes(chunkSize: number): number {
  return chunkSize + CHUNK_DATAGRAM_OVERHEAD;
}

/**
 * The limit a gateway names when none is configured: the MTU-safe size when its chunks fit it
 * (an MTU-safe chunk size implies an MTU-safe network), else the largest UDP datagram.
 */
export function defaultMaxDatagramSize(chunkSize: number): number {
  return chunkDatagramBytes(chunkSize) <= MTU_SAFE_DATAGRAM_BYTES ? MTU_SAFE_DATAGRAM_BYTES : MAX_DATAGRAM_BYTES;
}

/** A limit a peer may name or be configured with. */
export function isDatagramSize(value: number): boolean {
  return Number.isInteger(value) && value >= MIN_DATAGRAM_BYTES && value <= MAX_DATAGRAM_BYTES;
}

/** Bytes one listing entry takes in a `list` datagram, at most. */
export function listEntryBytes(entry: Pick<ListEntry, 'name'>): number {
  return Buffer.byteLength(entry.name) + LIST_ENTRY_OVERHEAD;
}

/** Bytes of entries (as counted by listEntryBytes) a `list` datagram of at most `maxDatagramSize` bytes holds. */
export function listEntriesBudget(maxDatagramSize: number): number {
  return maxDatagramSize - LIST_DATAGRAM_OVERHEAD;
}

/** Bytes one catalogue entry takes in a `catalog` datagram, at most. */
export function catalogEntryBytes(path: string): number {
  return Buffer.byteLength(path) + CATALOG_ENTRY_OVERHEAD;
}

/** Bytes of entries (as counted by catalogEntryBytes) a `catalog` datagram of at most `maxDatagramSize` bytes holds. */
export function catalogEntriesBudget(maxDatagramSize: number): number {
  return maxDatagramSize - CATALOG_DATAGRAM_OVERHEAD;
}
