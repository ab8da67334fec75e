import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CHUNK_DATAGRAM_OVERHEAD,
  MAX_CATALOG_ENTRIES,
  MAX_CHUNK_SIZE,
  MAX_DATAGRAM_BYTES,
  MAX_LIST_ENTRIES,
  MAX_MESSAGE_LENGTH,
  MAX_PATH_BYTES,
  MAX_PATH_SEGMENT_BYTES,
  MAX_SAFE_UINT,
  MAX_SERVER_NAME_LENGTH,
  MAX_VERSION_LENGTH,
  MIN_CHUNK_SIZE,
  MIN_DATAGRAM_BYTES,
  MTU_SAFE_CHUNK_SIZE,
  MTU_SAFE_DATAGRAM_BYTES,
  ProtocolError,
  catalogEntriesBudget,
  catalogEntryBytes,
  chunkDatagramBytes,
  decode,
  defaultMaxDatagramSize,
  encode,
  listEntriesBudget,
  listEntryBytes,
  type CatalogEntry,
  type ListEntry,
  type Packet,
  type SealOptions,
} from '@httpgw/protocol';
import { rawFrame } from './arbitraries.js';

/** The largest frame overhead there is: an auth header with a key id of the maximum 32 bytes. */
const seal: SealOptions = { key: { id: 'k'.repeat(32), secret: Buffer.alloc(32, 7) }, timestampMs: 2 ** 52, nonce: 2n ** 64n - 1n };
const sizes = (packet: Packet) => [encode(packet).length, encode(packet, seal).length];

/** A page as a file server cuts it: entries while their listEntryBytes fit the budget, at least one. */
function cutPage(entries: ListEntry[], maxDatagramSize: number): ListEntry[] {
  let budget = listEntriesBudget(maxDatagramSize);
  const page: ListEntry[] = [];
  for (const entry of entries.slice(0, MAX_LIST_ENTRIES)) {
    if (listEntryBytes(entry) > budget && page.length > 0) break;
    budget -= listEntryBytes(entry);
    page.push(entry);
  }
  return page;
}

/** A catalogue page as a file server cuts it: entries while their catalogEntryBytes fit; one that never fits is left out. */
function cutCatalogPage(entries: CatalogEntry[], maxDatagramSize: number): CatalogEntry[] {
  let budget = catalogEntriesBudget(maxDatagramSize);
  const page: CatalogEntry[] = [];
  for (const entry of entries.slice(0, MAX_CATALOG_ENTRIES)) {
    const cost = catalogEntryBytes(entry[0]);
    if (cost > catalogEntriesBudget(maxDatagramSize)) continue;
    if (cost > budget) break;
    budget -= cost;
    page.push(entry);
  }
  return page;
}

