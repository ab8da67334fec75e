/**
 * What the access log costs: gateway CPU per request under wrk load (a small file, so the
 * per-request work dominates), with the access log on and off (`--no-access-log`). JSON lines go
 * through pino's asynchronous destination to a pipe, as in production.
 */
import { cpuSeconds, runWrk } from '../measure.js';
import type { BenchContext, HttpgwInstance, Scenario } from '../types.js';
import { download, errorText, requireHttpgw } from './common.js';

const CONNECTIONS = 32;

export const accessLog: Scenario = {
  name: 'access-log',
  title: `Access log cost: gateway CPU per request (4 KiB file, wrk -c${CONNECTIONS})`,
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    await ctx.stopSharedHttpgw();
    const durationS = ctx.quick ? 3 : 8;
    const reps = ctx.quick ? 2 : 3;
    const file = await ctx.files.ensure('4 KiB');
    ctx.note(`${durationS} s of wrk per run, ${reps} run(s) per setting, alternating on/off; CPU = utime+stime of the gateway process`);
    const variants: Array<[string, string[]]> = [
      ['access log on', []],
      ['access log off', ['--no-access-log']],
    ];
    const perRequest = new Map<string, number[]>(variants.map(([name]) => [name, []]));
    const rps = new Map<string, number[]>(variants.map(([name]) => [name, []]));
    for (let rep = 1; rep <= reps; rep++) {
      for (const [name, args] of variants) {
        ctx.progress(`${name} run ${rep}/${reps}`);
        let gw: HttpgwInstance | undefined;
        try {
          gw = await ctx.httpgw.start({ servers: 3, gatewayArgs: args });
          await download(gw.target, file, ctx.files.bytes('4 KiB'));
          const before = cpuSeconds(gw.gatewayPid);
          const result = await runWrk(gw.target.url(file), CONNECTIONS, durationS);
          const cpu = cpuSeconds(gw.gatewayPid) - before;
          if (result.socketErrors + result.non2xx > 0) ctx.note(`${name}: ${result.socketErrors} socket errors, ${result.non2xx} non-2xx of ${result.requests}`);
          perRequest.get(name)!.push((cpu / result.requests) * 1e6);
          rps.get(name)!.push(result.rps);
        } catch (err) {
          ctx.note(`${name}: ${errorText(err)}`);
        } finally {
          await gw?.stop();
        }
      }
    }
    for (const [name] of variants) {
      ctx.record({ case: name, metric: 'gateway CPU per request', unit: 'µs', better: 'lower', target: 'httpgw', samples: perRequest.get(name)! });
      ctx.record({ case: name, metric: 'requests/s', unit: 'req/s', better: 'higher', target: 'httpgw', samples: rps.get(name)! });
    }
  },
};
