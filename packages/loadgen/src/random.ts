/** A seedable uniform source (tests and repeatable runs) and the exponential draws built on it. */

/** Uniform in [0, 1). */
export type Uniform = () => number;

/**
 * mulberry32: 32-bit state, full period 2^32, passes the usual small-crush style checks; plenty for
 * inter-arrival and service-time draws, and repeatable from a seed (Math.random is not).
 */
export function seededUniform(seed: number): Uniform {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniform source: seeded when a seed is given, else Math.random. */
export const uniformSource = (seed?: number): Uniform => (seed === undefined ? Math.random : seededUniform(seed));

/** An exponentially distributed draw of rate `rate` (mean 1/rate), by inversion. */
export function exponential(uniform: Uniform, rate: number): number {
  // 1 - u is in (0, 1], so the log is finite.
  return -Math.log(1 - uniform()) / rate;
}
