import { describe, expect, it } from 'vitest';
import { RttEstimator } from '../src/udp/rtt-estimator.js';

// RFC 6298 with α = 1/8, β = 1/4, K = 4, G = granularityMs; values worked out by hand.

describe('RttEstimator', () => {
  it('uses the initial RTO before any sample', () => {
    const rtt = new RttEstimator({ initialRtoMs: 300 });
    expect(rtt.smoothedMs).toBeUndefined();
    expect(rtt.rtoMs).toBe(300);
  });

  it('follows RFC 6298 on the first and later samples', () => {
    const rtt = new RttEstimator({ minRtoMs: 1, granularityMs: 5 });
    rtt.sample(100); // SRTT = 100, RTTVAR = 50, RTO = 100 + 4·50
    expect(rtt.smoothedMs).toBe(100);
    expect(rtt.rtoMs).toBe(300);
    rtt.sample(60); // RTTVAR = 3/4·50 + 1/4·|100 − 60| = 47.5; SRTT = 7/8·100 + 1/8·60 = 95
    expect(rtt.smoothedMs).toBe(95);
    expect(rtt.rtoMs).toBe(95 + 4 * 47.5);
  });

  it('never lets the variance term fall below the clock granularity', () => {
    const rtt = new RttEstimator({ minRtoMs: 1, granularityMs: 5 });
    for (let i = 0; i < 100; i++) rtt.sample(10);
    expect(rtt.smoothedMs).toBeCloseTo(10);
    expect(rtt.rtoMs).toBeCloseTo(15); // SRTT + G: RTTVAR has decayed to almost 0
  });

  it('clamps the RTO between its bounds', () => {
    const rtt = new RttEstimator({ minRtoMs: 20, maxRtoMs: 1_000 });
    rtt.sample(1);
    expect(rtt.rtoMs).toBe(20);
    rtt.sample(5_000);
    expect(rtt.rtoMs).toBe(1_000);
  });

  it('doubles the RTO on each timeout, up to the bound, and forgets the backoff on the next sample', () => {
    const rtt = new RttEstimator({ minRtoMs: 20, maxRtoMs: 500, granularityMs: 1 });
    rtt.sample(10); // RTO = 10 + 4·5 = 30
    expect(rtt.rtoMs).toBe(30);
    rtt.onTimeout();
    expect(rtt.rtoMs).toBe(60);
    rtt.onTimeout();
    expect(rtt.rtoMs).toBe(120);
    for (let i = 0; i < 10; i++) rtt.onTimeout();
    expect(rtt.rtoMs).toBe(500);
    rtt.sample(10); // RTTVAR = 3/4·5 = 3.75, SRTT = 10: RTO = 25, backoff gone
    expect(rtt.rtoMs).toBe(25);
  });

  it('backs off from the initial RTO when no sample ever came', () => {
    const rtt = new RttEstimator({ initialRtoMs: 200, maxRtoMs: 4_000 });
    rtt.onTimeout();
    rtt.onTimeout();
    expect(rtt.rtoMs).toBe(800);
  });
});
