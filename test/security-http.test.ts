import { randomBytes } from 'node:crypto';
import { open, symlink } from 'node:fs/promises';
import { get, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { GatewayInit } from '@httpgw/gateway';
import { makeTempDir, rawRequest, sha256, startCluster, writeFiles, type Cluster } from './support/cluster.js';
import { clusterForTest } from './support/fixtures.js';
import { BINS, run } from './support/processes.js';
import { LOOPBACK, logSink, type LogSink } from './security-support.js';
import { until } from './support/wait.js';

/** Something that must never appear in any response: it lives next to the root, not under it. */
const SENTINEL = `TOP-SECRET-${randomBytes(8).toString('hex')}`;

let base: string;
let root: string;
let files: Map<string, Buffer>;
let removeBase: () => Promise<void>;

beforeAll(async () => {
  const dir = await makeTempDir();
  base = dir.path;
  removeBase = dir.remove;
  root = join(base, 'root');
  await writeFiles(join(base, 'outside'), { 'secret.txt': SENTINEL, 'passwd': SENTINEL });
  files = await writeFiles(root, {
    'public/ok.txt': 'public\n',
    'x.bin': 100_000,
    '.secret': SENTINEL,
    '.git/config': SENTINEL,
    'dir/.hidden': SENTINEL,
    'dir/shown.txt': 'shown\n',
  });
  await symlink(join(base, 'outside', 'secret.txt'), join(root, 'link-out.txt'));
  await symlink(join(base, 'outside'), join(root, 'dir-out'));
  await symlink('../outside/secret.txt', join(root, 'public', 'relative-out.txt'));
  await symlink(join(root, 'public', 'ok.txt'), join(root, 'link-in.txt'));
  await symlink('public', join(root, 'dir-in'));
  await symlink('loop-b', join(root, 'loop-a'));
  await symlink('loop-a', join(root, 'loop-b'));
  // A sparse 256 MiB file: a download of it outlasts every socket buffer on the way.
  const big = await open(join(root, 'big.bin'), 'w');
  await big.truncate(256 * 1024 * 1024);
  await big.close();
});
afterAll(async () => removeBase?.());

function cluster(gateway: GatewayInit = {}): Promise<Cluster> {
  return clusterForTest({ root, servers: 1, gateway: { chunkSize: 60 * 1024, cache: { memoryBytes: 0 }, ...gateway } });
}

describe('paths at the HTTP layer', () => {
  let gw: Cluster;
  beforeAll(async () => {
    gw = await startCluster({ root, servers: 2 });
  });
  afterAll(async () => gw?.stop());

  it.each([
    ['/../outside/secret.txt', 400],
    ['/public/../../outside/secret.txt', 400],
    ['/%2e%2e/outside/secret.txt', 400],
    ['/%2E%2E/outside/secret.txt', 400],
    ['/public/%2e%2e/%2e%2e/outside/secret.txt', 400],
    ['/..%2foutside%2fsecret.txt', 400],
    ['/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt', 400],
    ['/public%5c..%5c..%5coutside%5csecret.txt', 400],
    ['/%5c%5cserver%5cshare', 400],
    ['/%c0%ae%c0%ae/outside/secret.txt', 400], // overlong UTF-8 for '.': not valid UTF-8 at all
    ['/%252e%252e/outside/secret.txt', 404], // decoded once: a name with '%' in it, not '..'
    ['/public/ok.txt%00.png', 400],
    ['/public/ok%0a.txt', 400],
    ['/public/ok%1b.txt', 400],
    ['/public/ok%7f.txt', 400],
    ['/public/ok%c2%85.txt', 400],
    [`/${'a'.repeat(256)}`, 400],
    [`/${'a/'.repeat(600)}b`, 400],
    ['//etc/passwd', 404], // relative to the root: there is no etc/passwd under it
    ['/%2fetc%2fpasswd', 404],
    ['/.secret', 404],
    ['/%2esecret', 404],
    ['/.git/config', 404],
    ['/dir/.hidden', 404],
    ['/link-out.txt', 404],
    ['/dir-out/secret.txt', 404],
    ['/dir-out/passwd', 404],
    ['/public/relative-out.txt', 404],
    ['/loop-a', 404], // a cycle of links names nothing (it is no server failure either)
  ])('GET %s is %i and leaks nothing', async (target, status) => {
    for (const method of ['GET', 'HEAD']) {
      const response = await rawRequest(gw.gateway.httpAddress.port, target, method);
      expect(response.status, `${method} ${target}`).toBe(status);
      expect(response.body).not.toContain(SENTINEL);
    }
  });

  it('serves links that stay under the root', async () => {
    expect((await rawRequest(gw.gateway.httpAddress.port, '/link-in.txt')).body).toBe('public\n');
    expect((await rawRequest(gw.gateway.httpAddress.port, '/dir-in/ok.txt')).body).toBe('public\n');
  });

  it('lists neither dotfiles nor links that leave the root', async () => {
    for (const target of ['/', '/dir/', '/public/', '/?format=json']) {
      const response = await rawRequest(gw.gateway.httpAddress.port, target);
      expect(response.status, target).toBe(200);
      for (const hidden of ['.secret', '.git', '.hidden', 'link-out.txt', 'dir-out', 'relative-out.txt', SENTINEL]) expect(response.body, target).not.toContain(hidden);
    }
  });

  it('answers 414 beyond the URL limit, and node itself 431 beyond its header limit', async () => {
    expect((await rawRequest(gw.gateway.httpAddress.port, `/x.bin?${'q'.repeat(9_000)}`)).status).toBe(414);
    const small = await cluster({ limits: { maxUrlBytes: 100 } });
    expect((await rawRequest(small.gateway.httpAddress.port, `/x.bin?${'q'.repeat(100)}`)).status).toBe(414);
    expect((await rawRequest(small.gateway.httpAddress.port, '/x.bin?q')).status).toBe(200);
    expect((await rawRequest(small.gateway.httpAddress.port, `/x.bin?${'q'.repeat(20_000)}`)).status).toBe(431);
    expect(small.gateway.stats().limits.headersTooLarge).toBe(1);
  });
});

/** A GET whose body is never read: the transfer stays open until the test lets it go. */
function heldDownload(port: number, path = '/big.bin'): Promise<{ response: IncomingMessage; request: ClientRequest }> {
  return new Promise((resolve, reject) => {
    const request = get({ host: LOOPBACK, port, path, agent: false }, (response) => {
      response.pause();
      resolve({ response, request });
    });
    request.on('error', (error) => (request.destroyed ? undefined : reject(error)));
    onTestFinished(() => void request.destroy());
  });
}

interface RawConnection {
  socket: Socket;
  /** Everything received so far. */
  text(): string;
  /** Resolves when the connection is closed. */
  closed: Promise<void>;
}

function rawSocket(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, LOOPBACK);
    let text = '';
    socket.on('data', (data) => (text += data.toString()));
    socket.on('error', () => {});
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('connect', () => resolve({ socket, text: () => text, closed }));
    socket.once('error', reject);
    onTestFinished(() => void socket.destroy());
  });
}

