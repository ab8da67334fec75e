/**
 * httpgw-load (packages/loadgen) on the gateway and its peers: the highest Poisson rate each
 * system holds with p99 < 100 ms, the latency vs load curves (SVG plots beside the results), the
 * agreement with wrk at the same closed-loop concurrency, and the rate Locust reaches on nginx.
 *
 * Every run is the httpgw-load command in its own process, so the generator never shares an event
 * loop with the bench driver.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lineChart } from '../../packages/loadgen/src/svg-chart.js';
import type { SizeName } from '../files.js';
import { REPO_ROOT } from '../httpgw.js';
import { runWrk } from '../measure.js';
import { findBinary } from '../peers.js';
import { ManagedProcess, runCommand } from '../proc.js';
import type { BenchContext, DownloadTarget, HttpgwInstance, Scenario } from '../types.js';
import { SkipScenario, errorText, sharedGatewayOrNote } from './common.js';

const BIN = join(REPO_ROOT, 'packages/loadgen/bin/httpgw-load.js');
const SLO_P99_MS = 100;

/** A gateway with its cache on (the default), started the first time a row needs it, stopped at the end of the scenario. */
let hot: HttpgwInstance | undefined;
async function hotGateway(ctx: BenchContext): Promise<HttpgwInstance | undefined> {
  if (!ctx.httpgw.hasCache || ctx.httpgw.unavailable !== undefined) return undefined;
  hot ??= await ctx.httpgw.start({ servers: 3, cacheSize: 'default' });
  return hot;
}

/** The systems compared, one line each. httpgw hot: the cache warms in the warm-up second of the first rate. */
const SYSTEMS: ReadonlyArray<{ name: string; target(ctx: BenchContext): Promise<DownloadTarget | undefined> }> = [
  { name: 'httpgw cold', target: async (ctx) => (await sharedGatewayOrNote(ctx))?.target },
  { name: 'httpgw hot', target: async (ctx) => (await hotGateway(ctx))?.target },
  { name: 'nginx-proxy', target: async (ctx) => ctx.peers.nginxProxy },
  { name: 'nginx-direct', target: async (ctx) => ctx.peers.nginxDirect },
];

/** First rate tried per file size; it doubles until p99 misses, then the gap is bisected. */
const START_RATE: Partial<Record<SizeName, number>> = { '4 KiB': 25, '1 MiB': 10 };
const SIZES: SizeName[] = ['4 KiB', '1 MiB'];

interface LoadRun {
  offeredRps: number;
  achievedRps: number;
  completed: number;
  errors: Record<string, number>;
  poolExhausted: number;
  maxSendLagMs: number;
  latency: { p50Ms: number; p99Ms: number; maxMs: number; meanMs: number };
}

class Loadgen {
  constructor(private readonly dir: string) {}
  private n = 0;

  async run(args: string[], timeoutS: number): Promise<LoadRun> {
    const json = join(this.dir, `run-${++this.n}.json`);
    const r = await runCommand(process.execPath, [BIN, ...args, '--quiet', '--json', json], { timeoutMs: timeoutS * 1000 });
    if (r.code !== 0) throw new Error(`httpgw-load ${args.join(' ')} failed (exit ${String(r.code)}): ${r.stderr.trim().split('\n')[0] ?? ''}`);
    const report = JSON.parse(readFileSync(json, 'utf8')) as { runs: LoadRun[] };
    const run = report.runs[0];
    if (!run) throw new Error('httpgw-load wrote no run');
    return run;
  }
}

const failed = (r: LoadRun): boolean => r.latency.p99Ms >= SLO_P99_MS || Object.values(r.errors).some((n) => n > 0) || r.completed === 0;

