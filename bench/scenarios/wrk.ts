/** Concurrent load with wrk: requests/s and latency percentiles, httpgw vs the nginx proxy. */
import type { SizeName } from '../files.js';
import { runWrk, type WrkResult } from '../measure.js';
import type { BenchContext, DownloadTarget, Scenario } from '../types.js';
import { download, errorText, sharedGatewayOrNote } from './common.js';

const SIZES: SizeName[] = ['4 KiB', '1 MiB'];
const CONNECTIONS = [32, 128];
const THREADS = 2;

export const wrk: Scenario = {
  name: 'wrk',
  title: `Concurrent load (wrk --latency -t${THREADS})`,
  async run(ctx: BenchContext): Promise<void> {
    const durationS = ctx.quick ? 2 : 5;
    const reps = ctx.quick ? 1 : 3;
    const targets: DownloadTarget[] = [];
    const gw = await sharedGatewayOrNote(ctx);
    if (gw) targets.push(gw.target);
    if (ctx.peers.nginxProxy) targets.push(ctx.peers.nginxProxy);
    else ctx.note(`nginx-proxy not measured: ${ctx.peers.skipped.get('nginx-proxy') ?? 'not running'}`);
    ctx.note(`${durationS} s per run, ${reps} run(s) per cell, after one unmeasured run`);

    for (const size of SIZES) {
      const file = await ctx.files.ensure(size);
      for (const conns of CONNECTIONS) {
        const runs = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
        for (let rep = 1; rep <= reps; rep++) {
          for (const t of targets) {
            ctx.progress(`${size} c=${conns} ${t.name} run ${rep}/${reps}`);
            try {
              if (rep === 1) {
                await download(t, file, ctx.files.bytes(size));
                // Unmeasured, as long as a measured run: the code this load takes is warm (JIT-compiled) before it counts.
                await runWrk(t.url(file), conns, durationS, THREADS);
              }
              runs.get(t.name)?.push(await runWrk(t.url(file), conns, durationS, THREADS));
            } catch (err) {
              ctx.note(`${t.name} ${size} c=${conns}: ${errorText(err)}`);
            }
          }
        }
        for (const [name, rs] of runs) {
          if (rs.length === 0) continue;
          const socketErrors = rs.reduce((a, r) => a + r.socketErrors, 0);
          const non2xx = rs.reduce((a, r) => a + r.non2xx, 0);
          const requests = rs.reduce((a, r) => a + r.requests, 0);
          if (socketErrors + non2xx > 0) {
            ctx.note(`${name} ${size} c=${conns}: ${socketErrors} socket errors and ${non2xx} non-2xx responses in ${requests} requests (counted in requests/s)`);
          }
          const base = { case: `${size}, ${conns} connections`, target: name, details: { runs: rs } };
          ctx.record({ ...base, metric: 'requests/s', unit: 'req/s', better: 'higher', samples: rs.map((r) => r.rps) });
          ctx.record({ ...base, metric: 'p50 latency', unit: 'ms', better: 'lower', samples: rs.map((r) => r.p50ms) });
          ctx.record({ ...base, metric: 'p99 latency', unit: 'ms', better: 'lower', samples: rs.map((r) => r.p99ms) });
          ctx.record({ ...base, metric: 'errors (socket + non-2xx)', unit: 'count', better: 'lower', samples: rs.map((r) => r.socketErrors + r.non2xx) });
        }
      }
    }
  },
};