describe('transfer limits', () => {
  it('answers 429 with Retry-After beyond the per-client limit, and serves again once a transfer ends', async () => {
    const log = logSink('httpgw');
    const gw = await cluster({ limits: { maxTransfersPerClient: 2 }, logger: log.logger });
    const port = gw.gateway.httpAddress.port;
    const held = [await heldDownload(port), await heldDownload(port)];
    for (const method of ['GET', 'HEAD']) {
      const refused = await rawRequest(port, '/x.bin', method);
      expect(refused.status).toBe(429);
      expect(refused.headers['retry-after']).toBe('1');
      if (method === 'GET') expect(refused.body).toBe('429 too many transfers in progress from this client\n');
    }
    expect(gw.gateway.stats().limits.transfersRefusedPerClient).toBe(2);
    await log.waitFor(/WARN .*per-client transfer limit hit .*limit=2 status=429/);
    held[0]!.request.destroy();
    await until(() => gw.gateway.stats().limits.transfersInProgress === 1, 5_000, 'the slot to free');
    expect((await rawRequest(port, '/x.bin', 'HEAD')).status).toBe(200);
  });

  it('answers 503 with Retry-After beyond the overall limit', async () => {
    const log = logSink('httpgw');
    const gw = await cluster({ limits: { maxTransfers: 2, maxTransfersPerClient: 10 }, logger: log.logger });
    const port = gw.gateway.httpAddress.port;
    await heldDownload(port);
    await heldDownload(port);
    const refused = await rawRequest(port, '/x.bin');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    await log.waitFor(/WARN .*transfer limit hit .*limit=2 status=503/);
    expect(gw.gateway.stats().limits.transfersRefused).toBe(1);
  });

  it('closes a connection on which nothing moves for the idle timeout, and frees its transfer', async () => {
    const log = logSink('httpgw');
    const gw = await cluster({ limits: { idleTimeoutMs: 1_500 }, logger: log.logger });
    // The first request of a file waits while its servers hash it (its version is a digest of its bytes).
    expect((await rawRequest(gw.gateway.httpAddress.port, '/big.bin', 'HEAD')).status).toBe(200);
    const { response } = await heldDownload(gw.gateway.httpAddress.port);
    expect(response.statusCode).toBe(200);
    await until(() => gw.gateway.stats().limits.transfersInProgress === 0, 5_000, 'the transfer to end');
    expect(gw.gateway.stats().limits.idleTimeouts).toBe(1);
    await log.waitFor(/WARN .*stalled connection closed .*ms=1500/);
    // The client, once it reads again, finds the response cut short.
    const ended = new Promise<boolean>((resolve) => response.once('close', () => resolve(response.complete)));
    response.on('error', () => {});
    response.resume();
    expect(await ended).toBe(false);
  });
});

