/**
 * Where the outcome of every request goes: HDR histograms of latency (microseconds, 3 significant
 * digits) for the whole measured window and per second, counters of bytes and errors by kind.
 */
import hdr from 'hdr-histogram-js';

export const ERROR_KINDS = ['status', 'reset', 'timeout', 'connect', 'length', 'checksum', 'other'] as const;
/**
 * status: not 2xx; reset: the connection dropped mid-request; timeout: no full answer within
 * --timeout; connect: no connection (refused, unreachable); length: body shorter or longer than
 * announced/expected; checksum: body differs from the manifest; other: anything else.
 */
export type ErrorKind = (typeof ERROR_KINDS)[number];

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** One second of the run (by completion time), warm-up included and flagged. */
export interface IntervalStats {
  /** Seconds since the start of the run (end of this interval). */
  t: number;
  warmup: boolean;
  /** Requests whose intended send time fell in this second. */
  offered: number;
  completed: number;
  errors: number;
  bytes: number;
  /** Requests sent and not yet answered at the end of the second. */
  inFlight: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export const newHistogram = (): hdr.Histogram => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true });

export function summarize(h: hdr.Histogram): LatencySummary {
  const ms = (us: number) => us / 1000;
  const empty = h.totalCount === 0;
  const at = (p: number) => (empty ? Number.NaN : ms(h.getValueAtPercentile(p)));
  return { count: h.totalCount, meanMs: empty ? Number.NaN : ms(h.mean), p50Ms: at(50), p90Ms: at(90), p99Ms: at(99), p999Ms: at(99.9), maxMs: empty ? Number.NaN : ms(h.maxValue) };
}

/** The latency distribution as (percentile, ms) points, for plots: HdrHistogram's percentile spectrum. */
export function percentileSpectrum(h: hdr.Histogram): Array<[number, number]> {
  if (h.totalCount === 0) return [];
  const points: Array<[number, number]> = [];
  // Halving the distance to 100 % each step: 0, 50, 75, 87.5, ... as HdrHistogram's own output does.
  for (let i = 0; i <= 40; i++) {
    const p = 100 - 100 / 2 ** (i / 4);
    if (p > 100 * (1 - 1 / h.totalCount)) break;
    points.push([p, h.getValueAtPercentile(p) / 1000]);
  }
  points.push([100, h.maxValue / 1000]);
  return points;
}

export class Recorder {
  readonly total = newHistogram();
  readonly errors: Record<ErrorKind, number> = Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<ErrorKind, number>;
  readonly intervals: IntervalStats[] = [];
  bytes = 0;
  completed = 0;
  offered = 0;
  private readonly second = newHistogram();
  private secondCounts = { offered: 0, completed: 0, errors: 0, bytes: 0 };

  /** Latency of a response (any status) in ms; `measured` is false for warm-up requests. */
  response(latencyMs: number, bytes: number, measured: boolean): void {
    const us = Math.max(1, Math.round(latencyMs * 1000));
    this.second.recordValue(us);
    this.secondCounts.completed++;
    this.secondCounts.bytes += bytes;
    if (!measured) return;
    this.total.recordValue(us);
    this.completed++;
    this.bytes += bytes;
  }

  error(kind: ErrorKind, measured: boolean): void {
    this.secondCounts.errors++;
    if (measured) this.errors[kind]++;
  }

  intended(measured: boolean): void {
    this.secondCounts.offered++;
    if (measured) this.offered++;
  }

  errorCount(): number {
    return ERROR_KINDS.reduce((a, k) => a + this.errors[k], 0);
  }

  /** Closes the current second. */
  tick(t: number, warmup: boolean, inFlight: number): IntervalStats {
    const s = summarize(this.second);
    const stats: IntervalStats = { t, warmup, ...this.secondCounts, inFlight, p50Ms: s.p50Ms, p90Ms: s.p90Ms, p99Ms: s.p99Ms, maxMs: s.maxMs };
    this.intervals.push(stats);
    this.second.reset();
    this.secondCounts = { offered: 0, completed: 0, errors: 0, bytes: 0 };
    return stats;
  }
}