export const openLoop: Scenario = {
  name: 'open-loop',
  title: `Open-loop capacity (httpgw-load, Poisson arrivals, p99 < ${SLO_P99_MS} ms)`,
  async run(ctx: BenchContext): Promise<void> {
    try {
      readFileSync(join(REPO_ROOT, 'packages/loadgen/dist/cli.js'));
    } catch {
      throw new SkipScenario('httpgw-load is not built: run `npx pnpm@10.34.8 build`');
    }
    const dir = await mkdtemp(join(tmpdir(), 'httpgw-bench-loadgen-'));
    try {
      const lg = new Loadgen(dir);
      const durationS = ctx.quick ? 2 : 5;
      const warmupS = 1;
      const refinements = ctx.quick ? 1 : 3;
      ctx.note(`each rate: ${warmupS} s warm-up + ${durationS} s measured; rates double from ${SIZES.map((s) => `${START_RATE[s]}/s (${s})`).join(', ')} until p99 ≥ ${SLO_P99_MS} ms or an error, then ${refinements} bisection step(s) between the last pass and the first miss`);
      const curves: Array<{ size: SizeName; system: string; points: Array<[number, number, number]> }> = [];
      for (const size of SIZES) {
        const file = await ctx.files.ensure(size);
        for (const system of SYSTEMS) {
          const target = await system.target(ctx);
          if (!target) {
            ctx.note(`${system.name} not measured`);
            continue;
          }
          const points: Array<[number, number, number]> = [];
          const at = async (rate: number): Promise<LoadRun> => {
            ctx.progress(`${size} ${system.name} ${rate.toFixed(0)} req/s`);
            const r = await lg.run([target.url(file), '--rate', String(rate), '--duration', `${durationS}s`, '--warmup', `${warmupS}s`, '--max-connections', '1024', '--timeout', '5s'], durationS + warmupS + 30);
            points.push([rate, r.latency.p50Ms, r.latency.p99Ms]);
            return r;
          };
          try {
            let pass: { rate: number; run: LoadRun } | undefined;
            let miss: number | undefined;
            for (let rate = START_RATE[size] ?? 100; rate <= 100_000; rate *= 2) {
              const r = await at(rate);
              if (failed(r)) {
                miss = rate;
                break;
              }
              pass = { rate, run: r };
            }
            for (let i = 0; i < refinements && pass && miss !== undefined; i++) {
              const mid = Math.round(Math.sqrt(pass.rate * miss));
              if (mid <= pass.rate || mid >= miss) break;
              const r = await at(mid);
              if (failed(r)) miss = mid;
              else pass = { rate: mid, run: r };
            }
            curves.push({ size, system: system.name, points: points.sort((a, b) => a[0] - b[0]) });
            const base = { case: size, target: system.name, details: { points, firstMiss: miss } };
            if (!pass) {
              ctx.note(`${system.name} ${size}: even ${START_RATE[size]} req/s missed the target`);
              continue;
            }
            ctx.record({ ...base, metric: `highest Poisson rate, p99 < ${SLO_P99_MS} ms`, unit: 'req/s', better: 'higher', samples: [pass.rate] });
            ctx.record({ ...base, metric: 'p99 at that rate', unit: 'ms', better: 'lower', samples: [pass.run.latency.p99Ms] });
            ctx.record({ ...base, metric: 'p50 at that rate', unit: 'ms', better: 'lower', samples: [pass.run.latency.p50Ms] });
          } catch (err) {
            ctx.note(`${system.name} ${size}: ${errorText(err)}`);
          }
        }
      }
      writePlots(ctx, curves);
      await wrkAgreement(ctx, lg, durationS);
      await locustComparison(ctx, lg, durationS);
    } finally {
      await hot?.stop();
      hot = undefined;
      await rm(dir, { recursive: true, force: true });
    }
  },
};

