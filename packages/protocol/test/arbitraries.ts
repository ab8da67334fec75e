import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  COOKIE_BYTES,
  MAX_CHUNKS_PER_REQUEST,
  MAX_CHUNK_SIZE,
  MAX_MESSAGE_LENGTH,
  MAX_PATH_BYTES,
  MAX_PATH_SEGMENT_BYTES,
  MAX_SAFE_UINT,
  MAX_SERVER_NAME_LENGTH,
  MAX_VERSION_LENGTH,
  MD5_BYTES,
  MIN_CHUNK_SIZE,
  MAX_DATAGRAM_BYTES,
  MIN_DATAGRAM_BYTES,
  type Packet,
  type PacketType,
} from '@httpgw/protocol';

/** fast-check generators for every packet kind, within the limits `decode` enforces. */

/** Valid Unicode text of at most `maxBytes` UTF-8 bytes (file names, versions, messages). */
export function text(maxBytes: number): fc.Arbitrary<string> {
  return fc
    .string({ unit: 'grapheme', maxLength: Math.min(maxBytes, 64) })
    .filter((value) => Buffer.byteLength(value) <= maxBytes);
}

const uint = fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 1, 2 ** 32, 2 ** 48 - 1, MAX_SAFE_UINT), fc.integer({ min: 0, max: MAX_SAFE_UINT }));
const time = fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1e15, noNaN: true, noDefaultInfinity: true }));
const requestId = uint;
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

export const arbitraries: { [T in PacketType]: fc.Arbitrary<Extract<Packet, { type: T }>> } = {
  hello: fc.record({ type: fc.constant('hello'), name: text(MAX_SERVER_NAME_LENGTH) }),
  challenge: fc.record({ type: fc.constant('challenge'), cookie: bytes(COOKIE_BYTES, COOKIE_BYTES) }),
  register: fc.record(
    { type: fc.constant('register'), name: text(MAX_SERVER_NAME_LENGTH), cookie: bytes(COOKIE_BYTES, COOKIE_BYTES), catalog: uint },
    { requiredKeys: ['type', 'name', 'cookie'] },
  ),
  registered: fc.record({ type: fc.constant('registered'), heartbeatMs: fc.integer({ min: 10, max: 3_600_000 }) }),
  heartbeat: fc.record({ type: fc.constant('heartbeat'), catalog: uint }, { requiredKeys: ['type'] }),
  refused: fc.record({ type: fc.constant('refused'), reason: fc.constant('pool-full'), retryAfterMs: fc.integer({ min: 0, max: 3_600_000 }) }),
  'heartbeat-ack': fc.record({ type: fc.constant('heartbeat-ack'), known: fc.boolean(), heartbeatMs: fc.integer({ min: 10, max: 3_600_000 }) }, { requiredKeys: ['type', 'known'] }),
  leave: fc.record({ type: fc.constant('leave') }),
  'meta-request': fc.record(
    { type: fc.constant('meta-request'), requestId, path: text(MAX_PATH_BYTES), chunkSize: fc.integer({ min: MIN_CHUNK_SIZE, max: MAX_CHUNK_SIZE }) },
    { requiredKeys: ['type', 'requestId', 'path'] },
  ),
  meta: fc.record({
    type: fc.constant('meta'),
    requestId,
    kind: fc.constantFrom('file', 'directory', 'none'),
    size: uint,
    mtimeMs: time,
    version: text(MAX_VERSION_LENGTH),
  }),
  'chunk-request': fc
    .record(
      {
        type: fc.constant('chunk-request' as const),
        requestId,
        path: text(MAX_PATH_BYTES),
        version: text(MAX_VERSION_LENGTH),
        chunk: uint,
        chunkSize: fc.integer({ min: MIN_CHUNK_SIZE, max: MAX_CHUNK_SIZE }),
        count: fc.integer({ min: 1, max: MAX_CHUNKS_PER_REQUEST }),
      },
      { requiredKeys: ['type', 'requestId', 'path', 'version', 'chunk', 'chunkSize'] },
    )
    .filter((p) => p.count === undefined || (p.requestId <= MAX_SAFE_UINT - p.count && p.chunk <= MAX_SAFE_UINT - p.count)),
  chunk: fc.record({
    type: fc.constant('chunk'),
    requestId,
    chunk: uint,
    hasNext: fc.boolean(),
    md5: bytes(MD5_BYTES, MD5_BYTES),
    // Full-size chunks are covered by an example test; small ones keep the run fast.
    data: bytes(0, 2_048),
  }),
  'list-request': fc.record(
    { type: fc.constant('list-request'), requestId, path: text(MAX_PATH_BYTES), cursor: uint, maxDatagramSize: fc.integer({ min: MIN_DATAGRAM_BYTES, max: MAX_DATAGRAM_BYTES }) },
    { requiredKeys: ['type', 'requestId', 'path', 'cursor'] },
  ),
  list: fc.record({
    type: fc.constant('list'),
    requestId,
    entries: fc.array(fc.record({ name: text(MAX_PATH_SEGMENT_BYTES), kind: fc.constantFrom('file', 'directory'), size: uint, mtimeMs: time }), { maxLength: 24 }),
    next: fc.oneof(fc.constant(-1), uint),
  }),
  'catalog-request': fc.record(
    { type: fc.constant('catalog-request'), requestId, cursor: uint, maxDatagramSize: fc.integer({ min: MIN_DATAGRAM_BYTES, max: MAX_DATAGRAM_BYTES }) },
    { requiredKeys: ['type', 'requestId', 'cursor'] },
  ),
  catalog: fc.record({
    type: fc.constant('catalog'),
    requestId,
    generation: uint,
    entries: fc.array(fc.tuple(text(MAX_PATH_BYTES), fc.constantFrom('f' as const, 'd' as const), uint, time), { maxLength: 24 }),
    next: fc.oneof(fc.constant(-1), uint),
    complete: fc.boolean(),
  }),
  error: fc.record({
    type: fc.constant('error'),
    requestId,
    code: fc.constantFrom('not-found', 'stale', 'unreadable', 'bad-request', 'io', 'busy'),
    message: text(MAX_MESSAGE_LENGTH),
  }),
};

