import { describe, expect, it } from 'vitest';
import { ReadBuffers } from '../src/store/read-buffers.js';

describe('ReadBuffers', () => {
  it('hands a released buffer out again, cut to the length asked for', () => {
    const buffers = new ReadBuffers();
    const first = buffers.take(61_440);
    expect(first.length).toBe(61_440);
    buffers.release(first);
    const again = buffers.take(1_000);
    expect(again.length).toBe(1_000);
    expect(again.buffer).toBe(first.buffer);
  });

  it('never hands out one buffer twice at once, however often it is released', () => {
    const buffers = new ReadBuffers();
    const a = buffers.take(4_096);
    buffers.release(a);
    buffers.release(a); // a second release of the same read is ignored
    const b = buffers.take(4_096);
    const c = buffers.take(4_096);
    expect(b.buffer).not.toBe(c.buffer);
  });

  it('ignores buffers it did not lend, and grows a buffer that is too short', () => {
    const buffers = new ReadBuffers();
    buffers.release(Buffer.alloc(100_000));
    expect(buffers.freeCount).toBe(0);
    const small = buffers.take(1_000);
    buffers.release(small);
    const large = buffers.take(60_000);
    expect(large.length).toBe(60_000);
    expect(large.buffer.byteLength).toBeGreaterThanOrEqual(60_000);
  });

  it('keeps at most maxFree buffers for reuse', () => {
    const buffers = new ReadBuffers(2);
    const taken = [buffers.take(10), buffers.take(10), buffers.take(10)];
    for (const buffer of taken) buffers.release(buffer);
    expect(buffers.freeCount).toBe(2);
  });
});
