/**
 * A series of open-loop runs at increasing rates: the latency vs offered load curve (the "hockey
 * stick") and the highest rate whose p99 stays under a target.
 */
import { runLoad, type RunInit } from './driver.js';
import type { RunEntry } from './report.js';
import { constantRate, type Arrival } from './schedule.js';

/** "100,200,400" or "FROM:TO:COUNT" (COUNT rates evenly spaced from FROM to TO). */
export function parseRates(text: string): number[] {
  const range = /^\s*([\d.]+)\s*:\s*([\d.]+)\s*:\s*(\d+)\s*$/.exec(text);
  let rates: number[];
  if (range) {
    const [from, to, count] = [Number(range[1]), Number(range[2]), Number(range[3])];
    rates = Array.from({ length: count }, (_, i) => (count === 1 ? from : from + ((to - from) * i) / (count - 1)));
  } else rates = text.split(',').map((s) => Number(s.trim()));
  if (rates.length === 0 || rates.some((r) => !Number.isFinite(r) || r <= 0)) throw new RangeError(`invalid rates "${text}" (e.g. 100,200,400 or 100:1000:10)`);
  return rates;
}

/** Passes when p99 is under the target and nothing failed (an error is not a fast answer). */
export const meetsSlo = (e: RunEntry, p99Ms: number): boolean => e.result.latency.p99Ms < p99Ms && Object.values(e.result.errors).every((n) => n === 0) && e.result.completed > 0;

/** The highest rate that met the target, looking no further than the first rate that did not. */
export function highestRateUnder(runs: readonly RunEntry[], p99Ms: number): number | undefined {
  let best: number | undefined;
  for (const e of [...runs].sort((a, b) => a.offered - b.offered)) {
    if (!meetsSlo(e, p99Ms)) break;
    best = e.offered;
  }
  return best;
}

export interface SweepInit extends Omit<RunInit, 'mode'> {
  rates: readonly number[];
  arrival: Arrival;
  /** Stop after this many rates in a row missed the target (0: run them all). */
  stopAfterMisses?: number;
  p99Ms: number;
  onRate?: (rate: number) => void;
}

export async function runSweep(init: SweepInit): Promise<RunEntry[]> {
  const runs: RunEntry[] = [];
  let misses = 0;
  for (const rate of init.rates) {
    init.onRate?.(rate);
    const result = await runLoad({ ...init, mode: { kind: 'open', arrival: init.arrival, rate: constantRate(rate) } });
    const entry = { label: `${rate} req/s`, offered: rate, result };
    runs.push(entry);
    misses = meetsSlo(entry, init.p99Ms) ? 0 : misses + 1;
    if (init.stopAfterMisses && misses >= init.stopAfterMisses) break;
  }
  return runs;
}
