/**
 * Waiting until an exact moment. setTimeout fires on a 1 ms clock and usually late by up to a
 * millisecond or two; at the M/M/1 check's 5 ms service times that alone would be a 20 % error.
 * So the last stretch is covered by setImmediate turns, which still let I/O run between checks:
 * the price is a busy event loop for at most SPIN_MS before each deadline.
 */
import { performance } from 'node:perf_hooks';

/** Milliseconds on a monotonic clock with sub-millisecond resolution. */
export const nowMs = (): number => performance.now();

/** How long before a deadline the timer hands over to setImmediate polling. */
export const SPIN_MS = 2;

/** Resolves at `targetMs` (on the nowMs clock), or at once when that has passed. */
export function sleepUntil(targetMs: number): Promise<void> {
  return new Promise((resolve) => {
    const step = () => {
      const left = targetMs - nowMs();
      if (left <= 0) resolve();
      else if (left > SPIN_MS) setTimeout(step, left - SPIN_MS);
      else setImmediate(step);
    };
    step();
  });
}
