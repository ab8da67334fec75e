/**
 * `httpgw --workers N`: gateway processes sharing the HTTP port. Small files are bound by the
 * gateway's one thread (HTTP parsing, koa, the transfer's bookkeeping), large ones by the CPU of
 * every process together; this measures both with 1 and 2 workers (more than the cores would only
 * compete here), each gateway fresh and warmed up, beside the nginx proxy.
 */
import { runWrk } from '../measure.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { Failures, errorText, measureSeries, perGB, serverPids, warmUp } from './common.js';
import type { SizeName } from '../files.js';

const WORKERS = [1, 2];
const LOADS: Array<{ size: SizeName; connections: number }> = [
  { size: '4 KiB', connections: 32 },
  { size: '1 MiB', connections: 32 },
];

export const workers: Scenario = {
  name: 'workers',
  title: 'Gateway processes sharing the HTTP port (--workers)',
  async run(ctx: BenchContext): Promise<void> {
    const durationS = ctx.quick ? 2 : 5;
    const large: SizeName = ctx.quick ? '64 MiB' : '256 MiB';
    ctx.note(`wrk -t2 for ${durationS} s per cell after as long unmeasured; ${large}: ${ctx.quick ? 2 : 3} single downloads, CPU of every process (the gateway's workers included) per GB`);
    await ctx.stopSharedHttpgw();
    const targets = [...WORKERS.map((count) => ({ name: count === 1 ? 'httpgw' : `httpgw --workers ${count}`, count }))];
    for (const { name, count } of targets) {
      ctx.progress(`starting ${name}`);
      let gw: HttpgwInstance | undefined;
      try {
        gw = await ctx.httpgw.start({ servers: 3, workers: count, gatewayArgs: ['--no-access-log'] });
        await warmUp(gw, ctx.files, (text) => ctx.progress(`${name}: ${text}`));
        await measure(ctx, gw.target, name, durationS, large, () => [...serverPids(gw!.target)]);
      } catch (err) {
        ctx.note(`${name}: ${errorText(err)}`);
      } finally {
        await gw?.stop();
      }
    }
    const proxy = ctx.peers.nginxProxy;
    if (proxy) await measure(ctx, proxy, proxy.name, durationS, large, () => serverPids(proxy));
  },
};

async function measure(ctx: BenchContext, target: HttpgwInstance['target'], name: string, durationS: number, large: SizeName, pids: () => number[]): Promise<void> {
  for (const { size, connections } of LOADS) {
    const file = await ctx.files.ensure(size);
    ctx.progress(`${name}: ${size} x ${connections}`);
    try {
      // Unmeasured first: each worker's code warms up on its own share of the requests.
      await runWrk(target.url(file), connections, durationS, 2);
      const result = await runWrk(target.url(file), connections, durationS, 2);
      const base = { case: `${size}, ${connections} connections`, target: name };
      ctx.record({ ...base, metric: 'requests/s', unit: 'req/s', better: 'higher', samples: [result.rps] });
      ctx.record({ ...base, metric: 'p99 latency', unit: 'ms', better: 'lower', samples: [result.p99ms] });
    } catch (err) {
      ctx.note(`${name} ${size}: ${errorText(err)}`);
    }
  }
  const file = await ctx.files.ensure(large);
  const batches = await measureSeries(ctx, new Failures(ctx, 2), { target, label: `${name} ${large}`, file, bytes: ctx.files.bytes(large), samples: ctx.quick ? 2 : 3, pids: pids() });
  if (batches.length === 0) return;
  ctx.record({ case: `${large} download`, target: name, metric: 'throughput', unit: 'MB/s', better: 'higher', samples: batches.flatMap((b) => b.downloads.map((d) => d.mbps)) });
  ctx.record({ case: `${large} download`, target: name, metric: 'CPU per GB, all server processes', unit: 's/GB', better: 'lower', samples: batches.map((b) => perGB(b.cpu.reduce((a, c) => a + c, 0), b.bytes)) });
}
