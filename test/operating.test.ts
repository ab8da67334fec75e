import { statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir, sha256, writeFiles } from './support/cluster.js';
import { until } from './support/faulty-harness.js';
import { BINS, run, startProcess, type RunningProcess } from './support/processes.js';

// Operating the real commands: config file + environment + flags, JSON logs and the access log,
// health probes, SIGHUP reload and the SIGTERM drain, with curl as the client.

const REPO = fileURLToPath(new URL('..', import.meta.url));

let root: { path: string; remove: () => Promise<void> };
let files: Map<string, Buffer>;

beforeAll(async () => {
  root = await makeTempDir();
  files = await writeFiles(root.path, { 'small.txt': 'hello operator\n', 'big.bin': 4 * 1024 * 1024, 'large.bin': 24 * 1024 * 1024, healthz: 'a file named like a probe\n' });
});

afterAll(async () => {
  await root?.remove();
});

/** Runs a command with extra environment variables. */
function runWithEnv(args: string[], env: Record<string, string>) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return run(process.execPath, args);
  } finally {
    for (const key of Object.keys(env)) if (saved[key] === undefined) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

async function configFile(name: string, text: string): Promise<string> {
  const path = join(root.path, '..', `${root.path.split('/').pop()}-${name}`);
  await writeFile(path, text);
  onTestFinished(async () => {
    await writeFile(path, '');
  });
  return path;
}

interface Deployment {
  gateway: RunningProcess;
  server: RunningProcess;
  base: string;
}

/** A gateway process (with `args`) and one file server serving `root`, registered. */
async function deploy(args: string[] = [], env: Record<string, string> = {}, cleanup = true): Promise<Deployment> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  const gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', ...args]);
  for (const key of Object.keys(env)) if (saved[key] === undefined) delete process.env[key];
  const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/);
  const server = startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', root.path, '--bind', '127.0.0.1']);
  if (cleanup) {
    onTestFinished(async () => {
      await server.stop();
      await gateway.stop();
    });
  }
  await server.waitForLine(/registered with gateway/);
  await gateway.waitForLine(/server admitted/);
  return { gateway, server, base: `http://${http}` };
}

/** curl: exit code, status, headers (lower-case names) and body. */
async function curl(url: string, args: string[] = []) {
  const result = await run('curl', ['-sS', '--noproxy', '*', '-D', '-', '-o', '/dev/null', '-w', '\n%{http_code}', ...args, url], { timeoutMs: 30_000 });
  const lines = result.stdout.trim().split(/\r?\n/);
  const status = Number(lines.pop());
  const headers = new Map<string, string>();
  for (const line of lines) {
    const match = /^([^:\s]+):\s*(.*)$/.exec(line);
    if (match) headers.set(match[1]!.toLowerCase(), match[2]!);
  }
  return { code: result.code, status, headers, stderr: result.stderr };
}

async function curlBody(url: string, args: string[] = []) {
  const result = await run('curl', ['-sS', '--noproxy', '*', '-w', '\n%{http_code}', ...args, url], { timeoutMs: 30_000 });
  const cut = result.stdout.lastIndexOf('\n');
  return { code: result.code, status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut).trimEnd(), stderr: result.stderr };
}