describe('slow clients', () => {
  let log: LogSink;
  let gw: Cluster;
  beforeAll(async () => {
    log = logSink('httpgw');
    gw = await startCluster({ root, servers: 1, gateway: { limits: { headersTimeoutMs: 500, requestTimeoutMs: 1_000, keepAliveTimeoutMs: 300 }, logger: log.logger } });
  });
  afterAll(async () => gw?.stop());

  it('holding connections by dribbling headers starve nobody, and are cut with 408 after the headers timeout', async () => {
    const port = gw.gateway.httpAddress.port;
    const dribblers = await Promise.all(Array.from({ length: 20 }, () => rawSocket(port)));
    const started = performance.now();
    const timers = dribblers.map(({ socket }, i) => {
      socket.write('GET /x.bin HTTP/1.1\r\nHost: x\r\n');
      return setInterval(() => socket.writable && socket.write(`X-Slow-${i}: a\r\n`), 50);
    });
    onTestFinished(() => timers.forEach(clearInterval));
    let cut = 0;
    for (const dribbler of dribblers) void dribbler.closed.then(() => cut++);
    // Meanwhile, an ordinary client is served, while every slow one still holds its connection.
    const response = await fetch(`http://${LOOPBACK}:${port}/x.bin`);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(files.get('x.bin')!));
    expect(cut).toBe(0);
    await Promise.all(dribblers.map((dribbler) => dribbler.closed));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThan(450);
    expect(elapsed).toBeLessThan(5_000);
    for (const dribbler of dribblers) expect(dribbler.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(gw.gateway.stats().limits.requestTimeouts).toBeGreaterThanOrEqual(20);
    await log.waitFor(/WARN .*request not received in time/);
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const connection = await rawSocket(gw.gateway.httpAddress.port);
    connection.socket.write('HEAD /x.bin HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => connection.text().includes('\r\n\r\n'), 5_000, 'the response');
    const answered = performance.now();
    expect(connection.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await connection.closed;
    expect(performance.now() - answered).toBeGreaterThan(250);
    expect(performance.now() - answered).toBeLessThan(5_000);
    // Routine, not a limit hit: neither counted nor logged as one.
    expect(gw.gateway.stats().limits.idleTimeouts).toBe(0);
    expect(log.lines.join('')).not.toMatch(/stalled connection closed/);
  });
});

describe('connection limits', () => {
  it('refuses connections beyond the per-client limit with 429, before reading a byte', async () => {
    const log = logSink('httpgw');
    const gw = await cluster({ limits: { maxConnectionsPerClient: 4 }, logger: log.logger });
    const port = gw.gateway.httpAddress.port;
    const idle = await Promise.all(Array.from({ length: 4 }, () => rawSocket(port)));
    await until(() => gw.gateway.stats().limits.connectionsOpen === 4, 5_000, 'four connections');
    const fifth = await rawSocket(port);
    await fifth.closed;
    expect(fifth.text()).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n(.*\r\n)*Retry-After: 1\r\n/);
    await log.waitFor(/WARN .*per-client connection limit hit .*limit=4 status=429/);
    idle[0]!.socket.destroy();
    await until(() => gw.gateway.stats().limits.connectionsOpen === 3, 5_000, 'a slot to free');
    expect((await rawRequest(port, '/public/ok.txt')).status).toBe(200);
  });

  it('refuses connections beyond the overall limit with 503', async () => {
    const log = logSink('httpgw');
    const gw = await cluster({ limits: { maxConnections: 3 }, logger: log.logger });
    const port = gw.gateway.httpAddress.port;
    await Promise.all(Array.from({ length: 3 }, () => rawSocket(port)));
    await until(() => gw.gateway.stats().limits.connectionsOpen === 3, 5_000, 'three connections');
    const fourth = await rawSocket(port);
    fourth.socket.write('GET /public/ok.txt HTTP/1.1\r\nHost: x\r\n\r\n');
    await fourth.closed;
    expect(fourth.text()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(fourth.text()).not.toContain('public\n');
    expect(gw.gateway.stats().limits.connectionsRefused).toBe(1);
    await log.waitFor(/WARN .*connection limit hit .*limit=3 status=503/);
  });

  it('refuses nonsense limits on the command line', async () => {
    for (const args of [['--max-transfers', '0'], ['--max-connections-per-client', '1.5'], ['--headers-timeout', '5000', '--request-timeout', '1000'], ['--max-datagram-rate', '-1']]) {
      const result = await run(process.execPath, [BINS.httpgw, ...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^httpgw: --\S+ must be/);
    }
    const server = await run(process.execPath, [BINS.fastfilesrv, LOOPBACK, '9', '--max-datagram-rate', '0']);
    expect(server.code).toBe(2);
    expect(server.stderr).toMatch(/^fastfilesrv: --max-datagram-rate must be a positive integer/);
  });

  it('refuses nonsense limits at startup', async () => {
    await expect(startCluster({ root, servers: 0, gateway: { limits: { maxTransfers: 0 } } })).rejects.toThrow(/maxTransfers must be a positive integer/);
    await expect(startCluster({ root, servers: 0, gateway: { limits: { headersTimeoutMs: 5_000, requestTimeoutMs: 1_000 } } })).rejects.toThrow(/requestTimeoutMs must be at least/);
  });
});
