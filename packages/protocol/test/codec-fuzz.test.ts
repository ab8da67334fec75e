import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_CHUNKS_PER_REQUEST,
  MAX_CHUNK_SIZE,
  MAX_DATAGRAM_BYTES,
  MAX_SAFE_UINT,
  MIN_CHUNK_SIZE,
  ProtocolError,
  decode,
  decodeFrame,
  encode,
  encodeParts,
  keyFromSecret,
  sealFrame,
  type Packet,
} from '@httpgw/protocol';
import { FRAME_HEADER, PACKET_TYPES, anyPacket, arbitraries, canonical, hostileMap, mutate, mutations, rawFrame } from './arbitraries.js';

const key = keyFromSecret(Buffer.from('fuzzing secret, 32 bytes or so!!'));
const keys = new Map([[key.id, key]]);
const seal = { key, timestampMs: 1_700_000_000_000, nonce: 42n };
const header = FRAME_HEADER;

/**
 * What any datagram must do to `decode`: come back as a packet that survives its own round trip,
 * or throw a ProtocolError. Anything else (a TypeError, a RangeError, a hang) is a bug.
 */
function decodesOrRefuses(datagram: Uint8Array, withKeys = false): Packet | undefined {
  let packet: Packet;
  try {
    packet = withKeys ? decodeFrame(datagram, keys).packet : decode(datagram);
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return undefined;
  }
  expect(canonical(decode(encode(packet)))).toBe(canonical(packet));
  return packet;
}

describe('encode → decode', () => {
  it.each(PACKET_TYPES)('is the identity for any valid %s packet', (type) => {
    fc.assert(
      fc.property(arbitraries[type], (packet) => {
        expect(canonical(decode(encode(packet)))).toBe(canonical(packet));
      }),
      { numRuns: 200 },
    );
  });

  it('is the identity through an authenticated frame, and returns the auth header', () => {
    fc.assert(
      fc.property(anyPacket, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 0, max: 2 ** 52 }), (packet, nonce, timestampMs) => {
        const { packet: decoded, auth } = decodeFrame(encode(packet, { key, timestampMs, nonce }), keys);
        expect(canonical(decoded)).toBe(canonical(packet));
        expect(auth).toEqual({ keyId: key.id, timestampMs, nonce });
      }),
      { numRuns: 300 },
    );
  });

  it('encodeParts gives, byte for byte, the datagram encode gives, signed or not', () => {
    const chunk = fc.record({
      type: fc.constant('chunk' as const),
      requestId: fc.integer({ min: 0, max: MAX_SAFE_UINT }),
      chunk: fc.integer({ min: 0, max: MAX_SAFE_UINT }),
      hasNext: fc.boolean(),
      md5: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      data: fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.constantFrom(255, 256, 1_023, 1_024, 65_535, MAX_CHUNK_SIZE), fc.integer({ min: 0, max: MAX_CHUNK_SIZE })).map((n) => Buffer.alloc(n, n & 0xff)),
    });
    fc.assert(
      fc.property(fc.oneof(chunk, anyPacket), fc.boolean(), (packet, signed) => {
        const options = signed ? seal : undefined;
        const parts = encodeParts(packet, options);
        expect(Buffer.concat(parts).equals(encode(packet, options))).toBe(true);
        if (packet.type === 'chunk' && packet.data.length >= 1_024) expect(parts).toContain(packet.data); // sent from where it is, not copied
      }),
      { numRuns: 300 },
    );
  });

  it('carries a full-size chunk within one UDP datagram, signed or not', () => {
    const data = Buffer.alloc(MAX_CHUNK_SIZE, 0xab);
    const packet: Packet = { type: 'chunk', requestId: 2 ** 48 - 1, chunk: 2 ** 40, hasNext: true, md5: Buffer.alloc(16, 1), data };
    for (const datagram of [encode(packet), encode(packet, seal)]) {
      expect(datagram.length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
    }
    expect(Buffer.from((decode(encode(packet)) as typeof packet).data).equals(data)).toBe(true);
  });
});