/** A slow download to a file (curl --limit-rate); resolves with curl's exit code and the file's digest. */
function slowDownload(url: string, rate: string) {
  const out = join(root.path, '..', `${root.path.split('/').pop()}-${Math.random().toString(36).slice(2)}.out`);
  return {
    out,
    done: run('curl', ['-sS', '--noproxy', '*', '-f', '--limit-rate', rate, '-o', out, url], { timeoutMs: 60_000 }).then(async (result) => ({
      code: result.code,
      digest: sha256(await readFile(out).catch(() => Buffer.alloc(0))),
    })),
  };
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function exited(process: RunningProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = process.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('configuration: file, environment, flags', () => {
  it('flags win over the environment, the environment over the file; --print-config shows the result', async () => {
    const file = await configFile('gw.yaml', 'window: 10\nmax-transfers: 5\nlog-level: debug\nchunk-size: 1200\n');
    const fromAll = await runWithEnv([BINS.httpgw, '--config', file, '--print-config', '--window', '30'], { HTTPGW_WINDOW: '20', HTTPGW_LOG_LEVEL: 'warn' });
    expect(fromAll.code, fromAll.stderr).toBe(0);
    expect(fromAll.stdout).toMatch(/^window: 30$/m);
    expect(fromAll.stdout).toMatch(/^log-level: warn$/m);
    expect(fromAll.stdout).toMatch(/^max-transfers: 5$/m);
    expect(fromAll.stdout).toMatch(/^chunk-size: 1200$/m);
    const noFlag = await runWithEnv([BINS.httpgw, '--print-config'], { HTTPGW_CONFIG: file, HTTPGW_WINDOW: '20' });
    expect(noFlag.code, noFlag.stderr).toBe(0);
    expect(noFlag.stdout).toMatch(/^window: 20$/m);
    expect(noFlag.stdout).toMatch(/^log-level: debug$/m);
    const defaults = await run(process.execPath, [BINS.httpgw, '--print-config']);
    expect(defaults.stdout).toMatch(/^window: 64$/m);
    expect(defaults.stdout).toMatch(/^drain-timeout: 30000$/m);
  });

  it('fastfilesrv reads FASTFILESRV_* and still HTTPGW_SECRET_FILE; lists in the file', async () => {
    const file = await configFile('fs.yaml', 'gateway:\n  - gw1.example:9000\n  - gw2.example:9000\nallow-dotfiles: true\n');
    const result = await runWithEnv([BINS.fastfilesrv, '--config', file, '--print-config'], { FASTFILESRV_ROOT: '/srv/files', HTTPGW_SECRET_FILE: '/etc/httpgw.key' });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^root: \/srv\/files$/m);
    expect(result.stdout).toMatch(/^secret-file: \/etc\/httpgw\.key$/m);
    expect(result.stdout).toMatch(/^gateway:\n {2}- gw1\.example:9000\n {2}- gw2\.example:9000$/m);
    expect(result.stdout).toMatch(/^allow-dotfiles: true$/m);
  });

  it('an unknown key or a bad value is one line naming it and where it came from, exit 2', async () => {
    const typo = await configFile('typo.yaml', 'windw: 10\n');
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[BINS.httpgw, '--config', typo], {}, /^httpgw: unknown key "windw" in \S+typo\.yaml \(did you mean "window"\?\)$/],
      [[BINS.httpgw, '--config', await configFile('bad.yaml', 'max-transfers: -3\n')], {}, /^httpgw: max-transfers must be a positive integer \(in \S+bad\.yaml\)$/],
      [[BINS.httpgw, '--config', await configFile('notyaml.yaml', 'window: [1\n')], {}, /^httpgw: \S+notyaml\.yaml is not valid YAML/],
      [[BINS.httpgw, '--config', join(root.path, 'missing.yaml')], {}, /^httpgw: cannot read the config file \S+missing\.yaml: ENOENT$/],
      [[BINS.httpgw], { HTTPGW_MAX_TRANSFERS: 'lots' }, /^httpgw: HTTPGW_MAX_TRANSFERS must be a positive integer \(environment\)$/],
      [[BINS.httpgw], { HTTPGW_MAX_TRANSFER: '3' }, /^httpgw: unknown environment variable HTTPGW_MAX_TRANSFER/],
      [[BINS.httpgw, '--log-format', 'xml'], {}, /^httpgw: Invalid values:/],
      [[BINS.fastfilesrv, '--config', await configFile('fsbad.yaml', 'gateway: [nohostport]\n')], {}, /^fastfilesrv: gateway must be HOST:PORT \(in \S+fsbad\.yaml\)$/],
    ];
    for (const [args, env, pattern] of cases) {
      const result = await runWithEnv(args, env);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr.split('\n')[0], args.join(' ')).toMatch(pattern);
    }
  });
});

describe('the example config files in deploy/', () => {
  it('load as they are', async () => {
    for (const [bin, path] of [[BINS.httpgw, 'deploy/httpgw.example.yaml'], [BINS.fastfilesrv, 'deploy/fastfilesrv.example.yaml']] as const) {
      const result = await run(process.execPath, [bin, '--config', join(REPO, path), '--print-config']);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^log-level: info$/m);
    }
  });
});

