import { randomBytes } from 'node:crypto';
import { connect as connectTcp, type Socket } from 'node:net';
import { createFileServer } from '@httpgw/file-server';
import { createGateway } from '@httpgw/gateway';
import { keyFromSecret } from '@httpgw/protocol';
import { formatHostPort } from '@httpgw/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sha256, startCluster, writeFiles, type Cluster } from './support/cluster.js';
import { curlGet } from './support/curl-get.js';
import { startProcess, type RunningProcess } from './support/processes.js';
import { until } from './support/wait.js';
import { captureLogger } from './support/faulty-harness.js';

// The main scenarios over IPv4 and IPv6 loopback alike, then a dual-stack `::` gateway (the real
// commands) reached by IPv4 and IPv6 clients and file servers at once.

let root: { path: string; remove: () => Promise<void> };
let files: Map<string, Buffer>;

beforeAll(async () => {
  root = await makeTempDir();
  files = await writeFiles(root.path, { 'big.bin': 2 * 1024 * 1024 + 3, 'dir/a.txt': 'a\n', 'dir/b.txt': 'bb\n', 'dir/sub/c.txt': 'c' });
});

afterAll(async () => {
  await root?.remove();
});

describe.each(['127.0.0.1', '::1'])('over %s', (host) => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ root: root.path, host, servers: 3 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('registers every server under an unambiguous address:port', () => {
    const keys = cluster.gateway.pool.list().map((server) => server.key);
    expect(keys).toEqual(cluster.servers.map((server) => formatHostPort(host, server.address.port)));
    if (host === '::1') expect(keys.every((key) => key.startsWith('[::1]:'))).toBe(true);
  });

  it('downloads a file and a byte range with curl', async () => {
    const whole = await curlGet(cluster.url('big.bin'));
    expect(whole).toMatchObject({ status: 200, exitCode: 0 });
    expect(sha256(whole.body)).toBe(sha256(files.get('big.bin')!));
    const range = await curlGet(cluster.url('big.bin'), ['--range', '100-65635']);
    expect(range.status).toBe(206);
    expect(range.body.equals(files.get('big.bin')!.subarray(100, 65_636))).toBe(true);
  });

  it('lists a directory and answers 404 with curl', async () => {
    const listing = await curlGet(`${cluster.url('dir')}/?format=json`);
    expect(listing.status).toBe(200);
    const { entries } = JSON.parse(listing.body.toString()) as { entries: Array<{ name: string; kind: string }> };
    expect(entries.map((entry) => `${entry.kind}:${entry.name}`)).toEqual(['directory:sub', 'file:a.txt', 'file:b.txt']);
    expect((await curlGet(cluster.url('dir/missing.txt'))).status).toBe(404);
  });

  it('with a shared secret: admits the servers holding it and serves through them, never one without it', async () => {
    const key = keyFromSecret(randomBytes(32));
    const secured = await startCluster({ root: root.path, host, servers: 2, gateway: { key }, fileServer: { key } });
    try {
      const stranger = await createFileServer({ gateways: [{ host, port: secured.gateway.udpAddress.port }], root: root.path, bindAddress: host, key: keyFromSecret(randomBytes(32)) });
      try {
        const result = await curlGet(secured.url('dir/b.txt'));
        expect(result).toMatchObject({ status: 200 });
        expect(result.body.toString()).toBe('bb\n');
        await until(() => secured.gateway.stats().udp.refused > 0, 5_000, 'the stranger refused');
        expect(secured.gateway.pool.size).toBe(2);
      } finally {
        await stranger.stop();
      }
    } finally {
      await secured.stop();
    }
  });

  it('evicts a server that falls silent, and admits it again when it speaks', async () => {
    const relayed = await startCluster({ root: root.path, host, servers: 2, relay: {} });
    try {
      const victim = relayed.relay!.clients().find((entry) => entry.client.port === relayed.servers[0]!.address.port)!;
      const key = formatHostPort(victim.upstream.address, victim.upstream.port);
      expect(relayed.gateway.pool.get(key)).toBeDefined();
      relayed.relay!.silence(victim.client.port);
      await until(() => relayed.gateway.stats().pool.evicted === 1, 8_000, 'eviction');
      expect(relayed.gateway.pool.get(key)).toBeUndefined();
      expect((await curlGet(relayed.url('dir/a.txt'))).status).toBe(200);
      relayed.relay!.silence(victim.client.port, false);
      await until(() => relayed.gateway.stats().pool.readmitted === 1, 8_000, 're-admission');
      expect(relayed.gateway.pool.get(key)).toBeDefined();
    } finally {
      await relayed.stop();
    }
  }, 30_000);
});

