/**
 * Slow client: stream a large file to a client reading at 50 MiB/s (curl --limit-rate 50M),
 * abort it after a few seconds, and record the server side's peak memory, plus the CPU it
 * burns in the 2 s after the client went away (a gateway that keeps fetching shows up there).
 */
import type { SizeName } from '../files.js';
import { CpuMeter, MB, MiB, RssSampler, curlDownload, currentRss, peakRss, resetPeakRss, sleep, sum } from '../measure.js';
import type { BenchContext, DownloadTarget, HttpgwInstance, Scenario } from '../types.js';
import { errorText, serverPids } from './common.js';

const RATE = '50M';
const AFTER_ABORT_MS = 2000;

interface Run {
  pids: number[];
  /** Index in pids of the gateway process, when there is one. */
  gatewayIndex?: number;
}

async function measure(ctx: BenchContext, target: DownloadTarget, run: Run, file: string, seconds: number, rep: string): Promise<void> {
  const { pids, gatewayIndex } = run;
  const idle = sum(pids.map(currentRss));
  for (const pid of pids) resetPeakRss(pid);
  const sampler = new RssSampler(() => pids, 100);
  ctx.progress(`${target.name}: streaming at ${RATE}/s for ${seconds} s ${rep}`);
  const d = await curlDownload(target.url(file), {
    extraArgs: [...target.curlArgs, '--limit-rate', RATE, '--max-time', String(seconds)],
    allowTimeout: true,
    timeoutMs: (seconds + 30) * 1000,
  });
  const peak = sampler.stop();
  const gatewayPeak = gatewayIndex === undefined ? undefined : peakRss(pids[gatewayIndex] ?? -1);
  ctx.progress(`${target.name}: watching CPU for ${AFTER_ABORT_MS} ms after the abort`);
  const meter = new CpuMeter(pids);
  await sleep(AFTER_ABORT_MS);
  const afterCpu = sum(meter.stop());

  const base = { target: target.name, details: { download: d, idleRssBytes: idle, peakRssBytes: peak } };
  const lower = 'lower' as const;
  ctx.record({ ...base, case: 'all server processes', metric: 'peak RSS (sampled every 100 ms)', unit: 'MiB', better: lower, samples: [peak / MiB] });
  ctx.record({ ...base, case: 'all server processes', metric: 'peak RSS minus idle RSS', unit: 'MiB', better: lower, samples: [(peak - idle) / MiB] });
  if (gatewayPeak !== undefined) {
    ctx.record({ ...base, case: 'gateway process', metric: 'peak RSS (VmHWM)', unit: 'MiB', better: lower, samples: [gatewayPeak / MiB] });
  }
  ctx.record({ ...base, case: 'all server processes', metric: `CPU in the ${AFTER_ABORT_MS / 1000} s after the client left`, unit: 's', better: lower, samples: [afterCpu] });
  ctx.record({ ...base, case: 'client', metric: 'received before abort', unit: 'MB', better: 'higher', samples: [d.bytes / MB] });
}

export const slowClient: Scenario = {
  name: 'slow-client',
  title: `Slow client (curl --limit-rate ${RATE}): server memory`,
  async run(ctx: BenchContext): Promise<void> {
    const size: SizeName = ctx.quick ? '1 GiB' : '4 GiB';
    const seconds = ctx.quick ? 4 : 10;
    const reps = ctx.quick ? 1 : 2;
    const file = await ctx.files.ensure(size);
    ctx.note(`${size} file, client aborts after ${seconds} s; ${reps} run(s) per target (fresh gateway for httpgw)`);

    if (ctx.httpgw.unavailable === undefined) {
      await ctx.stopSharedHttpgw();
      for (let rep = 1; rep <= reps; rep++) {
        let gw: HttpgwInstance | undefined;
        try {
          ctx.progress('starting httpgw (3 file servers)');
          gw = await ctx.httpgw.start({ servers: 3 });
          await measure(ctx, gw.target, { pids: [gw.gatewayPid, ...gw.serverPids], gatewayIndex: 0 }, file, seconds, `(${rep}/${reps})`);
          if (!gw.alive()) ctx.note('httpgw: a process exited during the slow-client run');
        } catch (err) {
          ctx.note(`httpgw: ${errorText(err)}`);
        } finally {
          await gw?.stop();
        }
      }
    }

    const proxy = ctx.peers.nginxProxy;
    if (proxy) {
      for (let rep = 1; rep <= reps; rep++) {
        try {
          await measure(ctx, proxy, { pids: serverPids(proxy) }, file, seconds, `(${rep}/${reps})`);
        } catch (err) {
          ctx.note(`nginx-proxy: ${errorText(err)}`);
        }
      }
    }
  },
};