describe('logs and probes of a running gateway', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy([], {}, false);
  });
  afterAll(async () => {
    await d.server.stop();
    await d.gateway.stop();
  });

  it('writes JSON lines when stderr is not a terminal', () => {
    const lines = d.gateway.records();
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.find((record) => String(record.msg).startsWith('listening'))).toMatchObject({ level: 'info', name: 'httpgw' });
    expect(d.gateway.records().every((record) => typeof record.time === 'string' && typeof record.level === 'string')).toBe(true);
  });

  it('one access entry per request with the request id it returns; a sane incoming id is kept', async () => {
    const result = await curl(`${d.base}/big.bin`, ['-H', 'X-Request-Id: ops-test-42', '-r', '1000-2999999']);
    expect(result.status).toBe(206);
    expect(result.headers.get('x-request-id')).toBe('ops-test-42');
    await until(() => d.gateway.records().some((record) => record.reqId === 'ops-test-42' && record.name === 'httpgw:access'), 5_000, 'the access entry');
    const entries = d.gateway.records().filter((record) => record.reqId === 'ops-test-42' && record.name === 'httpgw:access');
    expect(entries).toHaveLength(1);
    const [entry] = entries;
    expect(entry).toMatchObject({ method: 'GET', path: '/big.bin', range: 'bytes=1000-2999999', status: 206, bytes: 2_999_000, client: '127.0.0.1' });
    expect(entry!.retransmissions).toBeGreaterThanOrEqual(0);
    // From the servers, or (the cache is on by default) from the cache: then no server.
    expect(String(entry!.servers ?? '')).toMatch(/^(127\.0\.0\.1:\d+)?$/);
    expect(entry!.durationMs).toBeGreaterThanOrEqual(entry!.ttfbMs as number);
    expect(entry!.ttfbMs).toBeGreaterThan(0);
    // The gateway's cache says how it took part (Cache-Status).
    expect(entry!.cache).toMatch(/^httpgw; (hit|fwd=(miss|partial); stored)/);
  });

  it('an id with spaces or too long is replaced by a generated one', async () => {
    const spaced = await curl(`${d.base}/small.txt`, ['-H', 'X-Request-Id: has spaces']);
    expect(spaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const long = await curl(`${d.base}/small.txt`, ['-H', `X-Request-Id: ${'x'.repeat(200)}`]);
    expect(long.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const none = await curl(`${d.base}/nope.txt`);
    expect(none.status).toBe(404);
    const id = none.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const access = () => d.gateway.records().filter((record) => record.reqId === id && record.name === 'httpgw:access');
    await until(() => access().length > 0, 5_000, 'the 404 entry');
    expect(access()).toHaveLength(1);
    expect(access()[0]).toMatchObject({ status: 404, error: 'GW_ERR_NOT_FOUND', level: 'info' });
  });

  it('/healthz is 200, /readyz is 200 with a server; a file named healthz does not shadow the probe', async () => {
    const health = await curlBody(`${d.base}/healthz`);
    expect(health).toMatchObject({ status: 200, body: 'ok' });
    const ready = await curlBody(`${d.base}/readyz`);
    expect(ready).toMatchObject({ status: 200, body: 'ready' });
    // The root holds a file named `healthz`: the probe wins (docs/OPERATING.md), other files are served.
    const file = await curlBody(`${d.base}/small.txt`);
    expect(file).toMatchObject({ status: 200, body: 'hello operator' });
  });
});

describe('readiness without servers', () => {
  it('/readyz is 503 until a file server registers', async () => {
    const gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0']);
    onTestFinished(async () => {
      await gateway.stop();
    });
    const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/);
    expect(await curlBody(`http://${http}/readyz`)).toMatchObject({ status: 503, body: 'not ready: no file server registered' });
    expect(await curlBody(`http://${http}/healthz`)).toMatchObject({ status: 200 });
    const server = startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', root.path, '--bind', '127.0.0.1']);
    onTestFinished(async () => {
      await server.stop();
    });
    await gateway.waitForLine(/server admitted/);
    expect(await curlBody(`http://${http}/readyz`)).toMatchObject({ status: 200 });
  });
});

