import { request } from 'node:http';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sha256, writeFiles } from './support/cluster.js';
import { BINS, memoryOf, run, startProcess, type RunningProcess } from './support/processes.js';

describe('command lines', () => {
  it('httpgw --help shows usage and examples; a bad flag exits 2 with one line', async () => {
    const help = await run(process.execPath, [BINS.httpgw, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--chunk-size');
    expect(help.stdout).toContain('--read-ahead-budget');
    expect(help.stdout).toContain('Examples:');
    const bad = await run(process.execPath, [BINS.httpgw, '--chunk-size', '12']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toMatch(/^httpgw: --chunk-size must be/);
    const unknown = await run(process.execPath, [BINS.httpgw, '--no-such-flag']);
    expect(unknown.code).toBe(2);
  });

  it('fastfilesrv --help shows usage; a missing gateway exits 2', async () => {
    const help = await run(process.execPath, [BINS.fastfilesrv, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--root');
    const bad = await run(process.execPath, [BINS.fastfilesrv]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^fastfilesrv: no gateway given/);
  });
});

describe('the real CLIs with curl and wget', () => {
  let gateway: RunningProcess;
  const servers: RunningProcess[] = [];
  let root: { path: string; remove: () => Promise<void> };
  let files: Map<string, Buffer>;
  let base: string;

  beforeAll(async () => {
    root = await makeTempDir();
    files = await writeFiles(root.path, { 'big.bin': 3 * 1024 * 1024 + 5, 'docs/ünïcode name.txt': 'hello wget\n' });
    // A sparse 1 GiB file: no disk, yet every chunk is read and checked like any other.
    const sparse = await open(join(root.path, 'huge.bin'), 'w');
    await sparse.truncate(1024 * 1024 * 1024);
    await sparse.close();
    // No cache: the memory bound of the transfer path is what the slow-client test checks.
    gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', '--read-ahead', String(4 * 1024 * 1024), '--cache-size', '0']);
    const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/);
    base = `http://${http}`;
    for (let i = 0; i < 3; i++) servers.push(startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', root.path, '--bind', '127.0.0.1']));
    await Promise.all(servers.map((server) => server.waitForLine(/registered with gateway/)));
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await gateway?.stop();
    await root?.remove();
  });

  it('curl downloads a file byte for byte and the access log names the servers used', async () => {
    const out = join(root.path, 'curl.out');
    const result = await run('curl', ['-sS', '-f', '-o', out, `${base}/big.bin`]);
    expect(result.code, result.stderr).toBe(0);
    expect(sha256(await readFile(out))).toBe(sha256(files.get('big.bin')!));
    const line = await gateway.waitForLine(/GET \/big\.bin .*status=200 bytes=3145733 .*servers=(\S+)/);
    expect(line[1]!.split(',').length).toBe(3);
  });

  it('wget downloads a Unicode name into a file of that name', async () => {
    const result = await run('wget', ['-q', `${base}/docs/%C3%BCn%C3%AFcode%20name.txt`], { cwd: root.path });
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(root.path, 'ünïcode name.txt'), 'utf8')).toBe('hello wget\n');
  });

  it('curl gets 404 for a missing file (exit 22 with -f)', async () => {
    const result = await run('curl', ['-sS', '-f', '-o', '/dev/null', `${base}/nope.bin`]);
    expect(result.code).toBe(22);
    expect(result.stderr).toContain('404');
  });

  it('keeps its memory bounded while a slow client reads a 1 GiB file', async () => {
    const pid = gateway.child.pid!;
    const before = await memoryOf(pid);
    let received = 0;
    let peakRss = before.rss;
    await new Promise<void>((resolve, reject) => {
      const req = request(`${base}/huge.bin`, (response) => {
        expect(response.statusCode).toBe(200);
        response.pause();
        // Read 64 KiB every 5 ms (~12 MB/s) for 2 s: far slower than the gateway could fetch. The slow
        // client for a fixed time is the scenario, not a wait for something to happen.
        const reader = setInterval(async () => {
          for (let part = response.read(64 * 1024); part !== null && received < 24 * 1024 * 1024; part = null) received += part.length;
          peakRss = Math.max(peakRss, (await memoryOf(pid)).rss);
        }, 5);
        setTimeout(() => {
          clearInterval(reader);
          req.destroy();
          resolve();
        }, 2_000);
      });
      req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
      req.end();
    });
    expect(received).toBeGreaterThan(1024 * 1024);
    // Read-ahead is 4 MiB: the gateway must not buffer the file, whatever its size.
    expect(peakRss - before.rss).toBeLessThan(64 * 1024 * 1024);
    expect(peakRss).toBeLessThan(150 * 1024 * 1024);
  });

  it('logs the servers leaving when they stop', async () => {
    const extra = startProcess('fastfilesrv', ['127.0.0.1', /udp=\S+:(\d+)/.exec(gateway.log())![1]!, '--root', root.path, '--bind', '127.0.0.1', '--name', 'leaver']);
    await extra.waitForLine(/registered with gateway/);
    expect(await extra.stop()).toBe(0);
    await gateway.waitForLine(/server left .*why="server said goodbye"/);
  });
});
