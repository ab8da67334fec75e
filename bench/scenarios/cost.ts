/**
 * Server-side cost of moving bytes: CPU seconds (utime+stime from /proc/PID/stat) per GB
 * delivered, and peak RSS (VmHWM, reset after the warm-up via /proc/PID/clear_refs), for the
 * gateway, one file server, and all server-side processes; nginx for comparison.
 */
import type { SizeName } from '../files.js';
import { MiB, median, peakRss, resetPeakRss, sum } from '../measure.js';
import type { BenchContext, DownloadTarget, HttpgwInstance, Scenario } from '../types.js';
import { Failures, errorText, measureSeries, perGB, serverPids, type Batch } from './common.js';

const ALL = 'all server processes';

interface Setup {
  size: SizeName;
  file: string;
  bytes: number;
  reps: number;
}

/**
 * Moved before the metered downloads, by every target alike. httpgw's processes are JIT-compiled:
 * right after start they cost about twice their steady CPU per GB (V8 compiles on background
 * threads and runs unoptimised code meanwhile); that first download is reported in its own row.
 */
const WARM_UP_BYTES = { quick: 512 * MiB, full: 1024 * MiB };

/** Warm-up, reset VmHWM, then `reps` metered downloads (one batch each). */
function measure(ctx: BenchContext, setup: Setup, target: DownloadTarget, pids: number[], onFirstDownload?: (batch: Batch) => void): Promise<Batch[]> {
  const afterWarmUp = (): void => {
    let reset = true;
    for (const pid of pids) reset = resetPeakRss(pid) && reset;
    if (!reset) ctx.note(`${target.name}: could not reset VmHWM (/proc/PID/clear_refs not writable): peaks include start-up`);
  };
  const warmUpDownloads = Math.max(1, Math.ceil((ctx.quick ? WARM_UP_BYTES.quick : WARM_UP_BYTES.full) / setup.bytes));
  const plan = { target, label: `${target.name} ${setup.size}`, file: setup.file, bytes: setup.bytes, samples: setup.reps, pids, afterWarmUp, warmUpDownloads, ...(onFirstDownload ? { onFirstDownload } : {}) };
  return measureSeries(ctx, new Failures(ctx, 2), plan);
}

function recordCommon(ctx: BenchContext, setup: Setup, target: string, batches: Batch[], pids: number[]): void {
  if (batches.length === 0) return;
  ctx.record({ case: ALL, metric: 'CPU per GB', unit: 's/GB', better: 'lower', target, samples: batches.map((b) => perGB(sum(b.cpu), b.bytes)) });
  ctx.record({ case: ALL, metric: 'peak RSS (sum of VmHWM)', unit: 'MiB', better: 'lower', target, samples: [sum(pids.map(peakRss)) / MiB] });
  ctx.record({
    case: `${setup.size} download`,
    metric: 'throughput',
    unit: 'MB/s',
    better: 'higher',
    target,
    samples: batches.flatMap((b) => b.downloads.map((d) => d.mbps)),
  });
}

async function measureHttpgw(ctx: BenchContext, setup: Setup, gw: HttpgwInstance): Promise<void> {
  const pids = [gw.gatewayPid, ...gw.serverPids];
  let first: Batch | undefined;
  const batches = await measure(ctx, setup, gw.target, pids, (batch) => (first = batch));
  if (first) {
    ctx.record({ case: `${ALL}, first download after start`, metric: 'CPU per GB', unit: 's/GB', better: 'lower', target: 'httpgw', samples: [perGB(sum(first.cpu), first.bytes)] });
  }
  if (batches.length === 0) return;
  recordCommon(ctx, setup, 'httpgw', batches, pids);
  const rec = (kase: string, metric: string, unit: string, samples: number[]): void =>
    ctx.record({ case: kase, metric, unit, better: 'lower', target: 'httpgw', samples });
  rec('gateway process', 'CPU per GB', 's/GB', batches.map((b) => perGB(b.cpu[0] ?? Number.NaN, b.bytes)));
  rec(`file servers (${gw.serverPids.length}), per GB served`, 'CPU per GB', 's/GB', batches.map((b) => perGB(sum(b.cpu.slice(1)), b.bytes)));
  rec('gateway process', 'peak RSS (VmHWM)', 'MiB', [peakRss(gw.gatewayPid) / MiB]);
  rec('one file server', 'peak RSS (VmHWM)', 'MiB', [peakRss(gw.serverPids[0] ?? -1) / MiB]);
  const perServer = gw.serverPids.map((_, i) => median(batches.map((b) => b.cpu[i + 1] ?? Number.NaN)));
  ctx.note(`httpgw: CPU seconds per download, by file server: ${perServer.map((s) => s.toFixed(2)).join(', ')}`);
}

export const cost: Scenario = {
  name: 'cost',
  title: 'Cost: CPU per GB moved and peak memory',
  async run(ctx: BenchContext): Promise<void> {
    const size: SizeName = ctx.quick ? '64 MiB' : '256 MiB';
    const setup: Setup = { size, file: await ctx.files.ensure(size), bytes: ctx.files.bytes(size), reps: ctx.quick ? 3 : 5 };
    const warmUp = (ctx.quick ? WARM_UP_BYTES.quick : WARM_UP_BYTES.full) / MiB;
    ctx.note(`${setup.reps} sequential downloads of the ${size} file per target after ${warmUp} MiB of warm-up downloads, CPU metered per download (10 ms tick resolution); httpgw's first download after start is metered on its own`);

    if (ctx.httpgw.unavailable === undefined) {
      // A fresh gateway, so its peak RSS is this scenario's.
      await ctx.stopSharedHttpgw();
      ctx.progress('starting httpgw (3 file servers)');
      let gw: HttpgwInstance | undefined;
      try {
        gw = await ctx.httpgw.start({ servers: 3 });
        await measureHttpgw(ctx, setup, gw);
      } catch (err) {
        ctx.note(`httpgw: ${errorText(err)}`);
      } finally {
        await gw?.stop();
      }
    }

    for (const target of [ctx.peers.nginxDirect, ctx.peers.nginxProxy]) {
      if (!target) continue;
      try {
        const pids = serverPids(target);
        recordCommon(ctx, setup, target.name, await measure(ctx, setup, target, pids), pids);
      } catch (err) {
        ctx.note(`${target.name}: ${errorText(err)}`);
      }
    }
  },
};
