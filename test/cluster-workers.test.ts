import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir, sha256, writeFiles } from './support/cluster.js';
import { until } from './support/faulty-harness.js';
import { run, startProcess, type RunningProcess } from './support/processes.js';

// `httpgw --workers 2`: two gateway processes behind one HTTP port (node:cluster), each with its own
// UDP port, one file server registered with both; curl as the client.

let root: { path: string; remove: () => Promise<void> };
let files: Map<string, Buffer>;

beforeAll(async () => {
  root = await makeTempDir();
  files = await writeFiles(root.path, { 'file.bin': 2 * 1024 * 1024 + 123 });
});

afterAll(async () => {
  await root?.remove();
});

/** The primary, the workers' UDP ports (by index) and the file server. */
async function deployWorkers(): Promise<{ primary: RunningProcess; server: RunningProcess; base: string; udpPorts: string[] }> {
  const primary = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', '--workers', '2']);
  const listening = await Promise.all([0, 1].map((index) => primary.waitForLine(new RegExp(`httpgw\\[${index}\\]: listening http=(\\S+) udp=\\S+:(\\d+)`))));
  const http = listening[0]![1]!;
  expect(listening[1]![1]).toBe(http); // one HTTP port for both
  const udpPorts = listening.map((match) => match[2]!);
  expect(udpPorts[0]).not.toBe(udpPorts[1]);
  const server = startProcess('fastfilesrv', ['--gateway', `127.0.0.1:${udpPorts[0]}`, '--gateway', `127.0.0.1:${udpPorts[1]}`, '--root', root.path, '--bind', '127.0.0.1']);
  onTestFinished(async () => {
    await server.stop();
    await primary.stop();
  });
  await Promise.all([0, 1].map((index) => primary.waitForLine(new RegExp(`httpgw\\[${index}\\]\\S*: server admitted`))));
  return { primary, server, base: `http://${http}`, udpPorts };
}

/** curl's exit code and the body's digest, on a connection of its own. */
async function download(url: string): Promise<{ code: number | null; digest: string }> {
  const result = await run('sh', ['-c', `curl -sS --noproxy '*' -f '${url}' | sha256sum`]);
  return { code: result.code, digest: result.stdout.split(' ')[0]! };
}

/** Requests each worker answered, from the access log. */
function servedBy(primary: RunningProcess): number[] {
  const counts = [0, 0];
  for (const match of primary.log().matchAll(/httpgw\[(\d)\]:access: GET \/file\.bin /g)) counts[Number(match[1])]!++;
  return counts;
}

describe('httpgw --workers 2', () => {
  it('serves from both workers on one port; a killed worker comes back on its UDP port; SIGTERM drains both and exits 0', async () => {
    const { primary, base, udpPorts } = await deployWorkers();
    const expected = sha256(files.get('file.bin')!);
    for (let i = 0; i < 8; i++) expect(await download(`${base}/file.bin`)).toEqual({ code: 0, digest: expected });
    const [first, second] = servedBy(primary);
    expect(first! + second!).toBe(8);
    expect(first).toBeGreaterThan(0);
    expect(second).toBeGreaterThan(0);

    // kill -9 one worker: the primary starts it again, on the UDP port the file server knows.
    const workers = execFileSync('pgrep', ['-P', String(primary.child.pid)]).toString().trim().split('\n').map(Number);
    expect(workers).toHaveLength(2);
    process.kill(workers[1]!, 'SIGKILL');
    await primary.waitForLine(/a worker exited: starting it again/);
    const listening = () => [...primary.log().matchAll(/httpgw\[(\d)\]: listening http=\S+ udp=\S+:(\d+)/g)];
    await until(() => listening().length === 3, 10_000, 'the worker started again');
    const [, index, port] = listening()[2]!;
    expect(port).toBe(udpPorts[Number(index)]);
    await until(() => (primary.log().match(/server admitted/g) ?? []).length >= 3, 10_000, 'the file server back in the restarted worker');
    for (let i = 0; i < 6; i++) expect(await download(`${base}/file.bin`)).toEqual({ code: 0, digest: expected });

    expect(await primary.stop()).toBe(0);
    expect(primary.log()).toMatch(/httpgw\[0\]: stopped/);
    expect(primary.log()).toMatch(/httpgw\[1\]: stopped/);
    expect(primary.log()).toMatch(/httpgw: stopped exitCode=0/);
  }, 60_000);

  it('a worker that cannot bind its UDP port stops the gateway with status 1', async () => {
    const taken = createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const primary = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', String(taken.address().port), '--workers', '2']);
    await primary.waitForLine(/a worker failed to start: stopping/, 15_000);
    expect(primary.child.exitCode ?? (await new Promise((resolve) => primary.child.once('exit', resolve)))).toBe(1);
    expect(primary.log()).toMatch(/EADDRINUSE/);
  }, 30_000);

  it('refuses worker UDP ports beyond 65535 as a usage error', async () => {
    const result = await run(process.execPath, [new URL('../packages/gateway/bin/httpgw.js', import.meta.url).pathname, '127.0.0.1', '0', '--udp-port', '65535', '--workers', '2']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--workers 2 needs UDP ports 65535\.\.65536/);
  });
});
