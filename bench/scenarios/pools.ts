/**
 * Large pools (docs/POOLS.md): one gateway and N simulated file servers (library instances, 250 per
 * child process, all serving the bench files' directory), N = 3, 100, 1,000 and 10,000 (--quick
 * leaves out 10,000; BENCH_POOL_SIZES=3,10000 picks sizes), plus 1,000 with the holder index off (--index-from above N: every lookup
 * asks every server, as before the index). Registration time, the gateway's idle CPU and RSS, time
 * to first byte of a small file (first request, then median and p99 with --meta-cache 0 so that
 * every request is a lookup), a 404, the union listing `GET /`, and one large download.
 */
import { join } from 'node:path';
import { REPO_ROOT, statsFields } from '../httpgw.js';
import { CpuMeter, currentRss, curlDownload, MiB, sleep } from '../measure.js';
import { ManagedProcess, runCommand } from '../proc.js';
import type { SizeName } from '../files.js';
import type { BenchContext, Scenario } from '../types.js';
import { errorText, requireHttpgw } from './common.js';

const GATEWAY_BIN = join(REPO_ROOT, 'packages/gateway/bin/httpgw.js');
const CHILD = join(REPO_ROOT, 'bench/pool-servers.mjs');
/**
 * Simulated servers per child process (BENCH_POOL_PER_CHILD overrides): 250, and 1,000 for pools
 * beyond 2,500, so that 10,000 servers make 10 processes rather than 40 fighting the gateway for
 * the bench machine's cores (with 40, the servers' own scheduling doubled the gateway's ttfb).
 */
const perChild = (servers: number) => Number(process.env.BENCH_POOL_PER_CHILD ?? (servers > 2_500 ? 1_000 : 250));
/** The gateway's default --index-from. */
const INDEX_FROM = 32;
const LISTENING = /listening http=([\d.]+):(\d+) udp=([\d.]+):(\d+)/;

interface PoolCase {
  servers: number;
  /** False: --index-from above the pool size, every lookup asks every server. */
  index: boolean;
}

const label = (c: PoolCase) => `${c.servers} servers${c.index ? '' : ' (no index)'}`;

export const pools: Scenario = {
  name: 'pools',
  title: 'Large server pools: lookups, listings and upkeep by pool size',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    const small = await ctx.files.ensure('4 KiB');
    const bigSize: SizeName = ctx.quick ? '64 MiB' : '256 MiB';
    const big = await ctx.files.ensure(bigSize);
    const all: PoolCase[] = [
      { servers: 3, index: true },
      { servers: 100, index: true },
      { servers: 1_000, index: true },
      { servers: 1_000, index: false },
      ...(ctx.quick ? [] : [{ servers: 10_000, index: true }]),
    ];
    // BENCH_POOL_SIZES=3,10000 runs only those sizes (with the index).
    const only = process.env.BENCH_POOL_SIZES?.split(',').map(Number);
    const cases = only ? only.map((servers) => ({ servers, index: true })) : all;
    ctx.note(`${perChild(1_000)} file servers per child process (${perChild(10_000)} beyond 2,500), all serving the bench files and walking them every 60 s; gateway with --meta-cache 0 --cache-size 0, so every request is a lookup and a fetch`);
    ctx.note(`ttfb: the first request of the ${small} file, then the median and p99 of ${ctx.quick ? 20 : 40} more; 404: a path nobody holds; GET /: the union listing`);
    if (ctx.quick) ctx.note('--quick leaves out 10,000 servers (about a minute and 1.5 GB of memory for 10 child processes)');
    await ctx.stopSharedHttpgw();
    for (const kase of cases) {
      try {
        await runCase(ctx, kase, small, big, bigSize);
      } catch (err) {
        ctx.note(`${label(kase)}: ${errorText(err)}`);
      }
    }
  },
};