describe('the real commands on a dual-stack :: gateway', () => {
  let gateway: RunningProcess;
  const servers: RunningProcess[] = [];
  let httpPort: string;

  beforeAll(async () => {
    gateway = startProcess('httpgw', ['::', '0', '--udp-port', '0']);
    const [, http, udp] = await gateway.waitForLine(/listening http=\[::\]:(\d+) udp=\[::\]:(\d+)/);
    httpPort = http!;
    // One server registers over IPv4 (reaching the :: socket as ::ffff:127.0.0.1), one over IPv6.
    servers.push(startProcess('fastfilesrv', ['127.0.0.1', udp!, '--root', root.path, '--name', 'v4']));
    servers.push(startProcess('fastfilesrv', ['--gateway', `[::1]:${udp!}`, '--root', root.path, '--name', 'v6']));
    // A dual-stack server socket talking to an IPv4 gateway hears it as ::ffff:127.0.0.1: still its gateway.
    servers.push(startProcess('fastfilesrv', ['127.0.0.1', udp!, '--bind', '::', '--root', root.path, '--name', 'v4-from-dual']));
    await Promise.all(servers.map((server) => server.waitForLine(/registered with gateway/)));
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await gateway?.stop();
  });

  it('admits an IPv4 server as its IPv4 address and an IPv6 one in brackets', async () => {
    await gateway.waitForLine(/server admitted server=127\.0\.0\.1:\d+ serverName=v4/);
    await gateway.waitForLine(/server admitted server=\[::1\]:\d+ serverName=v6/);
    await gateway.waitForLine(/server admitted server=127\.0\.0\.1:\d+ serverName=v4-from-dual/);
    expect(gateway.log()).not.toMatch(/::ffff:/);
    expect(servers[1]!.log()).toMatch(/serving .*udp=\[::\]:\d+ gateways=\[::1\]:\d+/);
  });

  it('serves an IPv4 client and an IPv6 client, and logs the IPv4 one as the IPv4 address it is', async () => {
    for (const base of [`http://127.0.0.1:${httpPort}`, `http://[::1]:${httpPort}`]) {
      const result = await curlGet(`${base}/big.bin`);
      expect(result, base).toMatchObject({ status: 200, exitCode: 0 });
      expect(sha256(result.body)).toBe(sha256(files.get('big.bin')!));
    }
    const accessEntry = (client: string) => () => gateway.records().some((record) => record.name === 'httpgw:access' && record.path === '/big.bin' && record.status === 200 && record.client === client);
    await until(accessEntry('127.0.0.1'), 10_000, 'the IPv4 access entry');
    await until(accessEntry('::1'), 10_000, 'the IPv6 access entry');
    expect(gateway.log()).not.toMatch(/::ffff:/);
  });

  it('counts an IPv4 client of the dual-stack listener against its IPv4 address\'s per-client limit', async () => {
    const log = captureLogger();
    const dual = await createGateway({ address: '::', httpPort: 0, udpPort: 0, limits: { maxConnectionsPerClient: 1 }, logger: log.logger });
    const sockets: Socket[] = [];
    try {
      const connect = () =>
        new Promise<{ socket: Socket; text: () => string; closed: Promise<void> }>((resolve) => {
          const socket = connectTcp(dual.httpAddress.port, '127.0.0.1');
          sockets.push(socket);
          let text = '';
          socket.on('data', (data: Buffer) => (text += data.toString()));
          const closed = new Promise<void>((done) => socket.once('close', () => done()));
          socket.once('connect', () => resolve({ socket, text: () => text, closed }));
        });
      await connect();
      await until(() => dual.stats().limits.connectionsOpen === 1, 5_000, 'one connection');
      const second = await connect();
      await second.closed;
      expect(second.text()).toMatch(/^HTTP\/1\.1 429 /);
      await until(() => log.lines.some((line) => /per-client connection limit hit client=127\.0\.0\.1 /.test(line)), 5_000, 'the log line');
    } finally {
      for (const socket of sockets) socket.destroy();
      await dual.stop();
    }
  });

  it('httpgw ::1 binds HTTP and UDP on IPv6 loopback, and fastfilesrv ::1 PORT registers with it', async () => {
    const v6 = startProcess('httpgw', ['::1', '0']);
    try {
      const [, port] = await v6.waitForLine(/listening http=\[::1\]:(\d+) udp=\[::1\]:\d+/);
      const server = startProcess('fastfilesrv', ['::1', port!, '--root', root.path]);
      try {
        await server.waitForLine(/registered with gateway gateway=\[::1\]:\d+/);
        const result = await curlGet(`http://[::1]:${port!}/dir/a.txt`);
        expect(result).toMatchObject({ status: 200 });
        expect(result.body.toString()).toBe('a\n');
      } finally {
        await server.stop();
      }
    } finally {
      await v6.stop();
    }
  });
});
