/** Cost vs number of file servers behind one gateway (httpgw only). */
import type { SizeName } from '../files.js';
import { sum } from '../measure.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { download, errorText, meteredBatch, perGB, requireHttpgw, type Batch } from './common.js';

const SERVER_COUNTS = [1, 2, 3, 6];

export const serverScaling: Scenario = {
  name: 'server-scaling',
  title: 'Cost vs number of file servers',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    const size: SizeName = ctx.quick ? '64 MiB' : '256 MiB';
    const reps = ctx.quick ? 2 : 3;
    const file = await ctx.files.ensure(size);
    const bytes = ctx.files.bytes(size);
    ctx.note(`${reps} downloads of the ${size} file per server count, after one warm-up`);
    await ctx.stopSharedHttpgw();

    for (const servers of SERVER_COUNTS) {
      const kase = `${servers} file server${servers > 1 ? 's' : ''}`;
      let gw: HttpgwInstance | undefined;
      try {
        ctx.progress(`starting httpgw with ${kase}`);
        gw = await ctx.httpgw.start({ servers });
        await download(gw.target, file, bytes);
        const pids = [gw.gatewayPid, ...gw.serverPids];
        const batches: Batch[] = [];
        for (let i = 1; i <= reps; i++) {
          ctx.progress(`${kase}: download ${i}/${reps}`);
          batches.push(await meteredBatch(gw.target, file, bytes, 1, pids));
        }
        const base = { case: kase, target: 'httpgw' };
        ctx.record({ ...base, metric: 'throughput', unit: 'MB/s', better: 'higher', samples: batches.map((b) => b.downloads[0]?.mbps ?? Number.NaN) });
        ctx.record({ ...base, metric: 'CPU per GB, gateway only', unit: 's/GB', better: 'lower', samples: batches.map((b) => perGB(b.cpu[0] ?? Number.NaN, b.bytes)) });
        ctx.record({ ...base, metric: 'CPU per GB, all server processes', unit: 's/GB', better: 'lower', samples: batches.map((b) => perGB(sum(b.cpu), b.bytes)) });
      } catch (err) {
        ctx.note(`${kase}: ${errorText(err)}`);
      } finally {
        await gw?.stop();
      }
    }
  },
};
