/**
 * The generator checked against queueing theory: `httpgw-load mm1-check` drives the M/M/1 target
 * (mu = 200/s, its own process) with Poisson load at rho = 0.3, 0.5, 0.7, 0.9 and compares mean,
 * p50 and p99 response times with 1/(mu - lambda), ln 2/(mu - lambda) and ln 100/(mu - lambda).
 *
 * Sample sizes (see mm1-check.ts and the README): the raw figures of an M/M/1 queue are too noisy
 * for 10 % in under a minute (rho 0.9 would need about 600,000 requests for the mean at 4 standard
 * deviations), so the tolerance applies to the control-variate figures, measured - exact path +
 * theory, whose noise is the measurement's own. 8 s per rho is 480 to 1,440 measured requests.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../src/driver.js';
import { lindleyPath } from '../src/mm1-check.js';
import type { Mm1Row } from '../src/report.js';
import { runBin } from './run-bin.js';

describe('M/M/1', () => {
  it('the exact path is Lindley’s recursion over the intended arrivals and the server’s draws', () => {
    // Arrivals at 0, 1, 10 ms; service 5, 5, 2 ms; the second waits 4 ms, the third none.
    const s = (seq: number, intendedMs: number, serviceUs: number): Sample => ({ intendedMs, latencyMs: 0, header: `${seq} ${serviceUs}`, measured: true });
    const path = lindleyPath([s(1, 1, 5000), s(0, 0, 5000), s(2, 10, 2000)]);
    expect(path.sojournMs).toEqual([5, 9, 2]);
    expect(path.serviceMs).toEqual([5, 5, 2]);
    // The server took them in the other order (the generator sent the first late): the ideal
    // queue still serves in intended order, so the lateness is not cancelled out.
    const swapped = lindleyPath([s(0, 1, 3000), s(1, 0, 5000)]);
    expect(swapped.sojournMs).toEqual([3, 7]);
  });

  it('measured response times agree with theory at rho 0.3, 0.5, 0.7 and 0.9', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loadgen-mm1-'));
    try {
      const r = await runBin(['mm1-check', '--mu', '200', '--rho', '0.3,0.5,0.7,0.9', '--duration', '8s', '--warmup', '1s', '--json', join(dir, 'mm1.json')], 110_000);
      // The table goes to the test log: the figures of each CI run are worth seeing.
      process.stdout.write(r.stdout);
      const report = JSON.parse(await readFile(join(dir, 'mm1.json'), 'utf8')) as { mm1: Mm1Row[] };
      expect(report.mm1.map((row) => row.rho)).toEqual([0.3, 0.5, 0.7, 0.9]);
      for (const row of report.mm1) {
        const rate = 200 - row.lambda;
        expect(row.theory.meanMs).toBeCloseTo(1000 / rate, 9);
        // The target's service times are exponential with mean 1/mu: 4 standard errors.
        expect(Math.abs(row.serviceMeanMs - 5)).toBeLessThan((4 * 5) / Math.sqrt(row.samples));
        expect(row.samples).toBeGreaterThan(0.8 * row.lambda * 8);
        expect(Math.abs(row.corrected.meanMs / row.theory.meanMs - 1), `rho ${row.rho} mean`).toBeLessThanOrEqual(0.1);
        expect(Math.abs(row.corrected.p50Ms / row.theory.p50Ms - 1), `rho ${row.rho} p50`).toBeLessThanOrEqual(0.15);
        expect(Math.abs(row.corrected.p99Ms / row.theory.p99Ms - 1), `rho ${row.rho} p99`).toBeLessThanOrEqual(0.15);
        expect(row.pass).toBe(true);
      }
      expect(r.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
