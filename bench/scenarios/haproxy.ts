/**
 * Several gateways behind HAProxy (deploy/haproxy.cfg, rendered by test/support/haproxy.ts):
 * two gateways sharing three file servers, reached directly and through HAProxy (leastconn, as
 * shipped, and roundrobin), one gateway through HAProxy, and nginx-direct with and without HAProxy
 * in front as the figure for HAProxy's own cost. wrk on 1 MiB, one 256 MiB download. Then what
 * `balance uri` does for the caches: 64 files of 1 MiB asked at random, each gateway's cache
 * holding 48 MiB, leastconn against uri (consistent hashing).
 */
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HAPROXY_BIN, startHaproxy, type Haproxy, type HaproxyInit } from '../../test/support/haproxy.js';
import { CpuMeter, MiB, parseWrk, runWrk, type WrkResult } from '../measure.js';
import { onCleanup, runCommand } from '../proc.js';
import type { BenchContext, DownloadTarget, HttpgwGroup, Scenario } from '../types.js';
import { Failures, download, perGB, requireHttpgw, SkipScenario } from './common.js';

const CONNECTIONS = 32;
const THREADS = 2;

/** A target reached through `haproxy`; its processes are HAProxy's and the backends'. */
function behind(name: string, haproxy: Haproxy, backends: readonly DownloadTarget[]): DownloadTarget {
  return { name, url: (file) => haproxy.url(file), curlArgs: [], pids: () => [haproxy.pid, ...backends.flatMap((b) => b.pids())] };
}

