/**
 * When requests are meant to be sent: an open-loop schedule of intended send times, independent of
 * how fast the server answers. Poisson arrivals have exponential gaps; constant arrivals have equal
 * ones. The rate may change over the run: steps (equal parts of the run at each rate) or a ramp
 * (linear from one rate to another).
 */
import { exponential, type Uniform } from './random.js';

export type Arrival = 'poisson' | 'constant';

/** Offered rate (requests/s) as a function of the time since the start of the run, in ms. */
export type RateProfile = (elapsedMs: number) => number;

export const constantRate = (rate: number): RateProfile => () => rate;

/** Each rate for an equal share of `durationMs`, in order (the last one holds after that). */
export function stepRates(rates: readonly number[], durationMs: number): RateProfile {
  if (rates.length === 0) throw new RangeError('no step rates');
  const part = durationMs / rates.length;
  return (t) => rates[Math.min(rates.length - 1, Math.max(0, Math.floor(t / part)))] as number;
}

/** Linear from `from` to `to` over `durationMs`. */
export function rampRate(from: number, to: number, durationMs: number): RateProfile {
  return (t) => from + (to - from) * Math.min(1, Math.max(0, t / durationMs));
}

export interface ScheduleInit {
  arrival: Arrival;
  rate: RateProfile;
  uniform: Uniform;
}

/**
 * Intended send times in ms after the start, increasing. The gap after a send is drawn at the rate
 * in force at that moment, which is exact for constant rates and steps (memoryless) and a close
 * approximation for a ramp whose rate changes little within one gap.
 */
export function* intendedTimes(init: ScheduleInit): Generator<number, never> {
  let t = 0;
  for (;;) {
    const rate = init.rate(t);
    if (!(rate > 0)) throw new RangeError(`rate must be positive, got ${rate}`);
    const gapS = init.arrival === 'poisson' ? exponential(init.uniform, rate) : 1 / rate;
    t += gapS * 1000;
    yield t;
  }
}
