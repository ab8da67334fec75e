import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sha256, writeFiles } from './support/cluster.js';
import { curlGet } from './support/curl-get.js';
import { startHaproxy, type Haproxy } from './support/haproxy.js';
import { run, startProcess, type RunningProcess } from './support/processes.js';
import { until } from './support/wait.js';

// Two gateways (the real CLIs), three file servers registered with both, and HAProxy running
// deploy/haproxy.cfg in front: requests spread over both; kill -9 of one fails only the downloads
// it was serving, which resume through HAProxy on the other; new requests never fail; the gateway,
// restarted on its ports, gets its servers back and HAProxy sends it traffic again.

const BIG = 'big.bin';
const BIG_SIZE = 48 * 1024 * 1024;
const SMALL = 'small.bin';
const SMALL_SIZE = 64 * 1024;
/** curl --limit-rate: each big download takes about 6 s, so a kill lands in its middle. */
const RATE = '8M';
const DOWNLOADS = 4;

interface GatewayProcess {
  name: string;
  proc: RunningProcess;
  httpPort: number;
  udpPort: number;
}

/** Starts the real httpgw CLI; ports 0 at first, the same ports again on restart. */
async function startGateway(name: string, httpPort = 0, udpPort = 0): Promise<GatewayProcess> {
  const proc = startProcess('httpgw', ['127.0.0.1', String(httpPort), '--udp-port', String(udpPort)]);
  const [, http, udp] = await proc.waitForLine(/listening http=127\.0\.0\.1:(\d+) udp=\S+:(\d+)/);
  return { name, proc, httpPort: Number(http), udpPort: Number(udp) };
}

/** The access-log entries of `path` a gateway process has written. */
const served = (gateway: GatewayProcess, path: string) => gateway.proc.records().filter((r) => r.name === 'httpgw:access' && r.path === `/${path}`);

