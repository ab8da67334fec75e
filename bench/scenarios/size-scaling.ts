/** Cost vs file size: throughput and CPU per GB from 1 MiB to 1 GiB, httpgw vs the nginx proxy. */
import type { SizeName } from '../files.js';
import { MiB, sum } from '../measure.js';
import type { BenchContext, DownloadTarget, Scenario } from '../types.js';
import { download, errorText, meteredBatch, perGB, serverPids, sharedGatewayOrNote, type Batch } from './common.js';

const FULL: SizeName[] = ['1 MiB', '64 MiB', '256 MiB', '1 GiB'];
const QUICK: SizeName[] = ['1 MiB', '64 MiB', '256 MiB'];
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

    for (const size of ctx.quick ? QUICK : FULL) {
      const file = await ctx.files.ensure(size);
      const bytes = ctx.files.bytes(size);
      const perSample = Math.max(1, Math.ceil(MIN_BYTES_PER_SAMPLE / bytes));
      for (const { target, pids, gatewayIndex } of targets) {
        try {
          await download(target, file, bytes);
          const batches: Batch[] = [];
          for (let i = 1; i <= samples; i++) {
            ctx.progress(`${size} ${target.name} sample ${i}/${samples} (${perSample} download${perSample > 1 ? 's' : ''})`);
            batches.push(await meteredBatch(target, file, bytes, perSample, pids));
          }
          const base = { case: size, target: target.name };
          ctx.record({ ...base, metric: 'throughput', unit: 'MB/s', better: 'higher', samples: batches.flatMap((b) => b.downloads.map((d) => d.mbps)) });
          ctx.record({ ...base, metric: 'CPU per GB, all server processes', unit: 's/GB', better: 'lower', samples: batches.map((b) => perGB(sum(b.cpu), b.bytes)) });
          if (gatewayIndex !== undefined) {
            ctx.record({ ...base, metric: 'CPU per GB, gateway only', unit: 's/GB', better: 'lower', samples: batches.map((b) => perGB(b.cpu[gatewayIndex] ?? Number.NaN, b.bytes)) });
          }
        } catch (err) {
          ctx.note(`${target.name} ${size}: ${errorText(err)}`);
        }
      }
    }
  },
};
