/**
 * Default datagrams per second accepted from one source, by the gateway and the file server alike:
 * one datagram per chunk, that is 120 MB/s of MTU-safe 1,200-byte chunks or 6 GB/s of 60 KiB ones,
 * beyond what one peer sends in a fast transfer, so it only ever stops a flood.
 */
export const DEFAULT_MAX_DATAGRAM_RATE = 100_000;

export interface RateLimiterInit {
  /** Events (datagrams) one source may send per second, on average. */
  ratePerSecond: number;
  /** Events a source may send at once after a quiet spell (default: one second's worth). */
  burst?: number;
  /** Sources remembered at most; beyond it the longest-known is forgotten (and starts again with a full bucket). */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * A token bucket per source: each source earns `ratePerSecond` tokens a second up to `burst`, and
 * every event spends one; an event finding the bucket empty is refused. Pure: the clock is passed in,
 * so the caller picks it (a monotonic one) and tests drive it by hand.
 *
 * Per-source limits stop one flooding peer; they cannot stop a flood from many (or spoofed) sources,
 * and forgetting a source only ever makes the limiter more lenient, never stricter.
 */
export class RateLimiter {
  readonly ratePerSecond: number;
  private readonly burst: number;
  private readonly maxSources: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(init: RateLimiterInit) {
    if (!(init.ratePerSecond > 0) || !Number.isFinite(init.ratePerSecond)) throw new RangeError('ratePerSecond must be a positive number');
    const burst = init.burst ?? init.ratePerSecond;
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError('burst must be at least 1');
    const maxSources = init.maxSources ?? 65_536;
    if (!Number.isInteger(maxSources) || maxSources < 1) throw new RangeError('maxSources must be a positive integer');
    this.ratePerSecond = init.ratePerSecond;
    this.burst = burst;
    this.maxSources = maxSources;
  }

  /** Sources currently remembered. */
  get size(): number {
    return this.buckets.size;
  }

  /** Spends one token of `source`'s bucket at time `nowMs`; false when there is none left. */
  allow(source: string, nowMs: number): boolean {
    const bucket = this.buckets.get(source);
    if (!bucket) {
      if (this.buckets.size >= this.maxSources) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      this.buckets.set(source, { tokens: this.burst - 1, updatedAt: nowMs });
      return true;
    }
    // A clock that goes backwards earns nothing rather than a negative refill.
    const elapsedMs = Math.max(0, nowMs - bucket.updatedAt);
    bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsedMs * this.ratePerSecond) / 1000);
    bucket.updatedAt = Math.max(bucket.updatedAt, nowMs);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