/** The latency vs load curves as SVG files beside the results, linked from the report. */
function writePlots(ctx: BenchContext, curves: ReadonlyArray<{ size: SizeName; system: string; points: Array<[number, number, number]> }>): void {
  const outDir = join(REPO_ROOT, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  for (const size of SIZES) {
    const mine = curves.filter((c) => c.size === size);
    if (mine.length === 0) continue;
    const svg = lineChart({
      title: `Latency vs offered Poisson load, ${size} files`,
      xLabel: 'offered rate (req/s)',
      yLabel: 'latency (ms)',
      logY: true,
      hLine: { y: SLO_P99_MS, label: `p99 target ${SLO_P99_MS} ms` },
      series: mine.flatMap((c) => [
        { name: `${c.system} p99`, points: c.points.map(([r, , p99]) => [r, p99] as [number, number]), dots: true },
        { name: `${c.system} p50`, points: c.points.map(([r, p50]) => [r, p50] as [number, number]), dashed: true },
      ]),
    });
    const name = `open-loop-${size.replace(' ', '')}.svg`;
    writeFileSync(join(outDir, name), `${svg}\n`);
    ctx.note(`latency vs load, ${size}: ![latency vs load ${size}](${name}) (bench/results/${name})`);
  }
}

/**
 * Closed loop at the same concurrency as wrk, where the server is the bottleneck so both tools
 * measure the server: the M/M/1 target (a known 1/mu per request) and httpgw with 1 MiB files.
 */
async function wrkAgreement(ctx: BenchContext, lg: Loadgen, durationS: number): Promise<void> {
  if (!findBinary('wrk')) {
    ctx.note('wrk agreement not measured: wrk missing');
    return;
  }
  const connections = 16;
  const cases: Array<{ label: string; url: string }> = [];
  const mm1 = new ManagedProcess('mm1-target', process.execPath, [BIN, 'mm1-target', '--mu', '1000', '--port', '0']);
  try {
    const m = await mm1.waitForLine(/listening on (http:\/\/\S+)/, 10_000);
    if (m[1]) cases.push({ label: `mm1-target μ=1000/s, ${connections} connections`, url: m[1] });
    const gw = await sharedGatewayOrNote(ctx);
    if (gw) cases.push({ label: `httpgw 1 MiB, ${connections} connections`, url: gw.target.url(await ctx.files.ensure('1 MiB')) });
    for (const c of cases) {
      ctx.progress(`wrk agreement: ${c.label}`);
      try {
        const w = await runWrk(c.url, connections, durationS, 1);
        const h = await lg.run([c.url, '--concurrency', String(connections), '--duration', `${durationS}s`, '--warmup', '1s'], durationS + 40);
        const base = { case: `closed loop: ${c.label}` };
        ctx.record({ ...base, target: 'wrk', metric: 'requests/s', unit: 'req/s', better: 'higher', samples: [w.rps] });
        ctx.record({ ...base, target: 'httpgw-load', metric: 'requests/s', unit: 'req/s', better: 'higher', samples: [h.achievedRps] });
        ctx.record({ ...base, target: 'wrk', metric: 'p50 latency', unit: 'ms', better: 'lower', samples: [w.p50ms] });
        ctx.record({ ...base, target: 'httpgw-load', metric: 'p50 latency', unit: 'ms', better: 'lower', samples: [h.latency.p50Ms] });
        ctx.record({ ...base, target: 'wrk', metric: 'p99 latency', unit: 'ms', better: 'lower', samples: [w.p99ms] });
        ctx.record({ ...base, target: 'httpgw-load', metric: 'p99 latency', unit: 'ms', better: 'lower', samples: [h.latency.p99Ms] });
        ctx.record({ ...base, target: 'httpgw-load ÷ wrk', metric: 'requests/s ratio', unit: '×', better: 'higher', samples: [h.achievedRps / w.rps] });
        ctx.record({ ...base, target: 'httpgw-load ÷ wrk', metric: 'p50 ratio', unit: '×', better: 'lower', samples: [h.latency.p50Ms / w.p50ms] });
      } catch (err) {
        ctx.note(`wrk agreement ${c.label}: ${errorText(err)}`);
      }
    }
  } catch (err) {
    ctx.note(`wrk agreement: ${errorText(err)}`);
  } finally {
    await mm1.stop();
  }
}

/** Locust (one process, no think time) against nginx-direct, beside httpgw-load's open-loop rate there. */
async function locustComparison(ctx: BenchContext, lg: Loadgen, durationS: number): Promise<void> {
  const locust = findBinary('locust');
  const target = ctx.peers.nginxDirect;
  if (!locust || !target) {
    ctx.note(`Locust comparison not measured: ${!locust ? 'locust missing (Debian package python3-locust)' : 'nginx-direct not running'}`);
    return;
  }
  const file = await ctx.files.ensure('4 KiB');
  const url = new URL(target.url(file));
  const dir = await mkdtemp(join(tmpdir(), 'httpgw-bench-locust-'));
  try {
    const users = 32;
    ctx.progress(`Locust: ${users} users, ${durationS + 2} s`);
    const r = await runCommand(locust, ['-f', join(REPO_ROOT, 'bench/locustfile.py'), '--headless', '--only-summary', '-u', String(users), '-r', String(users), '-t', `${durationS + 2}s`, '--host', url.origin, '--csv', join(dir, 'l')], {
      timeoutMs: (durationS + 60) * 1000,
      env: { ...process.env, LOCUST_PATH: url.pathname },
    });
    const rows = readFileSync(join(dir, 'l_stats.csv'), 'utf8').trim().split('\n');
    const header = (rows[0] ?? '').split(',');
    const agg = (rows.find((l) => l.includes('Aggregated')) ?? '').split(',');
    const col = (name: string) => Number(agg[header.indexOf(name)]);
    const locustRps = col('Requests/s');
    if (!Number.isFinite(locustRps) || locustRps <= 0) throw new Error(`no Locust figures (exit ${String(r.code)}): ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
    // httpgw-load: the highest Poisson rate it delivers on the same URL with p99 < 100 ms and every request answered.
    let best = 0;
    for (let rate = 250; rate <= 64_000; rate *= 2) {
      ctx.progress(`httpgw-load on nginx-direct: ${rate} req/s`);
      const h = await lg.run([url.href, '--rate', String(rate), '--duration', `${durationS}s`, '--warmup', '1s', '--max-connections', '1024'], durationS + 40);
      if (failed(h) || h.achievedRps < 0.95 * rate) break;
      best = h.achievedRps;
    }
    const kase = 'nginx-direct 4 KiB';
    ctx.note(`client capacity: Locust ${locust} headless, ${users} users without think time (its maximum, closed loop), beside httpgw-load's highest Poisson rate achieved in full with p99 < ${SLO_P99_MS} ms (rates doubling from 250/s)`);
    ctx.record({ case: kase, target: 'Locust', metric: 'client capacity', unit: 'req/s', better: 'higher', samples: [locustRps], details: { p50: col('50%'), p99: col('99%') } });
    ctx.record({ case: kase, target: 'httpgw-load', metric: 'client capacity', unit: 'req/s', better: 'higher', samples: [best] });
    ctx.record({ case: kase, target: 'httpgw-load ÷ Locust', metric: 'client capacity', unit: '×', better: 'higher', samples: [best / locustRps] });
  } catch (err) {
    ctx.note(`Locust comparison: ${errorText(err)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
