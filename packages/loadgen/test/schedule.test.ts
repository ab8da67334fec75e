import { describe, expect, it } from 'vitest';
import { constantRate, intendedTimes, rampRate, stepRates } from '../src/schedule.js';
import { seededUniform } from '../src/random.js';

function gaps(times: Generator<number>, n: number): number[] {
  const out: number[] = [];
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const t = times.next().value as number;
    out.push(t - prev);
    prev = t;
  }
  return out;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: readonly number[]) => {
  const m = mean(xs);
  return xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1);
};

describe('Poisson schedule', () => {
  // 100,000 gaps: the sample mean's relative standard error is 1/sqrt(n) = 0.3 %, the sample
  // variance's sqrt(8/n) = 0.9 % (exponential: fourth central moment 9/rate^4), so 2 % and 5 % are
  // over five standard errors; several seeds so no single lucky stream passes it.
  it.each([1, 2, 3, 4, 5])('has exponential gaps: mean 1/rate and variance 1/rate² (seed %i)', (seed) => {
    const rate = 250;
    const g = gaps(intendedTimes({ arrival: 'poisson', rate: constantRate(rate), uniform: seededUniform(seed) }), 100_000);
    const expectedMean = 1000 / rate;
    expect(mean(g)).toBeGreaterThan(expectedMean * 0.98);
    expect(mean(g)).toBeLessThan(expectedMean * 1.02);
    expect(variance(g) / expectedMean ** 2).toBeGreaterThan(0.95);
    expect(variance(g) / expectedMean ** 2).toBeLessThan(1.05);
    // Memoryless: P(gap > mean) = 1/e.
    const over = g.filter((x) => x > expectedMean).length / g.length;
    expect(Math.abs(over - Math.exp(-1))).toBeLessThan(0.01);
  });

  it('gives counts per second with mean and variance equal to the rate', () => {
    const rate = 50;
    const times = intendedTimes({ arrival: 'poisson', rate: constantRate(rate), uniform: seededUniform(42) });
    const counts = new Array<number>(4000).fill(0);
    for (let t = times.next().value as number; t < 4000 * 1000; t = times.next().value as number) counts[Math.floor(t / 1000)]! += 1;
    expect(mean(counts)).toBeGreaterThan(rate * 0.98);
    expect(mean(counts)).toBeLessThan(rate * 1.02);
    expect(variance(counts) / rate).toBeGreaterThan(0.9);
    expect(variance(counts) / rate).toBeLessThan(1.1);
  });
});

describe('other schedules', () => {
  it('constant arrivals are evenly spaced', () => {
    const g = gaps(intendedTimes({ arrival: 'constant', rate: constantRate(400), uniform: seededUniform(1) }), 1000);
    for (const x of g) expect(x).toBeCloseTo(2.5, 9);
  });

  it('steps hold each rate for an equal part of the run', () => {
    const rate = stepRates([100, 200, 400], 3000);
    expect([rate(0), rate(999), rate(1000), rate(2500), rate(5000)]).toEqual([100, 100, 200, 400, 400]);
    const times = intendedTimes({ arrival: 'constant', rate, uniform: seededUniform(1) });
    const counts = [0, 0, 0];
    for (let t = times.next().value as number; t < 3000; t = times.next().value as number) counts[Math.floor(t / 1000)]! += 1;
    // Within one of 100, 200, 400: the first gap of each step is drawn at the rate before it.
    counts.forEach((c, i) => expect(Math.abs(c - [100, 200, 400][i]!)).toBeLessThanOrEqual(1));
  });

  it('a ramp goes linearly from one rate to the other', () => {
    const rate = rampRate(100, 1100, 10_000);
    expect([rate(0), rate(5000), rate(10_000), rate(20_000)]).toEqual([100, 600, 1100, 1100]);
    const times = intendedTimes({ arrival: 'poisson', rate, uniform: seededUniform(9) });
    let n = 0;
    for (let t = times.next().value as number; t < 10_000; t = times.next().value as number) n++;
    // Expected 6000 (the mean rate times 10 s); Poisson standard deviation about 77.
    expect(Math.abs(n - 6000)).toBeLessThan(400);
  });

  it('rejects a rate that is not positive', () => {
    expect(() => intendedTimes({ arrival: 'poisson', rate: constantRate(0), uniform: Math.random }).next()).toThrow(RangeError);
  });
});
