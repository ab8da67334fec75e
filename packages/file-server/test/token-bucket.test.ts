import { describe, expect, it } from 'vitest';
import { TokenBucket, defaultBurst } from '../src/pacing/token-bucket.js';

describe('TokenBucket', () => {
  it('lets a burst through, then spaces sends at the rate', () => {
    let now = 0;
    const bucket = new TokenBucket(1_000_000, 100_000, () => now); // 1 MB/s, 100 kB burst
    expect(bucket.reserve(60_000)).toBe(0);
    expect(bucket.reserve(40_000)).toBe(0);
    // Empty: 60 kB more is 60 ms away; the next 60 kB is queued behind it.
    expect(bucket.reserve(60_000)).toBeCloseTo(60);
    expect(bucket.reserve(60_000)).toBeCloseTo(120);
    now = 120;
    expect(bucket.reserve(10_000)).toBeCloseTo(10);
  });

  it('keeps the average rate when timers fire late: the lateness is made up, up to the burst', () => {
    let now = 0;
    const bucket = new TokenBucket(100_000_000, 1_000_000, () => now); // 100 MB/s
    bucket.reserve(1_000_000);
    let sent = 0;
    while (now < 1_000) {
      const wait = bucket.reserve(60_000);
      now += wait > 0 ? Math.max(1, Math.ceil(wait)) : 0; // a timer's millisecond grain
      sent += 60_000;
    }
    expect(sent / now).toBeGreaterThan(95_000); // bytes per ms: 95 MB/s or more
    expect(sent / now).toBeLessThan(102_000);
  });

  it('refuses a rate or burst that is not a positive number', () => {
    expect(() => new TokenBucket(0, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(1, Number.NaN)).toThrow(RangeError);
    expect(defaultBurst(100_000_000, 65_507)).toBe(1_000_000);
    expect(defaultBurst(1_000_000, 65_507)).toBe(65_507);
  });
});
