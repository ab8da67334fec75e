/**
 * Proves the generator right on a system whose answer is known: Poisson load at rho * mu against
 * the M/M/1 target (its own process, so the two event loops do not share a thread), then measured
 * response times beside theory.
 *
 * Why a corrected figure as well: an M/M/1 queue near saturation is very noisy. By simulation,
 * 1,800 requests at rho = 0.9 give a mean whose spread between runs is about 35 %; a raw mean
 * within 10 % at four standard deviations would need some 600,000 requests there (at any mu). The noise is in the queue, not in the measurement, so the check removes it
 * with a control variate: from the run's own intended send times and the server's own service
 * draws (reported per answer), the Lindley recursion gives the exact response times an ideal
 * client would have measured on this very sample path (intended arrivals in order, service draws
 * in the order the server made them). measured - path + theory then has the
 * expectation of measured (the path's expectation is the theory) but only the measurement's own
 * noise, which is what the check is about: a generator that sends late, hides queueing
 * (coordinated omission) or adds overhead moves it away from the theory. What it keeps is what
 * the client sees on top of the server's queue: a loopback round trip and wake-ups, milliseconds
 * on a small VM, hence MM1_DEFAULT_MU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { runLoad, type Sample } from './driver.js';
import { MM1_HEADER } from './mm1-target.js';
import { uniformSource } from './random.js';
import type { Mm1Row, RunEntry } from './report.js';
import { constantRate } from './schedule.js';
import { createWorkload } from './workload.js';

export interface Mm1CheckInit {
  mu: number;
  rhos: readonly number[];
  durationMs: number;
  warmupMs: number;
  /** The generator's connection pool (see MM1_MAX_CONNECTIONS). */
  maxConnections?: number;
  seed?: number;
  /** Tolerances (fractions): mean, p50 and p99. */
  tolerance?: { mean: number; p50: number; p99: number };
  log?: (line: string) => void;
}

export const DEFAULT_TOLERANCE = { mean: 0.1, p50: 0.15, p99: 0.15 };

/**
 * The default service rate. Every answer also carries a fixed cost the theory knows nothing of: a
 * loopback HTTP round trip between two Node processes plus their timer and wake-up delays. On a
 * 2-core VM that was measured at 2.4 ms on average (4-9 ms with other work on the cores, 10-15 ms
 * with them oversubscribed), against which the tightest tolerance, 10 % of the mean at rho 0.3
 * (0.1 / (0.7 mu)), is 0.7 ms at mu = 200, 14 ms at mu = 10. See the README.
 */
export const MM1_DEFAULT_MU = 10;

/**
 * A small pool, so that requests do wait for a connection (an arrival finds all busy when 4 or
 * more are in the system: rho^4, 66 % of them at rho 0.9, 24 % at 0.7, 1 % at 0.3): the check then
 * proves that this wait counts in the latency (from the intended send time, no coordinated
 * omission). Four still keep the server busy while a freed connection carries the next request
 * over: it could only idle if the three queued services ended within one round trip.
 */
export const MM1_MAX_CONNECTIONS = 4;

const BIN = fileURLToPath(new URL('../bin/httpgw-load.js', import.meta.url));

/** Starts `httpgw-load mm1-target` as a child process and reads its URL from the ready line. */
export async function spawnMm1Target(mu: number, seed?: number): Promise<{ url: string; child: ChildProcess }> {
  const args = [BIN, 'mm1-target', '--mu', String(mu), '--port', '0', ...(seed === undefined ? [] : ['--seed', String(seed)])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`mm1-target exited (${String(code)}) before it was ready`);
  });
  const ready = (async () => {
    for await (const line of lines) {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m?.[1]) return m[1];
    }
    throw new Error('mm1-target closed its output before it was ready');
  })();
  const url = await Promise.race([ready, exited]);
  return { url, child };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function stats(values: readonly number[]): { meanMs: number; p50Ms: number; p99Ms: number; count: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { meanMs: values.reduce((a, b) => a + b, 0) / values.length, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), count: values.length };
}

/**
 * The response times of an ideal FIFO single server on this run: the intended arrivals in order,
 * paired with the server's service draws in the order it drew them (i.i.d., so any pairing is an
 * M/M/1 sample path), through Lindley's recursion. The server's own order is not used: it already
 * carries any lateness of the generator, which the check must see, not cancel.
 */
