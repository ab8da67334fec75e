/**
 * Unequal pools (httpgw only): file servers capped with `fastfilesrv --max-rate`, some behind the
 * tests' relay (test/support/udp-relay.ts) with extra delay. The question each row answers: does the
 * pool deliver the sum of its servers' rates, never less than its fastest server alone, and does a
 * slow server leave the time to first byte alone?
 */
import { createUdpRelay, type UdpRelay } from '../../test/support/udp-relay.js';
import type { SizeName } from '../files.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { Failures, download, errorText, requireHttpgw } from './common.js';

interface PoolCase {
  name: string;
  /** Per server: its --max-rate in MB/s (undefined: no cap) and extra one-way delay in ms through the relay. */
  servers: ReadonlyArray<{ mbps?: number; delayMs?: number }>;
  /** Whole-file downloads (throughput) or small ones (time to first byte). */
  kind: 'throughput' | 'ttfb';
}

const CASES: readonly PoolCase[] = [
  { name: '100 MB/s alone', kind: 'throughput', servers: [{ mbps: 100 }] },
  { name: '100 + 10 + 10 MB/s', kind: 'throughput', servers: [{ mbps: 100 }, { mbps: 10 }, { mbps: 10 }] },
  { name: '100 MB/s +20 ms alone', kind: 'throughput', servers: [{ mbps: 100, delayMs: 10 }] },
  { name: '100 + 10 + 10 MB/s, the 100 one +20 ms', kind: 'throughput', servers: [{ mbps: 100, delayMs: 10 }, { mbps: 10 }, { mbps: 10 }] },
  { name: '40 + 40 + 40 MB/s, one +20 ms', kind: 'throughput', servers: [{ mbps: 40, delayMs: 10 }, { mbps: 40 }, { mbps: 40 }] },
  { name: '3 uncapped', kind: 'ttfb', servers: [{}, {}, {}] },
  { name: '2 uncapped + 10 MB/s', kind: 'ttfb', servers: [{}, {}, { mbps: 10 }] },
  { name: '2 uncapped + one +20 ms', kind: 'ttfb', servers: [{}, {}, { delayMs: 10 }] },
];

export const unequal: Scenario = {
  name: 'unequal',
  title: 'Unequal pools: capped (--max-rate) and delayed servers',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    const size: SizeName = ctx.quick ? '64 MiB' : '256 MiB';
    const reps = ctx.quick ? 2 : 3;
    const small: SizeName = '1 MiB';
    const file = await ctx.files.ensure(size);
    const smallFile = await ctx.files.ensure(small);
    const bytes = ctx.files.bytes(size);
    const smallBytes = ctx.files.bytes(small);
    ctx.note(
      `throughput rows: ${reps} downloads of the ${size} file after one warm-up; ttfb rows: 20 downloads of the ${small} file, each a new file version ` +
        'lookup (metadata cache 0). "+20 ms": the server sits behind a relay adding 10 ms each way. Target: >= 90 % of the caps\' sum, never below the fastest alone.',
    );
    await ctx.stopSharedHttpgw();

    for (const kase of CASES) {
      const relays: UdpRelay[] = [];
      let gw: HttpgwInstance | undefined;
      try {
        ctx.progress(`${kase.name}: starting`);
        gw = await ctx.httpgw.start(
          { servers: kase.servers.length, cacheSize: '0', gatewayArgs: kase.kind === 'ttfb' ? ['--meta-cache', '0'] : [] },
          {
            serverArgs: (i) => (kase.servers[i]?.mbps === undefined ? [] : ['--max-rate', `${kase.servers[i]!.mbps}MB`]),
            serverTargetOf: async (i, gatewayUdpPort) => {
              const delayMs = kase.servers[i]?.delayMs;
              if (delayMs === undefined) return gatewayUdpPort;
              const relay = await createUdpRelay({ target: { address: '127.0.0.1', port: gatewayUdpPort }, toTarget: { delayMs }, fromTarget: { delayMs } });
              relays.push(relay);
              return relay.address.port;
            },
          },
        );
        const failures = new Failures(ctx, 2);
        const base = { case: kase.name, target: 'httpgw' };
        if (kase.kind === 'throughput') {
          await failures.attempt('httpgw', `${kase.name} warm-up`, () => download(gw!.target, file, bytes));
          const mbps: number[] = [];
          for (let i = 1; i <= reps && !failures.gaveUp('httpgw'); i++) {
            ctx.progress(`${kase.name}: download ${i}/${reps}`);
            const d = await failures.attempt('httpgw', `${kase.name} download ${i}`, () => download(gw!.target, file, bytes));
            if (d) mbps.push(d.mbps);
          }
          if (mbps.length > 0) ctx.record({ ...base, metric: `${size} throughput`, unit: 'MB/s', better: 'higher', samples: mbps });
        } else {
          await failures.attempt('httpgw', `${kase.name} warm-up`, () => download(gw!.target, smallFile, smallBytes));
          const ttfb: number[] = [];
          for (let i = 1; i <= 20 && !failures.gaveUp('httpgw'); i++) {
            const d = await failures.attempt('httpgw', `${kase.name} download ${i}`, () => download(gw!.target, smallFile, smallBytes));
            if (d) ttfb.push(d.ttfbS * 1000);
          }
          if (ttfb.length > 0) ctx.record({ ...base, metric: `${small} time to first byte`, unit: 'ms', better: 'lower', samples: ttfb });
        }
      } catch (err) {
        ctx.note(`${kase.name}: ${errorText(err)}`);
      } finally {
        await gw?.stop();
        await Promise.all(relays.map((relay) => relay.close()));
      }
    }
  },
};
