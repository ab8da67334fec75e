import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Md5Lanes, md5Many } from '@httpgw/protocol';

const md5 = (data: Uint8Array): Buffer => createHash('md5').update(data).digest();
const hex = (digests: readonly Uint8Array[]): string[] => digests.map((digest) => Buffer.from(digest).toString('hex'));
/** The largest payload of a UDP datagram over IPv4: the longest chunk there can be. */
const MAX_CHUNK = 65_507;

describe.each([4, 8] as const)('Md5Lanes (widest %i)', (widest) => {
  const lanes = new Md5Lanes({ widest });

  it('equals node:crypto for every length from 0 to 300, in batches of every size up to 9', () => {
    const messages = Array.from({ length: 301 }, (_, length) => randomBytes(length));
    for (let size = 1; size <= 9; size++) {
      for (let first = 0; first < messages.length; first += size) {
        const batch = messages.slice(first, first + size);
        expect(hex(lanes.digests(batch))).toEqual(hex(batch.map(md5)));
      }
    }
  });

  it('equals node:crypto on random lengths up to the largest datagram, four of one length at a time', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_CHUNK }), (length) => {
        const batch = Array.from({ length: 4 }, () => randomBytes(length));
        expect(hex(lanes.digests(batch))).toEqual(hex(batch.map(md5)));
      }),
      { numRuns: 300 },
    );
  });

  it('equals node:crypto on batches of mixed lengths, whatever their order, and leaves the messages intact', () => {
    const length = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: MAX_CHUNK }), fc.constantFrom(55, 56, 63, 64, 119, 120, 61_440, MAX_CHUNK));
    fc.assert(
      fc.property(fc.array(length, { maxLength: 24 }), (lengths) => {
        const batch = lengths.map((n) => randomBytes(n));
        const copies = batch.map((message) => Buffer.from(message));
        expect(hex(lanes.digests(batch))).toEqual(hex(batch.map(md5)));
        expect(batch.every((message, i) => message.equals(copies[i]!))).toBe(true);
      }),
      { numRuns: 80 },
    );
  });

  it('equals node:crypto on views into a larger buffer', () => {
    const pool = randomBytes(4 * 70_000);
    const batch = [0, 1, 2, 3, 4].map((i) => pool.subarray(i * 50_001 + i, i * 50_001 + 61_440 - i * 7));
    expect(hex(lanes.digests(batch))).toEqual(hex(batch.map(md5)));
  });

  it('tells which messages match their expected MD5', () => {
    const batch = Array.from({ length: 11 }, (_, i) => randomBytes(61_440 - (i % 3)));
    const expected = batch.map(md5);
    expect(lanes.matches(batch, expected)).toEqual(batch.map(() => true));
    const flipped = 5;
    batch[flipped]![777]! ^= 1;
    expected[2]![15]! ^= 0x80;
    expect(lanes.matches(batch, expected)).toEqual(batch.map((_, i) => i !== flipped && i !== 2));
    // A digest of the wrong size never matches.
    expect(lanes.matches(batch.slice(0, 4), [...expected.slice(0, 3), expected[3]!.subarray(0, 15)])).toEqual([true, true, false, false]);
  });
});

describe('md5Many', () => {
  it('hashes an empty batch, and one message', () => {
    expect(md5Many([])).toEqual([]);
    const one = randomBytes(1_000);
    expect(hex(md5Many([one]))).toEqual(hex([md5(one)]));
  });
});
