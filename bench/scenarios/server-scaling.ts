/** Cost vs number of file servers behind one gateway (httpgw only). */
import type { SizeName } from '../files.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { Failures, errorText, measureSeries, recordSeries, requireHttpgw } from './common.js';

const SERVER_COUNTS = [1, 2, 3, 6];

export const serverScaling: Scenario = {
  name: 'server-scaling',
  title: 'Cost vs number of file servers',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    const size: SizeName = ctx.quick ? '64 MiB' : '256 MiB';
    const samples = ctx.quick ? 2 : 3;
    const file = await ctx.files.ensure(size);
    const bytes = ctx.files.bytes(size);
    ctx.note(`${samples} downloads of the ${size} file per server count, after one warm-up; a fresh gateway per count`);
    await ctx.stopSharedHttpgw();

    for (const servers of SERVER_COUNTS) {
      const kase = `${servers} file server${servers > 1 ? 's' : ''}`;
      let gw: HttpgwInstance | undefined;
      try {
        ctx.progress(`starting httpgw with ${kase}`);
        gw = await ctx.httpgw.start({ servers });
        const pids = [gw.gatewayPid, ...gw.serverPids];
        const batches = await measureSeries(ctx, new Failures(ctx, 2), { target: gw.target, label: kase, file, bytes, samples, pids });
        recordSeries(ctx, kase, 'httpgw', batches, 0);
      } catch (err) {
        ctx.note(`${kase}: ${errorText(err)}`);
      } finally {
        await gw?.stop();
      }
    }
  },
};
