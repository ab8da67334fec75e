/**
 * Buffers for chunk reads, used again once their datagram is sent. A fresh 60 KiB buffer per chunk
 * costs a malloc, page faults on first touch and, freed only at V8's next garbage collection, the
 * heap trimming that makes the next ones fault again: about a tenth of a file server's CPU. A
 * buffer comes back when the socket is done with it (the send callback), never earlier.
 */
export class ReadBuffers {
  private readonly free: Buffer[] = [];
  private readonly maxFree: number;
  /** Buffers handed out and not yet released, by their memory, so release() cannot take one twice or a stranger's. */
  private readonly lent = new WeakMap<object, Buffer>();

  /** `maxFree`: buffers kept for reuse at most; more released than that are left to the collector. */
  constructor(maxFree = 256) {
    this.maxFree = maxFree;
  }

  /** A buffer of exactly `length` bytes, contents undefined. */
  take(length: number): Buffer {
    let whole = this.free.pop();
    if (whole === undefined || whole.length < length) whole = Buffer.allocUnsafeSlow(Math.max(length, whole?.length ?? 0));
    this.lent.set(whole.buffer, whole);
    return whole.length === length ? whole : whole.subarray(0, length);
  }

  /** `buffer` (from take) is no longer read by anyone: it may be handed out again. */
  release(buffer: Buffer): void {
    const whole = this.lent.get(buffer.buffer);
    if (whole === undefined) return;
    this.lent.delete(buffer.buffer);
    if (this.free.length < this.maxFree) this.free.push(whole);
  }

  get freeCount(): number {
    return this.free.length;
  }
}