describe('two gateways behind HAProxy (deploy/haproxy.cfg)', () => {
  let dir: Awaited<ReturnType<typeof makeTempDir>>;
  let files: Map<string, Buffer>;
  const gateways: GatewayProcess[] = [];
  const servers: RunningProcess[] = [];
  let haproxy: Haproxy;

  beforeAll(async () => {
    dir = await makeTempDir();
    files = await writeFiles(join(dir.path, 'root'), { [BIG]: BIG_SIZE, [SMALL]: SMALL_SIZE });
    gateways.push(await startGateway('gw1'), await startGateway('gw2'));
    for (let i = 1; i <= 3; i++) {
      const targets = gateways.flatMap((g) => ['--gateway', `127.0.0.1:${g.udpPort}`]);
      servers.push(startProcess('fastfilesrv', [...targets, '--root', join(dir.path, 'root'), '--bind', '127.0.0.1', '--name', `files-${i}`]));
    }
    await until(() => servers.every((s) => s.records().filter((r) => r.msg === 'registered with gateway').length === 2), 10_000, 'every server registered with both gateways');
    haproxy = await startHaproxy({ backends: gateways.map((g) => ({ name: g.name, host: '127.0.0.1', port: g.httpPort })) });
    await Promise.all(gateways.map((g) => haproxy.waitForStatus(g.name, 'UP')));
  });

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all(gateways.map((g) => g.proc.stop()));
    await dir?.remove();
  });

  it('spreads requests over both gateways, which give one ETag per file, good for If-Match and If-Range on either', async () => {
    for (let i = 0; i < 8; i++) {
      const result = await curlGet(haproxy.url(SMALL));
      expect(result.status).toBe(200);
      expect(sha256(result.body)).toBe(sha256(files.get(SMALL)!));
    }
    // Each entry is written when its response closes: wait for the last one to be read.
    await until(() => gateways.reduce((sum, g) => sum + served(g, SMALL).length, 0) === 8, 5_000, 'eight access-log entries');
    const counts = gateways.map((g) => served(g, SMALL).length);
    // leastconn over two idle gateways takes turns.
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(2);

    // The version is a digest the file servers compute, so both gateways name it alike.
    const etags = await Promise.all(
      gateways.map(async (g) => {
        const head = await run('curl', ['-sSI', '--noproxy', '*', `http://127.0.0.1:${g.httpPort}/${BIG}`]);
        return /^etag: (.+?)\r?$/im.exec(head.stdout)?.[1];
      }),
    );
    expect(etags[0]).toMatch(/^"[^"]+"$/);
    expect(etags[1]).toBe(etags[0]);
    const other = `http://127.0.0.1:${gateways[1]!.httpPort}/${BIG}`;
    expect((await curlGet(other, ['-H', `If-Match: ${etags[0]}`, '-r', '0-99'])).status).toBe(206);
    const ifRange = await curlGet(other, ['-H', `If-Range: ${etags[0]}`, '-r', '100-199']);
    expect(ifRange.status).toBe(206);
    expect(ifRange.body.equals(files.get(BIG)!.subarray(100, 200))).toBe(true);
    expect((await curlGet(other, ['-H', 'If-Match: "another-version"', '-r', '0-99'])).status).toBe(412);
  });

  it('kill -9 of a gateway fails only its downloads; they resume on the other (curl -C -, wget -c); new requests all succeed; restarted, it gets traffic back', async () => {
    const etag = /^etag: (.+?)\r?$/im.exec((await run('curl', ['-sSI', '--noproxy', '*', haproxy.url(BIG)])).stdout)?.[1];
    expect(etag).toBeDefined();
    const outDirs = await Promise.all(
      Array.from({ length: DOWNLOADS }, async (_, i) => {
        const out = join(dir.path, `download-${i}`);
        await mkdir(out);
        return out;
      }),
    );
    const downloads = outDirs.map((out) => run('curl', ['-sS', '--noproxy', '*', '--limit-rate', RATE, '-o', join(out, BIG), haproxy.url(BIG)], { timeoutMs: 60_000 }));
    const sizeOf = (out: string) => stat(join(out, BIG)).then((s) => s.size, () => 0);
    // Every download under way, and HAProxy's view of which gateway serves how many.
    let sessions: number[] = [];
    for (const deadline = performance.now() + 15_000; ; ) {
      const sizes = await Promise.all(outDirs.map(sizeOf));
      const stats = await haproxy.servers();
      sessions = gateways.map((g) => Number(stats.find((s) => s.svname === g.name)?.scur));
      if (sizes.every((size) => size > 1 << 20) && sessions[0]! + sessions[1]! === DOWNLOADS) break;
      if (performance.now() > deadline) throw new Error(`downloads not under way: sizes ${sizes.join(', ')}, sessions ${sessions.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const victimIndex = sessions[0]! >= sessions[1]! ? 0 : 1;
    const victim = gateways[victimIndex]!;
    const survivor = gateways[1 - victimIndex]!;
    const onVictim = sessions[victimIndex]!;
    expect(onVictim).toBeGreaterThanOrEqual(2);

    victim.proc.child.kill('SIGKILL');
    await victim.proc.stop();
    // At once, before the health checks can have noticed: leastconn sends the first of these to the
    // dead gateway (it has no sessions left); the refused connection marks it down, and the request
    // is sent again to the other. None may fail.
    const burst = await Promise.all(Array.from({ length: 16 }, () => curlGet(haproxy.url(SMALL))));
    expect(burst.map((r) => r.status)).toEqual(burst.map(() => 200));
    expect(burst.every((r) => sha256(r.body) === sha256(files.get(SMALL)!))).toBe(true);
    await haproxy.waitForStatus(victim.name, 'DOWN', 5_000);
    // Marked down by the refused connection of a real request (observe layer4) or by a check.
    const reason = new RegExp(`Server gateways/${victim.name} is DOWN, reason: ([^,]+)`).exec(haproxy.log())?.[1];
    expect(reason).toMatch(/^(Health analyze|Layer4 connection problem)$/);
    // By a request's refused connection (the usual case): that request was redispatched, and succeeded above.
    const victimStat = (await haproxy.servers()).find((s) => s.svname === victim.name)!;
    if (reason === 'Health analyze') expect(Number(victimStat.wredis)).toBeGreaterThanOrEqual(1);
    const after = await Promise.all(Array.from({ length: 8 }, () => curlGet(haproxy.url(SMALL))));
    expect(after.map((r) => r.status)).toEqual(after.map(() => 200));

    // Exactly the downloads the dead gateway was serving failed, each a clean prefix of the file.
    const results = await Promise.all(downloads);
    const failed = outDirs.filter((_, i) => results[i]!.code !== 0);
    expect(failed.length).toBe(onVictim);
    for (const [i, out] of outDirs.entries()) {
      const body = await readFile(join(out, BIG));
      if (results[i]!.code === 0) expect(sha256(body)).toBe(sha256(files.get(BIG)!));
      else {
        // HAProxy cuts the client's connection as the gateway's was cut: a short body never ends cleanly.
        expect(results[i]!.code).toBe(18);
        expect(results[i]!.stderr).toMatch(/transfer closed with \d+ bytes remaining/);
        expect(body.length).toBeLessThan(BIG_SIZE);
        expect(body.equals(files.get(BIG)!.subarray(0, body.length))).toBe(true);
      }
    }

    // Resumed through HAProxy, on the survivor: curl -C - guarded by the ETag, and wget -c.
    const resumedBefore = served(survivor, BIG).filter((r) => r.status === 206).length;
    const curlResume = await run('curl', ['-sSf', '--noproxy', '*', '-C', '-', '-H', `If-Match: ${etag}`, '-o', join(failed[0]!, BIG), haproxy.url(BIG)]);
    expect(curlResume.code, curlResume.stderr).toBe(0);
    const wgetResume = await run('wget', ['-q', '--no-proxy', '-c', '-P', failed[1]!, haproxy.url(BIG)]);
    expect(wgetResume.code, wgetResume.stderr).toBe(0);
    for (const out of failed.slice(0, 2)) expect(sha256(await readFile(join(out, BIG)))).toBe(sha256(files.get(BIG)!));
    const resumes = () => served(survivor, BIG).filter((r) => r.status === 206);
    await until(() => resumes().length - resumedBefore === 2, 5_000, 'the access-log entries of the two resumes');
    expect(resumes().slice(-2).every((r) => typeof r.range === 'string' && /^bytes=[1-9]\d*-$/.test(r.range))).toBe(true);

    // Restarted on the same ports: the file servers, heartbeating to it, are told it does not know
    // them and register again; /readyz turns 200 and HAProxy brings it back.
    const again = await startGateway(victim.name, victim.httpPort, victim.udpPort);
    gateways[victimIndex] = again;
    await until(() => again.proc.records().filter((r) => r.msg === 'server admitted').length === 3, 10_000, 'the servers to register again');
    await haproxy.waitForStatus(victim.name, 'UP', 10_000);
    for (let i = 0; i < 6; i++) expect((await curlGet(haproxy.url(SMALL))).status).toBe(200);
    await until(() => served(again, SMALL).length >= 2, 5_000, 'requests to reach the restarted gateway');
  });

  it('SIGTERM drains a gateway: its download finishes, HAProxy takes it out (/readyz 503), and new requests never see its 503s', async () => {
    // Three downloads: leastconn puts two on one gateway and one on the other, which is drained.
    // Having fewer sessions, the draining gateway is the one leastconn picks for new requests
    // until the checks take it out: they get its 503 and HAProxy sends them again to the other.
    const downloads: Array<ReturnType<typeof curlGet>> = [];
    for (let i = 0; i < 3; i++) {
      downloads.push(curlGet(haproxy.url(BIG), ['--limit-rate', RATE], 30_000));
      await new Promise((resolve) => setTimeout(resolve, 150)); // each one assigned before the next
    }
    let sessions: number[] = [];
    for (const deadline = performance.now() + 10_000; ; ) {
      const stats = await haproxy.servers();
      sessions = gateways.map((g) => Number(stats.find((s) => s.svname === g.name)?.scur));
      if (sessions[0]! + sessions[1]! === 3) break;
      if (performance.now() > deadline) throw new Error(`downloads not under way: sessions ${sessions.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(Math.min(...sessions)).toBe(1);
    const draining = gateways[sessions[0]! < sessions[1]! ? 0 : 1]!;
    const refusedBefore = draining.proc.records().filter((r) => r.name === 'httpgw:access' && r.status === 503).length;
    draining.proc.child.kill('SIGTERM');
    await draining.proc.waitForLine(/draining transfers=1/);
    // The first at once, from this process (spawning curl can take longer than the checks on a
    // busy machine); then a burst with curl.
    const first = await fetch(haproxy.url(SMALL));
    expect(first.status).toBe(200);
    expect(sha256(Buffer.from(await first.arrayBuffer()))).toBe(sha256(files.get(SMALL)!));
    const burst = await Promise.all(Array.from({ length: 15 }, () => curlGet(haproxy.url(SMALL))));
    expect(burst.map((r) => r.status)).toEqual(burst.map(() => 200));
    expect(burst.every((r) => sha256(r.body) === sha256(files.get(SMALL)!))).toBe(true);
    await haproxy.waitForStatus(draining.name, 'DOWN', 10_000);
    // HAProxy writes its log line a moment after the stats socket says DOWN: wait for it. Usually its
    // /readyz check sees the 503 first; on a busy machine its `observe layer4` may take the draining
    // gateway out a moment earlier, on a connection that failed (seen once in CI): out either way.
    await expect.poll(() => haproxy.log(), { timeout: 5_000 }).toMatch(new RegExp(`Server gateways/${draining.name} is DOWN, reason: (Layer7 wrong status, code: 503|Health analyze)`));
    for (const result of await Promise.all(downloads)) {
      expect(result.status).toBe(200);
      expect(result.exitCode).toBe(0);
      expect(sha256(result.body)).toBe(sha256(files.get(BIG)!));
    }
    expect(await draining.proc.stop()).toBe(0);
    // The draining gateway refused requests with 503 before the checks took it out, and HAProxy
    // sent each again to the other gateway: no client saw one (above).
    const refused = draining.proc.records().filter((r) => r.name === 'httpgw:access' && r.status === 503).length - refusedBefore;
    expect(refused).toBeGreaterThanOrEqual(1);
    const stat = (await haproxy.servers()).find((s) => s.svname === draining.name)!;
    expect(Number(stat.wredis)).toBeGreaterThanOrEqual(1);
  });
});