describe('decode of hostile input throws only ProtocolError', () => {
  it('on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => void decodesOrRefuses(bytes)), { numRuns: 3_000 });
  });

  it('on arbitrary bytes behind a valid frame header (so msgpack sees them)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => void decodesOrRefuses(Buffer.concat([header, bytes]))), { numRuns: 3_000 });
  });

  it('on msgpack maps with real types and field names but values of any type', () => {
    fc.assert(fc.property(hostileMap, (map) => void decodesOrRefuses(rawFrame(map))), { numRuns: 3_000 });
  });

  it('on any msgpack value at all', () => {
    fc.assert(fc.property(fc.anything({ withTypedArray: true, withMap: true, withSet: true, withDate: true, withBigInt: true }), (value) => {
      let datagram: Buffer;
      try {
        datagram = rawFrame(value);
      } catch {
        return; // not every JS value has a msgpack form; those cannot arrive over the wire either
      }
      decodesOrRefuses(datagram);
    }), { numRuns: 2_000 });
  });

  it('on mutated real datagrams of every kind', () => {
    fc.assert(fc.property(anyPacket, mutations, (packet, edits) => void decodesOrRefuses(mutate(encode(packet), edits))), { numRuns: 5_000 });
  });

  it('refuses a chunk-request count out of range or running past the largest id or chunk number', () => {
    const base = { type: 'chunk-request', requestId: 1, path: 'a', version: 'v', chunk: 0, chunkSize: MIN_CHUNK_SIZE };
    for (const bad of [{ count: 0 }, { count: MAX_CHUNKS_PER_REQUEST + 1 }, { count: 1.5 }, { count: '2' }, { requestId: MAX_SAFE_UINT, count: 1 }, { chunk: MAX_SAFE_UINT - 1, count: 2 }]) {
      expect(() => decode(rawFrame({ ...base, ...bad })), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'PROTO_ERR_BAD_FIELD' }));
    }
    expect(decode(rawFrame({ ...base, count: MAX_CHUNKS_PER_REQUEST }))).toMatchObject({ count: MAX_CHUNKS_PER_REQUEST });
    expect(decode(rawFrame(base))).not.toHaveProperty('count');
  });

  it('on deep nesting, huge declared lengths, oversized datagrams and prototype keys', () => {
    const cases: Buffer[] = [
      Buffer.concat([header, Buffer.alloc(60_000, 0x91), Buffer.from([0xc0])]), // 60,000 nested arrays
      Buffer.concat([header, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])]), // array32 of 4 G items, no items
      Buffer.concat([header, Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff])]), // map32 of 4 G entries
      Buffer.concat([header, Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff])]), // bin32 of 4 GiB
      Buffer.concat([header, Buffer.from([0xc7, 0x00, 0x72])]), // a msgpackr record extension
      Buffer.concat([header, Buffer.from([0xd6, 0xff, 0, 0, 0, 1])]), // a timestamp
      Buffer.concat([header, Buffer.from([0xc1])]), // the never-used byte
      Buffer.concat([rawFrame({ type: 'hello', name: 'x' }), Buffer.from([0])]), // trailing garbage
      rawFrame(JSON.parse('{"__proto__":{"type":"hello","name":"x"}}')),
      rawFrame({ type: 'toString' }),
      rawFrame({ type: 'chunk', requestId: 2 ** 64, chunk: 0, hasNext: false, md5: Buffer.alloc(16), data: Buffer.alloc(0) }),
      rawFrame({ type: 'meta', requestId: 1, kind: 'file', size: -1, mtimeMs: 0, version: '' }),
      rawFrame({ type: 'meta', requestId: 1, kind: 'file', size: 1, mtimeMs: Number.NaN, version: '' }),
      rawFrame({ type: 'chunk-request', requestId: 1, path: 'a', version: 'v', chunk: 0, chunkSize: MAX_CHUNK_SIZE + 1 }),
      rawFrame({ type: 'list', requestId: 1, entries: Array.from({ length: 513 }, () => ({ name: 'a', kind: 'file', size: 0, mtimeMs: 0 })), next: -1 }),
      Buffer.alloc(MAX_DATAGRAM_BYTES + 1, 0x48),
      Buffer.alloc(0),
    ];
    for (const datagram of cases) expect(decodesOrRefuses(datagram)).toBeUndefined();
    expect(({} as Record<string, unknown>).type).toBeUndefined();
  });
});

describe('authenticated frames', () => {
  it('refuse every mutation: the MAC covers the header, the auth header and the body', () => {
    fc.assert(
      fc.property(anyPacket, mutations, (packet, edits) => {
        const sealed = encode(packet, seal);
        const mutated = mutate(sealed, edits);
        fc.pre(!mutated.equals(sealed));
        expect(decodesOrRefuses(mutated, true)).toBeUndefined();
      }),
      { numRuns: 3_000 },
    );
  });

  it('refuse arbitrary bytes behind an AUTH header', () => {
    const authHeader = Buffer.from([0x48, 0x47, 0x01, 0x01]);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      expect(decodesOrRefuses(Buffer.concat([authHeader, bytes]), true)).toBeUndefined();
    }), { numRuns: 2_000 });
  });

  it('name each refusal with its own code', () => {
    const hello: Packet = { type: 'hello', name: 'srv' };
    const other = keyFromSecret(Buffer.from('another secret of at least 16 B'));
    const codeOf = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return error instanceof ProtocolError ? error.code : `not a ProtocolError: ${String(error)}`;
      }
      return 'accepted';
    };
    const sealed = encode(hello, seal);
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 40]! ^= 1;
    expect(codeOf(() => decodeFrame(encode(hello), keys))).toBe('PROTO_ERR_AUTH_REQUIRED');
    expect(codeOf(() => decodeFrame(sealed))).toBe('PROTO_ERR_AUTH_UNEXPECTED');
    expect(codeOf(() => decodeFrame(encode(hello, { ...seal, key: other }), keys))).toBe('PROTO_ERR_BAD_KEY');
    expect(codeOf(() => decodeFrame(flipped, keys))).toBe('PROTO_ERR_BAD_MAC');
    expect(codeOf(() => decodeFrame(sealed.subarray(0, 40), keys))).toBe('PROTO_ERR_TOO_SHORT');
    expect(codeOf(() => decodeFrame(Buffer.from([0x48, 0x47, 0x02, 0x00]), keys))).toBe('PROTO_ERR_BAD_VERSION');
    expect(codeOf(() => decodeFrame(Buffer.from([0x48, 0x47, 0x01, 0x80]), keys))).toBe('PROTO_ERR_BAD_FLAGS');
    expect(codeOf(() => decodeFrame(Buffer.from([0x00, 0x00, 0x01, 0x00])))).toBe('PROTO_ERR_BAD_MAGIC');
    expect(codeOf(() => decodeFrame(sealFrame(Buffer.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa3, 0x66, 0x6f, 0x6f]), seal), keys))).toBe('PROTO_ERR_UNKNOWN_TYPE');
  });

  it('refuse a secret shorter than 16 bytes', () => {
    expect(() => keyFromSecret(Buffer.from('short'))).toThrow(RangeError);
  });
});
