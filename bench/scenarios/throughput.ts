/**
 * Single-download throughput and time to first byte: one curl at a time, each target in turn
 * for every repetition (interleaved, so drift hits all targets alike).
 */
import type { SizeName } from '../files.js';
import type { Download } from '../measure.js';
import type { BenchContext, DownloadTarget, Scenario } from '../types.js';
import { Failures, download, peerTargets, sharedGatewayOrNote } from './common.js';

interface Plan {
  size: SizeName;
  reps: number;
}

const FULL: Plan[] = [
  { size: '1 MiB', reps: 7 },
  { size: '64 MiB', reps: 5 },
  { size: '256 MiB', reps: 3 },
];
const QUICK: Plan[] = [
  { size: '1 MiB', reps: 3 },
  { size: '64 MiB', reps: 2 },
];

/** TFTP with 1468-byte blocks is lock-step and slow: only the 64 MiB file. */
const ONLY_64: ReadonlySet<string> = new Set(['tftp-1468']);

export const throughput: Scenario = {
  name: 'throughput',
  title: 'Single download: throughput and time to first byte',
  async run(ctx: BenchContext): Promise<void> {
    const targets: DownloadTarget[] = [];
    const gw = await sharedGatewayOrNote(ctx);
    if (gw) targets.push(gw.target);
    targets.push(...peerTargets(ctx).values());
    const failures = new Failures(ctx);

    for (const plan of ctx.quick ? QUICK : FULL) {
      const file = await ctx.files.ensure(plan.size);
      const bytes = ctx.files.bytes(plan.size);
      const active = targets.filter((t) => !(ONLY_64.has(t.name) && plan.size !== '64 MiB'));
      const results = new Map<string, Download[]>(active.map((t) => [t.name, []]));
      // One unmeasured warm-up per target and size (page cache, connections, JIT).
      for (let rep = 0; rep <= plan.reps; rep++) {
        for (const t of active) {
          const what = `${plan.size} ${t.name} ${rep === 0 ? 'warm-up' : `rep ${rep}/${plan.reps}`}`;
          if (!failures.gaveUp(t.name)) ctx.progress(what);
          const d = await failures.attempt(t.name, what, () => download(t, file, bytes));
          if (d && rep > 0) results.get(t.name)?.push(d);
        }
      }
      for (const [name, ds] of results) {
        if (ds.length === 0) continue;
        const base = { case: plan.size, target: name, details: { downloads: ds } };
        ctx.record({ ...base, metric: 'throughput', unit: 'MB/s', better: 'higher', samples: ds.map((d) => d.mbps) });
        // curl reports no time_starttransfer for TFTP (always 0): leave those cells empty.
        if (ds.some((d) => d.ttfbS > 0)) {
          ctx.record({ ...base, metric: 'time to first byte', unit: 'ms', better: 'lower', samples: ds.map((d) => d.ttfbS * 1000) });
        }
      }
    }
  },
};