describe('SIGTERM drain', () => {
  it('a slow download finishes intact, /readyz turns 503, new requests are refused, exit 0', async () => {
    const d = await deploy(['--drain-timeout', '20000', '--read-ahead', String(256 * 1024)]);
    // Larger than what the loopback socket buffers hold: the gateway is still sending when signalled.
    const download = slowDownload(`${d.base}/large.bin`, '4M');
    await until(() => sizeOf(download.out) > 256 * 1024, 10_000, 'the download to be under way');
    d.gateway.child.kill('SIGTERM');
    await d.gateway.waitForLine(/draining .*transfers=1/);
    expect(await curlBody(`${d.base}/readyz`)).toMatchObject({ status: 503, body: 'not ready: draining' });
    expect(await curlBody(`${d.base}/healthz`)).toMatchObject({ status: 200 });
    const refused = await curl(`${d.base}/small.txt`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('connection')).toBe('close');
    const result = await download.done;
    expect(result.code).toBe(0);
    expect(result.digest).toBe(sha256(files.get('large.bin')!));
    expect(await exited(d.gateway)).toEqual({ code: 0, signal: null });
    expect(d.gateway.log()).toMatch(/drained: no transfer in flight/);
    // The gateway's goodbye: its server goes back to registering at once, not after missed heartbeats.
    await d.server.waitForLine(/gateway no longer knows this server; registering again/, 5_000);
  }, 60_000);

  it('--drain-timeout cuts a download that is too slow; the gateway still exits 0', async () => {
    const d = await deploy(['--drain-timeout', '500', '--read-ahead', String(256 * 1024)]);
    const download = slowDownload(`${d.base}/large.bin`, '1M');
    await until(() => sizeOf(download.out) > 64 * 1024, 10_000, 'the download to be under way');
    const signalled = performance.now();
    d.gateway.child.kill('SIGTERM');
    expect(await exited(d.gateway)).toEqual({ code: 0, signal: null });
    expect(performance.now() - signalled).toBeLessThan(10_000);
    expect((await download.done).code).toBe(18);
    expect(d.gateway.log()).toMatch(/drain timeout: cutting the transfers left .*transfers=1/);
  }, 60_000);

  it('a second signal exits at once', async () => {
    const d = await deploy(['--drain-timeout', '60000', '--read-ahead', String(256 * 1024)]);
    // Larger than loopback's socket buffers (a few MiB): the response is still being written when the signals come.
    const download = slowDownload(`${d.base}/large.bin`, '1M');
    await until(() => sizeOf(download.out) > 64 * 1024, 10_000, 'the download to be under way');
    d.gateway.child.kill('SIGTERM');
    await d.gateway.waitForLine(/draining/);
    const signalled = performance.now();
    d.gateway.child.kill('SIGINT');
    expect(await exited(d.gateway)).toEqual({ code: 130, signal: null });
    expect(performance.now() - signalled).toBeLessThan(5_000);
    expect(d.gateway.log()).toMatch(/second signal: exiting now/);
    await download.done;
  }, 60_000);

  it('a file server says goodbye, finishes, and exits 0', async () => {
    const d = await deploy();
    expect(await d.server.stop()).toBe(0);
    await d.gateway.waitForLine(/server left .*why="server said goodbye"/);
    expect(d.server.log()).toMatch(/stopped/);
  });
});

describe('SIGHUP reload', () => {
  it('applies a new limit without dropping a transfer; a restart-only option is reported and kept', async () => {
    const file = await configFile('hup.yaml', 'max-transfers: 10\nlog-level: info\n');
    const d = await deploy(['--config', file, '--read-ahead', String(256 * 1024)]);
    const download = slowDownload(`${d.base}/large.bin`, '4M');
    await until(() => sizeOf(download.out) > 256 * 1024, 10_000, 'the download to be under way');
    expect((await curl(`${d.base}/small.txt`)).status).toBe(200);
    await writeFile(file, 'max-transfers: 1\nlog-level: debug\nchunk-size: 1200\n');
    d.gateway.child.kill('SIGHUP');
    await d.gateway.waitForLine(/configuration changed option=max-transfers from=10 to=1/);
    await d.gateway.waitForLine(/configuration changed option=log-level from=info to=debug/);
    await d.gateway.waitForLine(/needs a restart.* option=chunk-size running=61440 configured=1200/);
    // The download in flight holds the one transfer allowed now: a second request is refused.
    const refused = await curl(`${d.base}/small.txt`);
    expect(refused.status).toBe(503);
    const result = await download.done;
    expect(result.code).toBe(0);
    expect(result.digest).toBe(sha256(files.get('large.bin')!));
    expect((await curl(`${d.base}/small.txt`)).status).toBe(200);
    // A file that no longer checks changes nothing.
    await writeFile(file, 'max-transfers: 0\n');
    d.gateway.child.kill('SIGHUP');
    await d.gateway.waitForLine(/configuration reload failed: the running configuration stays .*max-transfers must be a positive integer/);
    expect(d.gateway.child.exitCode).toBeNull();
  }, 60_000);
});