export const haproxy: Scenario = {
  name: 'haproxy',
  title: 'Two gateways behind HAProxy (deploy/haproxy.cfg) vs one gateway direct, same 3 file servers; nginx with and without HAProxy',
  async run(ctx: BenchContext): Promise<void> {
    requireHttpgw(ctx);
    if (!existsSync(HAPROXY_BIN)) throw new SkipScenario(`${HAPROXY_BIN} missing: apt-get install haproxy`);
    await ctx.stopSharedHttpgw();
    const failures = new Failures(ctx);
    const proxies: Haproxy[] = [];
    let group: HttpgwGroup | undefined;
    const stopAll = async () => {
      await Promise.all(proxies.splice(0).map((p) => p.stop()));
      await group?.stop();
      group = undefined;
    };
    onCleanup(stopAll);
    try {
      ctx.progress('starting 2 gateways, 3 file servers registered with both, HAProxy');
      group = await ctx.httpgw.startGroup({ gateways: 2, servers: 3 });
      const [gw1, gw2] = group.gateways as [DownloadTarget, DownloadTarget];
      const backend = (t: DownloadTarget, name: string) => {
        const port = Number(new URL(t.url('')).port);
        return { name, host: '127.0.0.1', port };
      };
      const start = async (init: Parameters<typeof startHaproxy>[0]) => {
        const h = await startHaproxy(init);
        proxies.push(h);
        if (init.checks !== false) await Promise.all(init.backends.map((b) => h.waitForStatus(b.name, 'UP')));
        return h;
      };
      const two = await start({ backends: [backend(gw1, 'gw1'), backend(gw2, 'gw2')] });
      const twoRr = await start({ backends: [backend(gw1, 'gw1'), backend(gw2, 'gw2')], balance: 'roundrobin' });
      const one = await start({ backends: [backend(gw1, 'gw1')] });
      const targets: DownloadTarget[] = [
        { ...gw1, name: 'httpgw direct (1 gateway)' },
        behind('HAProxy → 1 gateway', one, [gw1]),
        behind('HAProxy → 2 gateways (leastconn)', two, [gw1, gw2]),
        behind('HAProxy → 2 gateways (roundrobin)', twoRr, [gw1, gw2]),
      ];
      const haproxyPid = new Map<string, number>([
        [targets[1]!.name, one.pid],
        [targets[2]!.name, two.pid],
        [targets[3]!.name, twoRr.pid],
      ]);
      const nginx = ctx.peers.nginxDirect;
      if (nginx) {
        const port = Number(new URL(nginx.url('')).port);
        const front = await start({ backends: [{ name: 'nginx1', host: '127.0.0.1', port }], checks: false });
        targets.push(nginx, behind('HAProxy → nginx-direct', front, [nginx]));
        haproxyPid.set('HAProxy → nginx-direct', front.pid);
      } else ctx.note(`nginx-direct not measured: ${ctx.peers.skipped.get('nginx-direct') ?? 'not running'}`);
      ctx.note('the 1 MiB and 256 MiB rows run httpgw with --cache-size 0 (every request fetched from the file servers); all processes share the 2 cores, so two gateways cannot be faster than one here: the rows show what HAProxy and a second gateway cost, not what they add');

      const durationS = ctx.quick ? 2 : 5;
      const reps = ctx.quick ? 1 : 3;
      const small = await ctx.files.ensure('1 MiB');
      const runs = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
      for (const t of targets) await failures.attempt(t.name, `1 MiB ${t.name} warm-up`, () => download(t, small, ctx.files.bytes('1 MiB')));
      for (let rep = 1; rep <= reps; rep++) {
        for (const t of targets) {
          ctx.progress(`1 MiB c=${CONNECTIONS} ${t.name} run ${rep}/${reps}`);
          const r = await failures.attempt(t.name, `1 MiB ${t.name} wrk`, () => runWrk(t.url(small), CONNECTIONS, durationS, THREADS));
          if (r) runs.get(t.name)?.push(r);
        }
      }
      for (const [name, rs] of runs) {
        if (rs.length === 0) continue;
        const errors = rs.reduce((a, r) => a + r.socketErrors + r.non2xx, 0);
        const base = { case: `1 MiB, ${CONNECTIONS} connections (wrk)`, target: name, details: { runs: rs } };
        ctx.record({ ...base, metric: 'requests/s', unit: 'req/s', better: 'higher', samples: rs.map((r) => r.rps) });
        ctx.record({ ...base, metric: 'p50 latency', unit: 'ms', better: 'lower', samples: rs.map((r) => r.p50ms) });
        ctx.record({ ...base, metric: 'p99 latency', unit: 'ms', better: 'lower', samples: rs.map((r) => r.p99ms) });
        ctx.record({ ...base, metric: 'errors (socket + non-2xx)', unit: 'count', better: 'lower', samples: [errors] });
      }
      const spread = await two.servers();
      ctx.note(`HAProxy leastconn sessions per gateway (stot): ${spread.map((s) => `${s.svname} ${s.stot}`).join(', ')}; retries ${spread.map((s) => s.wretr).join('/')}`);

      const big = await ctx.files.ensure('256 MiB');
      const bigBytes = ctx.files.bytes('256 MiB');
      const samples = ctx.quick ? 2 : 3;
      for (const t of targets) await failures.attempt(t.name, `256 MiB ${t.name} warm-up`, () => download(t, big, bigBytes));
      for (let rep = 1; rep <= samples; rep++) {
        for (const t of targets) {
          ctx.progress(`256 MiB ${t.name} ${rep}/${samples}`);
          const pid = haproxyPid.get(t.name);
          const meter = new CpuMeter(pid === undefined ? [] : [pid]);
          const d = await failures.attempt(t.name, `256 MiB ${t.name}`, () => download(t, big, bigBytes));
          const [cpu] = meter.stop();
          if (!d) continue;
          const base = { case: '256 MiB, one download', target: t.name };
          ctx.record({ ...base, metric: 'throughput', unit: 'MB/s', better: 'higher', samples: [d.mbps] });
          if (cpu !== undefined) ctx.record({ ...base, metric: 'CPU per GB, HAProxy', unit: 's/GB', better: 'lower', samples: [perGB(cpu, d.bytes)] });
        }
      }
    } finally {
      await stopAll();
    }
    await cacheShare(ctx, failures);
  },
};

const SHARE_FILES = 64;
const SHARE_CACHE = '48MiB';

