/** Cost vs file size: throughput and CPU per GB from 1 MiB to 1 GiB, httpgw vs the nginx proxy. */
import type { SizeName } from '../files.js';
import { MiB } from '../measure.js';
import type { BenchContext, DownloadTarget, Scenario } from '../types.js';
import { Failures, measureSeries, recordSeries, serverPids, sharedGatewayOrNote } from './common.js';

const FULL: SizeName[] = ['1 MiB', '64 MiB', '256 MiB', '1 GiB'];
const QUICK: SizeName[] = ['1 MiB', '16 MiB', '64 MiB'];
/** Each CPU sample covers at least this many bytes (small files: many downloads per sample). */
const MIN_BYTES_PER_SAMPLE = 64 * MiB;

export const sizeScaling: Scenario = {
  name: 'size-scaling',
  title: 'Cost vs file size',
  async run(ctx: BenchContext): Promise<void> {
    const samples = ctx.quick ? 2 : 3;
    const targets: Array<{ target: DownloadTarget; pids: number[]; gatewayIndex?: number }> = [];
    const gw = await sharedGatewayOrNote(ctx);
    if (gw) targets.push({ target: gw.target, pids: [gw.gatewayPid, ...gw.serverPids], gatewayIndex: 0 });
    if (ctx.peers.nginxProxy) targets.push({ target: ctx.peers.nginxProxy, pids: serverPids(ctx.peers.nginxProxy) });
    ctx.note(`${samples} samples per cell; a sample is enough sequential downloads to move >= 64 MiB`);
    const failures = new Failures(ctx);

    for (const size of ctx.quick ? QUICK : FULL) {
      const file = await ctx.files.ensure(size);
      const bytes = ctx.files.bytes(size);
      const perSample = Math.max(1, Math.ceil(MIN_BYTES_PER_SAMPLE / bytes));
      for (const { target, pids, gatewayIndex } of targets) {
        const batches = await measureSeries(ctx, failures, { target, label: `${size} ${target.name}`, file, bytes, samples, perSample, pids });
        recordSeries(ctx, size, target.name, batches, gatewayIndex);
      }
    }
  },
};