export function lindleyPath(samples: readonly Sample[]): { sojournMs: number[]; serviceMs: number[]; measured: boolean[] } {
  const draws = samples
    .map((s) => {
      const [seq, us] = (s.header ?? '').split(' ').map(Number);
      return { seq: seq ?? Number.NaN, serviceMs: (us ?? Number.NaN) / 1000 };
    })
    .filter((d) => Number.isFinite(d.seq) && Number.isFinite(d.serviceMs))
    .sort((a, b) => a.seq - b.seq);
  const arrivals = [...samples].sort((a, b) => a.intendedMs - b.intendedMs).slice(0, draws.length);
  let departure = -Infinity;
  const sojournMs: number[] = [];
  arrivals.forEach((a, i) => {
    departure = Math.max(departure, a.intendedMs) + (draws[i]?.serviceMs ?? 0);
    sojournMs.push(departure - a.intendedMs);
  });
  return { sojournMs, serviceMs: draws.map((d) => d.serviceMs), measured: arrivals.map((a) => a.measured) };
}

/** The limit on serviceKs: a false alarm once in 10,000 runs per rho; constant service times (sqrt(n) * 0.63) exceed it from 14 draws on. */
export const SERVICE_KS_LIMIT = 2.3;

/** sqrt(n) times the Kolmogorov-Smirnov distance between the sample and the exponential of rate `perMs`. */
export function exponentialKs(samplesMs: readonly number[], perMs: number): number {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const n = sorted.length;
  let d = 0;
  sorted.forEach((x, i) => {
    const cdf = 1 - Math.exp(-perMs * x);
    d = Math.max(d, (i + 1) / n - cdf, cdf - i / n);
  });
  return Math.sqrt(n) * d;
}

export async function runMm1Check(init: Mm1CheckInit): Promise<{ rows: Mm1Row[]; runs: RunEntry[] }> {
  const tol = init.tolerance ?? DEFAULT_TOLERANCE;
  const rows: Mm1Row[] = [];
  const runs: RunEntry[] = [];
  for (const [i, rho] of init.rhos.entries()) {
    // A fresh server per utilisation: each run starts from an empty queue, as the path does.
    const { url, child } = await spawnMm1Target(init.mu, init.seed === undefined ? undefined : init.seed + 1000 + i);
    try {
      const lambda = rho * init.mu;
      init.log?.(`rho ${rho}: ${lambda} req/s for ${init.durationMs / 1000} s`);
      const result = await runLoad({
        workload: createWorkload({ urls: [new URL(url)], method: 'GET', uniform: uniformSource(init.seed) }),
        mode: { kind: 'open', arrival: 'poisson', rate: constantRate(lambda) },
        durationMs: init.durationMs,
        warmupMs: init.warmupMs,
        maxConnections: init.maxConnections ?? MM1_MAX_CONNECTIONS,
        timeoutMs: 30_000,
        uniform: uniformSource(init.seed === undefined ? undefined : init.seed + i),
        sampleHeader: MM1_HEADER,
      });
      const samples = result.samples ?? [];
      const measured = stats(samples.filter((s) => s.measured).map((s) => s.latencyMs));
      // The path replays the whole run (warm-up too, so its queue state matches), compared on the measured part.
      const path = lindleyPath(samples);
      const ideal = stats(path.sojournMs.filter((_, j) => path.measured[j]));
      const rate = init.mu - lambda;
      const theory = { meanMs: 1000 / rate, p50Ms: (1000 * Math.LN2) / rate, p99Ms: (1000 * Math.log(100)) / rate };
      const corrected = { meanMs: measured.meanMs - ideal.meanMs + theory.meanMs, p50Ms: measured.p50Ms - ideal.p50Ms + theory.p50Ms, p99Ms: measured.p99Ms - ideal.p99Ms + theory.p99Ms };
      const within = (a: number, b: number, t: number) => Math.abs(a - b) <= t * b;
      const errors = Object.values(result.errors).reduce((a, b) => a + b, 0);
      const serviceKs = exponentialKs(path.serviceMs, init.mu / 1000);
      rows.push({
        rho,
        lambda,
        mu: init.mu,
        theory,
        measured,
        path: ideal,
        corrected,
        serviceMeanMs: path.serviceMs.reduce((a, b) => a + b, 0) / path.serviceMs.length,
        serviceKs,
        samples: measured.count,
        pass: errors === 0 && serviceKs < SERVICE_KS_LIMIT && path.sojournMs.length === samples.length && samples.length > 0 && within(corrected.meanMs, theory.meanMs, tol.mean) && within(corrected.p50Ms, theory.p50Ms, tol.p50) && within(corrected.p99Ms, theory.p99Ms, tol.p99),
      });
      runs.push({ label: `rho ${rho} (${lambda} req/s)`, offered: lambda, result });
    } finally {
      child.kill('SIGTERM');
    }
  }
  return { rows, runs };
}