/** wrk over SHARE_FILES paths, one picked at random per request (a Lua script). */
async function wrkRandomPaths(url: string, script: string, durationS: number): Promise<WrkResult> {
  const args = ['--latency', `-t${THREADS}`, `-c${CONNECTIONS}`, `-d${durationS}s`, '--timeout', '10s', '-s', script, url];
  const r = await runCommand('wrk', args, { timeoutMs: (durationS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`wrk ${args.join(' ')} failed (exit ${String(r.code)}): ${r.stderr.trim()}`);
  return parseWrk(r.stdout);
}

/**
 * Two fresh gateways per balance (cold caches of SHARE_CACHE each) under wrk asking for
 * SHARE_FILES × 1 MiB at random: with leastconn each cache sees all 64 MiB and cannot hold it;
 * with uri each sees about half, and holds it. A warm-up run, then the measured one.
 */
async function cacheShare(ctx: BenchContext, failures: Failures): Promise<void> {
  const dir = join(ctx.files.dir, 'haproxy-share');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  for (let i = 0; i < SHARE_FILES; i++) writeFileSync(join(dir, `f-${i}.bin`), randomFillSync(Buffer.alloc(MiB)), { mode: 0o644 });
  const script = join(dir, 'random-paths.lua');
  writeFileSync(script, `request = function() return wrk.format("GET", "/haproxy-share/f-" .. math.random(0, ${SHARE_FILES - 1}) .. ".bin") end\n`);
  const durationS = ctx.quick ? 3 : 5;
  const modes: Array<[string, Partial<HaproxyInit>]> = [
    ['leastconn', {}],
    ['uri (hash-type consistent)', { balance: 'uri', consistentHash: true }],
  ];
  for (const [mode, init] of modes) {
    const name = `HAProxy → 2 gateways, ${mode}`;
    const group = await ctx.httpgw.startGroup({ gateways: 2, servers: 3, cacheSize: SHARE_CACHE });
    let proxy: Haproxy | undefined;
    try {
      const backends = group.gateways.map((g, i) => ({ name: `gw${i + 1}`, host: '127.0.0.1', port: Number(new URL(g.url('')).port) }));
      proxy = await startHaproxy({ backends, ...init });
      await Promise.all(backends.map((b) => proxy!.waitForStatus(b.name, 'UP')));
      ctx.progress(`cache share, ${mode}: warm-up`);
      await failures.attempt(name, `${mode} warm-up`, () => wrkRandomPaths(proxy!.url(''), script, durationS));
      const totals = async () => {
        const stats = await Promise.all([0, 1].map((i) => group.stats(i)));
        const add = (key: string) => stats.reduce((a, s) => a + Number(s[key] ?? Number.NaN), 0);
        return { hits: add('cacheHits'), misses: add('cacheMisses'), udp: add('udpBytesIn') };
      };
      const before = await totals();
      ctx.progress(`cache share, ${mode}: measured run`);
      const r = await failures.attempt(name, `${mode} wrk`, () => wrkRandomPaths(proxy!.url(''), script, durationS));
      const after = await totals();
      if (!r) continue;
      const base = { case: `${SHARE_FILES} files × 1 MiB at random, cache ${SHARE_CACHE} per gateway, ${CONNECTIONS} connections`, target: name };
      const hits = after.hits - before.hits;
      const misses = after.misses - before.misses;
      ctx.record({ ...base, metric: 'requests/s', unit: 'req/s', better: 'higher', samples: [r.rps] });
      ctx.record({ ...base, metric: 'p99 latency', unit: 'ms', better: 'lower', samples: [r.p99ms] });
      ctx.record({ ...base, metric: 'cache hit ratio', unit: 'hits/requests', better: 'higher', samples: [hits / (hits + misses)] });
      ctx.record({ ...base, metric: 'bytes from the file servers / bytes served', unit: 'x', better: 'lower', samples: [(after.udp - before.udp) / (r.requests * MiB)] });
      if (r.socketErrors + r.non2xx > 0) ctx.note(`${name}: ${r.socketErrors} socket errors, ${r.non2xx} non-2xx`);
      const spread = await proxy.servers();
      ctx.note(`${mode}: requests per gateway ${spread.map((s) => `${s.svname} ${s.stot}`).join(', ')}`);
    } finally {
      await proxy?.stop();
      await group.stop();
    }
  }
}
