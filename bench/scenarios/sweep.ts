/**
 * Gateway tuning sweep: --chunk-size × --window on the 64 MiB file (16 MiB with --quick), httpgw
 * only, 3 file servers, a fresh gateway per setting.
 */
import type { SizeName } from '../files.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { Failures, errorText, measureSeries, recordSeries, requireHttpgw } from './common.js';

/** 1200 fits any MTU-1500 path; 65000 is close to the largest UDP datagram. */
const CHUNK_SIZES = [1200, 8192, 32768, 65000];
const WINDOWS = [8, 32, 128];
/** --quick leaves out the middle window to stay within its time budget. */
const QUICK_WINDOWS = [8, 128];

export const sweep: Scenario = {
  name: 'sweep',
  title: 'Chunk size × window sweep (3 file servers)',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    const reps = ctx.quick ? 1 : 3;
    // Small chunks are slow (under 10 MB/s at 1200 bytes here): --quick uses a smaller file,
    // warms up with 1 MiB instead of a full download, and tries fewer windows.
    const size: SizeName = ctx.quick ? '16 MiB' : '64 MiB';
    const warmSize: SizeName = ctx.quick ? '1 MiB' : size;
    const file = await ctx.files.ensure(size);
    const bytes = ctx.files.bytes(size);
    const warmFile = await ctx.files.ensure(warmSize);
    ctx.note(`${size} file, ${reps} download(s) per setting after a ${warmSize} warm-up; a fresh gateway per setting`);
    await ctx.stopSharedHttpgw();

    for (const chunkSize of CHUNK_SIZES) {
      for (const window of ctx.quick ? QUICK_WINDOWS : WINDOWS) {
        const kase = `chunk ${chunkSize} × window ${window}`;
        let gw: HttpgwInstance | undefined;
        try {
          ctx.progress(kase);
          gw = await ctx.httpgw.start({ servers: 3, chunkSize, window });
          const pids = [gw.gatewayPid, ...gw.serverPids];
          const warmUp = { file: warmFile, bytes: ctx.files.bytes(warmSize) };
          const batches = await measureSeries(ctx, new Failures(ctx, 2), { target: gw.target, label: kase, file, bytes, samples: reps, pids, warmUp });
          recordSeries(ctx, kase, 'httpgw', batches, 0);
        } catch (err) {
          ctx.note(`${kase}: ${errorText(err)}`);
        } finally {
          await gw?.stop();
        }
      }
    }
  },
};
