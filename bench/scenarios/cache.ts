/**
 * The gateway's cache against nginx's proxy_cache: hot files (every target warmed first) under wrk
 * and as single downloads, the plain nginx proxy beside them; then 32 clients starting the same
 * cold 256 MiB file at once, and how many bytes the file servers sent for it.
 */
import type { SizeName } from '../files.js';
import { MiB, curlDownload, peakRss, resetPeakRss, runWrk, type Download, type WrkResult } from '../measure.js';
import type { BenchContext, DownloadTarget, HttpgwInstance, Scenario } from '../types.js';
import { Failures, download, errorText, requireHttpgw, SkipScenario } from './common.js';

const WRK_SIZES: SizeName[] = ['4 KiB', '1 MiB'];
const CONNECTIONS = 32;
const THREADS = 2;
const SAME_FILE_CLIENTS = 32;

export const cache: Scenario = {
  name: 'cache',
  title: 'Hot files from the cache (httpgw default cache vs nginx proxy_cache), and one cold file for 32 clients',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    if (!ctx.httpgw.hasCache) throw new SkipScenario('this httpgw build has no cache (--cache-size)');
    await ctx.stopSharedHttpgw();
    const failures = new Failures(ctx);
    let hot: HttpgwInstance | undefined = await ctx.httpgw.start({ servers: 3, cacheSize: 'default' });
    try {
      const targets: DownloadTarget[] = [{ ...hot.target, name: 'httpgw (cache)' }];
      for (const [peer, name] of [
        [ctx.peers.nginxCache, 'nginx-cache'],
        [ctx.peers.nginxProxy, 'nginx-proxy'],
      ] as const) {
        if (peer) targets.push(peer);
        else ctx.note(`${name} not measured: ${ctx.peers.skipped.get(name) ?? 'not running'}`);
      }
      const durationS = ctx.quick ? 2 : 5;
      const reps = ctx.quick ? 1 : 3;
      ctx.note(`wrk: ${durationS} s per run, ${reps} run(s) per cell, ${CONNECTIONS} connections; each target warmed with one download first (nginx-proxy has no cache: its rows are the uncached reference)`);

      for (const size of WRK_SIZES) {
        const file = await ctx.files.ensure(size);
        for (const t of targets) await failures.attempt(t.name, `${size} ${t.name} warm-up`, () => download(t, file, ctx.files.bytes(size)));
        const runs = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
        for (let rep = 1; rep <= reps; rep++) {
          for (const t of targets) {
            ctx.progress(`hot ${size} c=${CONNECTIONS} ${t.name} run ${rep}/${reps}`);
            const r = await failures.attempt(t.name, `${size} ${t.name} wrk`, () => runWrk(t.url(file), CONNECTIONS, durationS, THREADS));
            if (r) runs.get(t.name)?.push(r);
          }
        }
        for (const [name, rs] of runs) {
          if (rs.length === 0) continue;
          const errors = rs.reduce((a, r) => a + r.socketErrors + r.non2xx, 0);
          if (errors > 0) ctx.note(`${name} hot ${size}: ${errors} socket errors or non-2xx responses`);
          const base = { case: `hot ${size}, ${CONNECTIONS} connections`, target: name, details: { runs: rs } };
          ctx.record({ ...base, metric: 'requests/s', unit: 'req/s', better: 'higher', samples: rs.map((r) => r.rps) });
          ctx.record({ ...base, metric: 'p50 latency', unit: 'ms', better: 'lower', samples: rs.map((r) => r.p50ms) });
          ctx.record({ ...base, metric: 'p99 latency', unit: 'ms', better: 'lower', samples: rs.map((r) => r.p99ms) });
        }
      }

      const big = await ctx.files.ensure('256 MiB');
      const bigBytes = ctx.files.bytes('256 MiB');
      const samples = ctx.quick ? 2 : 3;
      for (const t of targets) await failures.attempt(t.name, `256 MiB ${t.name} warm-up`, () => download(t, big, bigBytes));
      resetPeakRss(hot.gatewayPid);
      const downloads = new Map<string, Download[]>(targets.map((t) => [t.name, []]));
      for (let rep = 1; rep <= samples; rep++) {
        for (const t of targets) {
          ctx.progress(`hot 256 MiB ${t.name} ${rep}/${samples}`);
          const d = await failures.attempt(t.name, `256 MiB ${t.name}`, () => download(t, big, bigBytes));
          if (d) downloads.get(t.name)?.push(d);
        }
      }
      for (const [name, ds] of downloads) {
        if (ds.length === 0) continue;
        ctx.record({ case: 'hot 256 MiB, one download', target: name, metric: 'throughput', unit: 'MB/s', better: 'higher', samples: ds.map((d) => d.mbps) });
      }
      const stats = await hot.stats();
      const cacheUsed = Number(stats.cacheMemoryBytes ?? Number.NaN);
      ctx.record({ case: 'hot 256 MiB, one download', target: 'httpgw (cache)', metric: 'gateway peak RSS (VmHWM)', unit: 'MiB', better: 'lower', samples: [peakRss(hot.gatewayPid) / MiB] });
      ctx.note(`httpgw cache after the hot rows: ${stats.cacheHits ?? '?'} hits, ${stats.cacheMisses ?? '?'} misses, ${Math.round(cacheUsed / MiB)} MiB in memory of at most ${Math.round(Number(stats.cacheMemoryLimit ?? Number.NaN) / MiB)} MiB (the default --cache-size here)`);
    } finally {
      await hot?.stop();
      hot = undefined;
    }

    // 32 clients asking for one file nobody has fetched yet: one fetch of each chunk, shared.
    const cold = await ctx.httpgw.start({ servers: 3, cacheSize: 'default' });
    try {
      const big = await ctx.files.ensure('256 MiB');
      const bigBytes = ctx.files.bytes('256 MiB');
      const before = Number((await cold.stats()).udpBytesIn ?? Number.NaN);
      resetPeakRss(cold.gatewayPid);
      ctx.progress(`${SAME_FILE_CLIENTS} clients start the same cold 256 MiB file`);
      const started = performance.now();
      const results = await Promise.all(
        Array.from({ length: SAME_FILE_CLIENTS }, () => curlDownload(cold.target.url(big), { expectBytes: bigBytes, timeoutMs: 600_000 }).catch((err: unknown) => err)),
      );
      const seconds = (performance.now() - started) / 1000;
      const failed = results.filter((r) => r instanceof Error || !(typeof r === 'object' && r !== null && 'bytes' in r));
      if (failed.length > 0) ctx.note(`${failed.length} of ${SAME_FILE_CLIENTS} cold downloads failed: ${errorText(failed[0])}`);
      const after = Number((await cold.stats()).udpBytesIn ?? Number.NaN);
      const base = { case: `cold 256 MiB, ${SAME_FILE_CLIENTS} clients at once`, target: 'httpgw (cache)' };
      ctx.record({ ...base, metric: 'bytes from the file servers / file size', unit: 'x', better: 'lower', samples: [(after - before) / bigBytes] });
      ctx.record({ ...base, metric: 'all clients done', unit: 's', better: 'lower', samples: [seconds] });
      ctx.record({ ...base, metric: 'gateway peak RSS (VmHWM)', unit: 'MiB', better: 'lower', samples: [peakRss(cold.gatewayPid) / MiB] });
    } finally {
      await cold.stop();
    }
  },
};
