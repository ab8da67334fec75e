/**
 * Goodput vs packet loss (httpgw only): the tests' fault-injecting relay (test/support/udp-relay.ts)
 * sits between the file servers and the gateway and drops datagrams at random, at the same rate
 * in both directions. The relay runs in the bench process, so the 0 % row is the ceiling through
 * the relay, not the gateway's loopback figure.
 *
 * Overhead: bytes the file servers sent (before the relay dropped any) per byte the client got,
 * minus one. It counts retransmissions, hedged duplicates and packet headers (~0.1 % at the
 * default chunk size); requests from the gateway are not counted.
 */
import { createUdpRelay, type UdpRelay } from '../../test/support/udp-relay.js';
import type { SizeName } from '../files.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { Failures, download, errorText, requireHttpgw } from './common.js';

const LOSS_RATES = [0, 0.01, 0.05, 0.1];

export const loss: Scenario = {
  name: 'loss',
  title: 'Goodput vs packet loss (through a user-space relay)',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    const size: SizeName = ctx.quick ? '16 MiB' : '64 MiB';
    const reps = ctx.quick ? 2 : 3;
    const file = await ctx.files.ensure(size);
    const bytes = ctx.files.bytes(size);
    ctx.note(
      `${reps} downloads of the ${size} file per loss rate (after one warm-up) with 3 file servers behind a relay ` +
        'that drops datagrams at random in both directions; overhead = bytes the servers sent per useful byte − 1',
    );
    await ctx.stopSharedHttpgw();

    for (const rate of LOSS_RATES) {
      const kase = `${(rate * 100).toFixed(0)} % loss`;
      let relay: UdpRelay | undefined;
      let gw: HttpgwInstance | undefined;
      try {
        ctx.progress(`${kase}: starting relay and httpgw`);
        gw = await ctx.httpgw.start(
          { servers: 3 },
          {
            serverTarget: async (gatewayUdpPort) => {
              relay = await createUdpRelay({
                target: { address: '127.0.0.1', port: gatewayUdpPort },
                seed: 42,
                toTarget: { loss: rate },
                fromTarget: { loss: rate },
              });
              return relay.address.port;
            },
          },
        );
        const counters = (): number => relay?.stats.toTarget.receivedBytes ?? 0;
        const failures = new Failures(ctx, 2);
        await failures.attempt('httpgw', `${kase} warm-up`, () => download(gw!.target, file, bytes));
        const mbps: number[] = [];
        const overhead: number[] = [];
        for (let i = 1; i <= reps && !failures.gaveUp('httpgw'); i++) {
          ctx.progress(`${kase}: download ${i}/${reps}`);
          const before = counters();
          const d = await failures.attempt('httpgw', `${kase} download ${i}`, () => download(gw!.target, file, bytes));
          if (!d) continue;
          mbps.push(d.mbps);
          overhead.push((counters() - before) / d.bytes - 1);
        }
        if (mbps.length === 0) continue;
        const base = { case: kase, target: 'httpgw' };
        ctx.record({ ...base, metric: 'goodput', unit: 'MB/s', better: 'higher', samples: mbps });
        ctx.record({ ...base, metric: 'server bytes sent per useful byte − 1', unit: '%', better: 'lower', samples: overhead.map((x) => x * 100) });
      } catch (err) {
        ctx.note(`${kase}: ${errorText(err)}`);
      } finally {
        await gw?.stop();
        await relay?.close();
      }
    }
  },
};