describe('the datagram size limit', () => {
  it('bounds a chunk datagram by its data plus CHUNK_DATAGRAM_OVERHEAD, with the largest ids and auth header', () => {
    for (const chunkSize of [0, MIN_CHUNK_SIZE, MTU_SAFE_CHUNK_SIZE, 65_535, MAX_CHUNK_SIZE]) {
      const packet: Packet = { type: 'chunk', requestId: MAX_SAFE_UINT, chunk: MAX_SAFE_UINT, hasNext: true, md5: Buffer.alloc(16), data: Buffer.alloc(chunkSize) };
      for (const size of sizes(packet)) expect(size).toBeLessThanOrEqual(chunkDatagramBytes(chunkSize));
    }
    // The bound is tight: within a few bytes of the worst case.
    const worst = encode({ type: 'chunk', requestId: MAX_SAFE_UINT, chunk: MAX_SAFE_UINT, hasNext: false, md5: Buffer.alloc(16), data: Buffer.alloc(1_000) }, seal).length;
    expect(chunkDatagramBytes(1_000) - worst).toBeLessThan(8);
    expect(CHUNK_DATAGRAM_OVERHEAD).toBe(chunkDatagramBytes(0));
  });

  it('implies the MTU-safe limit from an MTU-safe chunk size, and the largest datagram otherwise', () => {
    expect(defaultMaxDatagramSize(MTU_SAFE_CHUNK_SIZE)).toBe(MTU_SAFE_DATAGRAM_BYTES);
    expect(defaultMaxDatagramSize(MTU_SAFE_DATAGRAM_BYTES - CHUNK_DATAGRAM_OVERHEAD)).toBe(MTU_SAFE_DATAGRAM_BYTES);
    expect(defaultMaxDatagramSize(MTU_SAFE_DATAGRAM_BYTES - CHUNK_DATAGRAM_OVERHEAD + 1)).toBe(MAX_DATAGRAM_BYTES);
    expect(defaultMaxDatagramSize(MAX_CHUNK_SIZE)).toBe(MAX_DATAGRAM_BYTES);
    // 1,452 crosses a 1,500-byte MTU over IPv6 (40-byte header) and so over IPv4 (20) too.
    expect(MTU_SAFE_DATAGRAM_BYTES + 40 + 8).toBeLessThanOrEqual(1_500);
  });

  it('keeps every page cut for a limit within it, whatever the names, numbers and auth', () => {
    const name = fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }).filter((n) => Buffer.byteLength(n) <= MAX_PATH_SEGMENT_BYTES),
      fc.constant('x'.repeat(MAX_PATH_SEGMENT_BYTES)),
      fc.constant('é'.repeat(MAX_PATH_SEGMENT_BYTES >> 1)),
    );
    const number = fc.oneof(fc.constant(MAX_SAFE_UINT), fc.nat(), fc.double({ min: 0, max: 1e15, noNaN: true }));
    const entry = fc.record({ name, kind: fc.constantFrom('file' as const, 'directory' as const), size: fc.oneof(fc.constant(MAX_SAFE_UINT), fc.nat()), mtimeMs: number });
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 600 }), fc.constantFrom(MIN_DATAGRAM_BYTES, MTU_SAFE_DATAGRAM_BYTES, 1_472, 9_000, MAX_DATAGRAM_BYTES), (entries, limit) => {
        const page = cutPage(entries, limit);
        expect(page.length).toBeGreaterThan(0);
        const packet: Packet = { type: 'list', requestId: MAX_SAFE_UINT, entries: page, next: MAX_SAFE_UINT };
        for (const size of sizes(packet)) expect(size).toBeLessThanOrEqual(limit);
      }),
      { numRuns: 150 },
    );
  });

  it('keeps every catalogue page cut for a limit within it, whatever the paths, numbers and auth', () => {
    const path = fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 120 }).filter((p) => Buffer.byteLength(p) <= MAX_PATH_BYTES),
      fc.constant('x'.repeat(MAX_PATH_BYTES)),
      fc.constant('é'.repeat(MAX_PATH_BYTES >> 1)),
      fc.constant('y'.repeat(catalogEntriesBudget(MIN_DATAGRAM_BYTES) - catalogEntryBytes(''))),
    );
    const number = fc.oneof(fc.constant(MAX_SAFE_UINT), fc.nat(), fc.double({ min: 0, max: 1e15, noNaN: true }));
    const entry = fc.tuple(path, fc.constantFrom('f' as const, 'd' as const), fc.oneof(fc.constant(MAX_SAFE_UINT), fc.nat()), number);
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 1_200 }), fc.constantFrom(MIN_DATAGRAM_BYTES, MTU_SAFE_DATAGRAM_BYTES, 9_000, MAX_DATAGRAM_BYTES), (entries, limit) => {
        const page = cutCatalogPage(entries, limit);
        const packet: Packet = { type: 'catalog', requestId: MAX_SAFE_UINT, generation: MAX_SAFE_UINT, entries: page, next: MAX_SAFE_UINT, complete: false };
        for (const size of sizes(packet)) expect(size).toBeLessThanOrEqual(limit);
      }),
      { numRuns: 150 },
    );
    // A path that fits the smallest budget exactly makes a page of one entry, within the limit.
    const tight: CatalogEntry = ['z'.repeat(catalogEntriesBudget(MIN_DATAGRAM_BYTES) - catalogEntryBytes('')), 'f', MAX_SAFE_UINT, 1e15 + 0.5];
    const packet: Packet = { type: 'catalog', requestId: MAX_SAFE_UINT, generation: MAX_SAFE_UINT, entries: [tight], next: MAX_SAFE_UINT, complete: true };
    for (const size of sizes(packet)) expect(size).toBeLessThanOrEqual(MIN_DATAGRAM_BYTES);
  });

  it('leaves every other packet below the smallest limit, at its fields\' largest', () => {
    const path = 'p'.repeat(MAX_PATH_BYTES);
    const version = 'v'.repeat(MAX_VERSION_LENGTH);
    const name = 'n'.repeat(MAX_SERVER_NAME_LENGTH);
    const id = MAX_SAFE_UINT;
    const packets: Packet[] = [
      { type: 'hello', name },
      { type: 'challenge', cookie: Buffer.alloc(16) },
      { type: 'register', name, cookie: Buffer.alloc(16), catalog: id },
      { type: 'registered', heartbeatMs: 3_600_000 },
      { type: 'heartbeat', catalog: id },
      { type: 'refused', reason: 'pool-full', retryAfterMs: 3_600_000 },
      { type: 'heartbeat-ack', known: true, heartbeatMs: 3_600_000 },
      { type: 'leave' },
      { type: 'meta', requestId: id, kind: 'directory', size: id, mtimeMs: 1e15 + 0.5, version },
      { type: 'error', requestId: id, code: 'unreadable', message: 'm'.repeat(MAX_MESSAGE_LENGTH) },
    ];
    for (const packet of packets) for (const size of sizes(packet)) expect(size, packet.type).toBeLessThanOrEqual(MIN_DATAGRAM_BYTES);
    // Requests carry a path of up to 1,024 bytes: still MTU-safe.
    const requests: Packet[] = [
      { type: 'meta-request', requestId: id, path, chunkSize: MAX_CHUNK_SIZE },
      { type: 'chunk-request', requestId: id - 40, path, version, chunk: id - 40, chunkSize: MAX_CHUNK_SIZE, count: 32 },
      { type: 'list-request', requestId: id, path, cursor: id, maxDatagramSize: MAX_DATAGRAM_BYTES },
      { type: 'catalog-request', requestId: id, cursor: id, maxDatagramSize: MAX_DATAGRAM_BYTES },
    ];
    for (const packet of requests) for (const size of sizes(packet)) expect(size, packet.type).toBeLessThanOrEqual(MTU_SAFE_DATAGRAM_BYTES);
  });

  it('is named in a list request as an optional field within MIN..MAX_DATAGRAM_BYTES', () => {
    const base = { type: 'list-request', requestId: 1, path: 'a', cursor: 0 };
    expect(decode(rawFrame(base))).not.toHaveProperty('maxDatagramSize');
    expect(decode(rawFrame({ ...base, maxDatagramSize: MTU_SAFE_DATAGRAM_BYTES }))).toMatchObject({ maxDatagramSize: MTU_SAFE_DATAGRAM_BYTES });
    for (const bad of [MIN_DATAGRAM_BYTES - 1, MAX_DATAGRAM_BYTES + 1, 1_452.5, '1452', -1, null]) {
      expect(() => decode(rawFrame({ ...base, maxDatagramSize: bad })), String(bad)).toThrow(ProtocolError);
    }
  });

  it('is a refusal to the register it answers, no larger than the hello before it', () => {
    const hello = encode({ type: 'hello', name: '' }).length;
    expect(encode({ type: 'refused', reason: 'pool-full', retryAfterMs: 3_600_000 }).length).toBeLessThanOrEqual(3 * hello);
    for (const bad of [-1, 3_600_001, 1.5, '10']) expect(() => decode(rawFrame({ type: 'refused', reason: 'pool-full', retryAfterMs: bad })), String(bad)).toThrow(ProtocolError);
    expect(() => decode(rawFrame({ type: 'refused', reason: 'bored', retryAfterMs: 1 }))).toThrow(ProtocolError);
  });

  it('takes the catalogue generation as an optional field of register and heartbeat', () => {
    expect(decode(rawFrame({ type: 'heartbeat' }))).toEqual({ type: 'heartbeat' });
    expect(decode(rawFrame({ type: 'heartbeat', catalog: 2 ** 52 }))).toEqual({ type: 'heartbeat', catalog: 2 ** 52 });
    for (const bad of [-1, 0.5, 'x', null]) expect(() => decode(rawFrame({ type: 'heartbeat', catalog: bad })), String(bad)).toThrow(ProtocolError);
    const entry = (value: unknown) => rawFrame({ type: 'catalog', requestId: 1, generation: 1, entries: [value], next: -1, complete: true });
    expect(decode(entry(['a/b', 'f', 3, 1.5]))).toMatchObject({ entries: [['a/b', 'f', 3, 1.5]] });
    for (const bad of [['a', 'x', 1, 1], ['a', 'f', -1, 1], ['a', 'f', 1], { path: 'a' }, [1, 'f', 1, 1], ['p'.repeat(MAX_PATH_BYTES + 1), 'f', 1, 1]]) {
      expect(() => decode(entry(bad)), JSON.stringify(bad).slice(0, 40)).toThrow(ProtocolError);
    }
  });
});
