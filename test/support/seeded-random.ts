/**
 * mulberry32: a tiny, fast, well-distributed 32-bit PRNG. Not cryptographic; it exists so that
 * tests can reproduce the exact same sequence of "random" decisions from a seed.
 *
 * Returns a function yielding numbers in [0, 1). Any seed is accepted (it is reduced to 32 bits;
 * NaN becomes 0).
 */
export function createSeededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
