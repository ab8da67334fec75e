import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/rate-limiter.js';

function allowedOf(limiter: RateLimiter, source: string, count: number, nowMs: number): number {
  let allowed = 0;
  for (let i = 0; i < count; i++) if (limiter.allow(source, nowMs)) allowed++;
  return allowed;
}

describe('RateLimiter', () => {
  it('lets a burst through, then refills at the rate', () => {
    const limiter = new RateLimiter({ ratePerSecond: 100, burst: 10 });
    expect(allowedOf(limiter, 'a', 50, 0)).toBe(10);
    expect(allowedOf(limiter, 'a', 50, 100)).toBe(10); // 100 ms earn 10 tokens
    expect(allowedOf(limiter, 'a', 50, 150)).toBe(5);
    expect(allowedOf(limiter, 'a', 50, 10_000)).toBe(10); // never more than the burst
  });

  it('keeps sources apart', () => {
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 2 });
    expect(allowedOf(limiter, 'a', 5, 0)).toBe(2);
    expect(allowedOf(limiter, 'b', 5, 0)).toBe(2);
  });

  it('defaults the burst to one second of traffic', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1_000 });
    expect(allowedOf(limiter, 'a', 5_000, 0)).toBe(1_000);
  });

  it('earns nothing from a clock that steps back', () => {
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 1 });
    expect(limiter.allow('a', 1_000)).toBe(true);
    expect(limiter.allow('a', 0)).toBe(false);
    expect(limiter.allow('a', 1_050)).toBe(false);
    expect(limiter.allow('a', 1_100)).toBe(true);
  });

  it('remembers a bounded number of sources', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, maxSources: 100 });
    for (let i = 0; i < 10_000; i++) limiter.allow(`s${i}`, 0);
    expect(limiter.size).toBe(100);
  });

  it('refuses nonsense settings', () => {
    expect(() => new RateLimiter({ ratePerSecond: 0 })).toThrow(RangeError);
    expect(() => new RateLimiter({ ratePerSecond: Number.NaN })).toThrow(RangeError);
    expect(() => new RateLimiter({ ratePerSecond: 10, burst: 0 })).toThrow(RangeError);
    expect(() => new RateLimiter({ ratePerSecond: 10, maxSources: 0 })).toThrow(RangeError);
  });

  it('never lets more through than burst + rate × time (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 200 }),
        (rate, burst, gaps) => {
          const limiter = new RateLimiter({ ratePerSecond: rate, burst });
          let now = 0;
          let allowed = 0;
          for (const gap of gaps) {
            now += gap;
            if (limiter.allow('a', now)) allowed++;
          }
          expect(allowed).toBeLessThanOrEqual(burst + (rate * now) / 1000 + 1e-9);
        },
      ),
    );
  });

  it('lets a steady sender at the rate through untouched', () => {
    const limiter = new RateLimiter({ ratePerSecond: 100_000 });
    // 100,000 datagrams spread evenly over one second, in 1 ms steps of 100.
    let allowed = 0;
    for (let ms = 0; ms < 1_000; ms++) allowed += allowedOf(limiter, 'gateway', 100, ms);
    expect(allowed).toBe(100_000);
  });
});