export const PACKET_TYPES = Object.keys(arbitraries) as PacketType[];

/** Any valid packet, of any kind. */
export const anyPacket: fc.Arbitrary<Packet> = fc.oneof(...PACKET_TYPES.map((type): fc.Arbitrary<Packet> => arbitraries[type]));

/** Every field name any packet has: maps built from these reach deep into each validator. */
const FIELD_NAMES = ['name', 'cookie', 'heartbeatMs', 'known', 'requestId', 'path', 'kind', 'size', 'mtimeMs', 'version', 'chunk', 'chunkSize', 'hasNext', 'md5', 'data', 'cursor', 'maxDatagramSize', 'entries', 'next', 'code', 'message', 'catalog', 'reason', 'retryAfterMs', 'generation', 'complete'];

/** Maps with a real `type` and the real field names, holding values of any msgpack type. */
export const hostileMap: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.oneof(fc.constantFrom(...PACKET_TYPES), fc.anything()),
    fc.dictionary(fc.constantFrom(...FIELD_NAMES, '__proto__', 'constructor'), fc.oneof(fc.anything({ withTypedArray: true, maxDepth: 3 }), uint, fc.double(), fc.uint8Array({ maxLength: 40 }))),
  )
  .map(([type, fields]) => ({ ...fields, type }));

export type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number };

/** Small edits at positions given as fractions of the datagram's length. */
export const mutations: fc.Arbitrary<Mutation[]> = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
    fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
  ),
  { minLength: 1, maxLength: 4 },
);

export function mutate(datagram: Uint8Array, edits: readonly Mutation[]): Buffer {
  let out = Buffer.from(datagram);
  for (const edit of edits) {
    const at = out.length === 0 ? 0 : edit.at % out.length;
    switch (edit.op) {
      case 'flip':
        if (out.length > 0) out[at] = out[at]! ^ (1 << edit.bit);
        break;
      case 'set':
        if (out.length > 0) out[at] = edit.value;
        break;
      case 'truncate':
        out = out.subarray(0, at);
        break;
      case 'insert':
        out = Buffer.concat([out.subarray(0, at), edit.bytes, out.subarray(at)]);
        break;
      case 'delete':
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + edit.length)]);
        break;
    }
  }
  return out;
}

/** The same msgpack settings as the protocol's, to build bodies the decoder has to look into. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'number' });

/** An unauthenticated frame header (magic, version 1, no flags). */
export const FRAME_HEADER = Buffer.from([0x48, 0x47, 0x01, 0x00]);

/** A frame around any msgpack-able value, valid or not as a packet; throws for values msgpack cannot carry. */
export function rawFrame(value: unknown): Buffer {
  return Buffer.concat([FRAME_HEADER, packr.pack(value)]);
}

/** A comparable form of a packet: byte fields as hex, -0 as 0. */
export function canonical(packet: Packet): string {
  // The holder's raw value: JSON.stringify hands the replacer a Buffer already turned into JSON.
  return JSON.stringify(packet, function (this: Record<string, unknown>, key: string, value: unknown) {
    const raw = this[key];
    return raw instanceof Uint8Array ? `bytes:${Buffer.from(raw).toString('hex')}` : value;
  });
}
