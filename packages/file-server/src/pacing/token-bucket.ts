/**
 * A sending-rate cap (`--max-rate`): `rate` bytes per second on average, bursts of at most `burst`
 * bytes. Senders reserve before they send and wait what `reserve` says: the bucket may go into debt,
 * so reservations are served in the order they were made and a timer that fires late (Node's
 * timers have a millisecond's grain; a 100 MB/s cap sends a chunk every 0.6 ms) is made up by the
 * next sends instead of lowering the rate.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(Number.isFinite(rate) && rate > 0)) throw new RangeError(`rate must be a positive number of bytes per second, got ${rate}`);
    if (!(Number.isFinite(burst) && burst > 0)) throw new RangeError(`burst must be a positive number of bytes, got ${burst}`);
    this.tokens = burst;
    this.updatedAt = now();
  }

  /** Takes `bytes` from the bucket; returns how many ms to wait before sending them (0: now). */
  reserve(bytes: number): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) * this.rate) / 1000);
    this.updatedAt = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }
}

/** The default burst for a rate: 10 ms of sending, and never less than one datagram. */
export function defaultBurst(rate: number, datagramBytes: number): number {
  return Math.max(datagramBytes, rate / 100);
}