async function runCase(ctx: BenchContext, kase: PoolCase, small: string, big: string, bigSize: SizeName): Promise<void> {
  const target = label(kase);
  const record = (kaseName: string, metric: string, unit: string, better: 'higher' | 'lower', samples: number[]) =>
    ctx.record({ case: kaseName, metric, unit, better, target, samples });
  ctx.progress(`${target}: starting the gateway`);
  const gateway = new ManagedProcess('httpgw', process.execPath, [
    '--single-threaded-gc',
    GATEWAY_BIN,
    '127.0.0.1',
    '0',
    '--udp-port',
    '0',
    '--max-servers',
    String(kase.servers + 100),
    '--meta-cache',
    '0',
    '--cache-size',
    '0',
    '--no-access-log',
    '--index-from',
    String(kase.index ? INDEX_FROM : kase.servers + 1),
  ], { cwd: REPO_ROOT });
  const children: ManagedProcess[] = [];
  try {
    const m = await gateway.waitForLine(LISTENING, 15_000);
    const base = `http://127.0.0.1:${m[2]}`;
    const udpPort = m[4]!;
    const stats = async (): Promise<Record<string, string>> => {
      const mark = gateway.lineCount;
      process.kill(gateway.pid, 'SIGUSR2');
      for (let i = 0; i < 250; i++) {
        const line = gateway.linesSince(mark).find((l) => /"msg":"stats"| stats\b/.test(l));
        if (line) return statsFields(line);
        await sleep(20);
      }
      return {};
    };

    // Registration: from the first child's start to the last "registered".
    ctx.progress(`${target}: registering`);
    const started = performance.now();
    for (let left = kase.servers, i = 0; left > 0; left -= perChild(kase.servers), i++) {
      const count = Math.min(perChild(kase.servers), left);
      children.push(new ManagedProcess(`servers#${i}`, process.execPath, [CHILD, udpPort, String(count), ctx.files.dir], { cwd: REPO_ROOT }));
    }
    const timeoutMs = 30_000 + kase.servers * 20;
    await Promise.all(children.map((child) => child.waitForLine(/registered \d+ in/, timeoutMs)));
    const registeredS = (performance.now() - started) / 1_000;
    record('registration', 'time', 's', 'lower', [registeredS]);

    // Every catalogue in the index (their first walks end within a second; a heartbeat tells it).
    // A pool below --index-from (32) keeps no index: every server is asked.
    if (kase.index && kase.servers >= INDEX_FROM) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const s = await stats();
        if (Number(s.serversIndexed) >= kase.servers) break;
        if (performance.now() > deadline) throw new Error(`only ${s.serversIndexed} of ${kase.servers} servers indexed`);
        await sleep(200);
      }
      record('registration', 'index complete after', 's', 'lower', [(performance.now() - started) / 1_000]);
    }

    // Idle upkeep: heartbeats, sweeps, the index.
    ctx.progress(`${target}: idle`);
    await sleep(2_000);
    const idleS = ctx.quick ? 5 : 10;
    const meter = new CpuMeter([gateway.pid]);
    await sleep(idleS * 1_000);
    record('idle gateway', 'CPU', '% of a core', 'lower', [(100 * meter.stop()[0]!) / idleS]);
    record('idle gateway', 'RSS', 'MiB', 'lower', [currentRss(gateway.pid) / MiB]);

    ctx.progress(`${target}: time to first byte`);
    const ttfbMs = async (path: string, expectStatus: number): Promise<number> => {
      const r = await runCommand('curl', ['-s', '-o', '/dev/null', '-w', '%{time_starttransfer} %{http_code}', `${base}/${path}`], { timeoutMs: 60_000 });
      const [seconds, status] = r.stdout.trim().split(' ').map(Number);
      if (status !== expectStatus) throw new Error(`GET /${path}: status ${String(status)}, expected ${expectStatus}`);
      return seconds! * 1_000;
    };
    record(`${small} file`, 'ttfb, first request', 'ms', 'lower', [await ttfbMs(small, 200)]);
    const warm: number[] = [];
    for (let i = 0; i < (ctx.quick ? 20 : 40); i++) warm.push(await ttfbMs(small, 200));
    record(`${small} file`, 'ttfb median', 'ms', 'lower', warm);
    record(`${small} file`, 'ttfb p99', 'ms', 'lower', [percentile(warm, 0.99)]);
    const missing: number[] = [];
    for (let i = 0; i < 10; i++) missing.push(await ttfbMs(`no-such-file-${i}.bin`, 404));
    record('404', 'ttfb median', 'ms', 'lower', missing);
    ctx.progress(`${target}: listing`);
    const listing: number[] = [];
    for (let i = 0; i < (ctx.quick ? 3 : 5); i++) listing.push(await ttfbMs('', 200));
    record('GET / (union listing)', 'time', 'ms', 'lower', listing);

    ctx.progress(`${target}: ${bigSize} download`);
    const downloads = [];
    for (let i = 0; i < (ctx.quick ? 1 : 2); i++) downloads.push(await curlDownload(`${base}/${big}`, { expectBytes: ctx.files.bytes(bigSize), timeoutMs: 300_000 }));
    record(`${bigSize} held by every server`, 'throughput', 'MB/s', 'higher', downloads.map((d) => d.mbps));
    const after = await stats();
    if (after.servers !== String(kase.servers)) ctx.note(`${target}: the pool held ${after.servers} servers at the end`);
  } finally {
    await Promise.all(children.map((child) => child.stop(10_000)));
    await gateway.stop();
  }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}
