import { describe, expect, it } from 'vitest';
import { freeChunk, markFreeable } from '../src/transfer/chunk-memory.js';

const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 20));

describe('chunk memory', () => {
  it('frees a chunk whose ArrayBuffer is its own once marked, and nothing else', async () => {
    await settle();
    const datagram = new ArrayBuffer(61_440 + 60); // a datagram: header, MD5 and data in one buffer
    const chunk = Buffer.from(datagram, 60, 61_440);
    freeChunk(chunk); // not marked: kept
    expect(datagram.byteLength).toBe(61_500);
    markFreeable(chunk);
    freeChunk(chunk);
    expect(datagram.byteLength).toBe(0); // detached: its memory is gone
    expect(chunk.length).toBe(0);
    freeChunk(chunk); // twice: nothing happens
  });

  it('never frees a buffer that other data share (a pool, or a slice of a larger buffer)', () => {
    const pooled = Buffer.from('a small chunk'); // from node's shared 8 KiB pool
    const slice = Buffer.alloc(1 << 20).subarray(0, 61_440);
    for (const chunk of [pooled, slice]) {
      const before = chunk.buffer.byteLength;
      markFreeable(chunk);
      freeChunk(chunk);
      expect(chunk.buffer.byteLength).toBe(before);
    }
    expect(pooled.toString()).toBe('a small chunk');
  });
});
