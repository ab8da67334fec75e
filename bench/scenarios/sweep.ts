/** Gateway tuning sweep: --chunk-size × --window on the 64 MiB file (httpgw only, 3 servers). */
import { sum } from '../measure.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { download, errorText, meteredBatch, perGB, requireHttpgw, type Batch } from './common.js';

/** 1200 fits any MTU-1500 path; 65000 is close to the largest UDP datagram. */
const CHUNK_SIZES = [1200, 8192, 32768, 65000];
const WINDOWS = [8, 32, 128];

export const sweep: Scenario = {
  name: 'sweep',
  title: 'Chunk size × window sweep (64 MiB file, 3 file servers)',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    const reps = ctx.quick ? 1 : 3;
    const file = await ctx.files.ensure('64 MiB');
    const bytes = ctx.files.bytes('64 MiB');
    ctx.note(`${reps} download(s) per setting after one warm-up; a fresh gateway per setting`);
    await ctx.stopSharedHttpgw();

    for (const chunkSize of CHUNK_SIZES) {
      for (const window of WINDOWS) {
        const kase = `chunk ${chunkSize} × window ${window}`;
        let gw: HttpgwInstance | undefined;
        try {
          ctx.progress(kase);
          gw = await ctx.httpgw.start({ servers: 3, chunkSize, window });
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
    }
  },
};
