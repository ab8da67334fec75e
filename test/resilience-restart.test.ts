import { createFileServer, type FileServer } from '@httpgw/file-server';
import { createGateway, type Gateway } from '@httpgw/gateway';
import { describe, expect, it, onTestFinished } from 'vitest';
import { sha256, type Cluster } from './support/cluster.js';
import { captureLogger, curl, download } from './support/faulty-harness.js';
import { createFaultyProxy } from './support/faulty-proxy.js';
import { clusterForTest as cluster, useRoot } from './support/fixtures.js';
import { until } from './support/wait.js';

// Restarts of either side, and the loud failure when a download truly cannot finish: the client
// sees the connection cut short (fetch body error, curl exit 18), never a short file that looks
// complete, and the gateway's log says why.

const CHUNK = 8 * 1024;
const FILE = 'big.bin';
const SIZE = 8 * 1024 * 1024 + 17;
const GATEWAY = { chunkSize: CHUNK, readAheadBytes: 1 << 20 };

const root = useRoot({ [FILE]: SIZE });
const original = (): Buffer => root.files.get(FILE)!;

const url = (gateway: Gateway) => `http://127.0.0.1:${gateway.httpAddress.port}/${FILE}`;

async function expectIntact(link: string): Promise<void> {
  const result = await download(link);
  expect(result.status).toBe(200);
  expect(result.error).toBeUndefined();
  expect(sha256(result.body)).toBe(sha256(original()));
}

describe('restarts', () => {
  /** A gateway whose stop() may be called by the test and again by the cleanup. */
  async function gatewayOn(udpPort: number): Promise<Gateway> {
    const gateway = await createGateway({ address: '127.0.0.1', httpPort: 0, udpPort, ...GATEWAY });
    let stopping: Promise<void> | undefined;
    const stop = () => (stopping ??= gateway.stop());
    onTestFinished(stop);
    return { ...gateway, stop };
  }

  async function fileServers(port: number, logger: ReturnType<typeof captureLogger>['logger']): Promise<FileServer[]> {
    const servers = await Promise.all(
      [0, 1, 2].map(() => createFileServer({ gateways: [{ host: '127.0.0.1', port }], root: root.path, bindAddress: '127.0.0.1', logger })),
    );
    onTestFinished(async () => {
      await Promise.all(servers.map((server) => server.stop()));
    });
    await Promise.all(servers.map((server) => server.whenRegistered()));
    return servers;
  }

  it.each([
    ['at once', 0],
    ['after 3.5 s down (the servers, told goodbye, kept registering)', 3_500],
  ])('a gateway restarted on the same UDP port %s gets its servers back within seconds, untouched', async (_when, downMs) => {
    const { logger, lines } = captureLogger('fs');
    const first = await gatewayOn(0);
    const port = first.udpAddress.port;
    await fileServers(port, logger);
    await first.waitForServers(3);
    await first.stop();
    // Not a wait for an event: the gateway staying down this long is the scenario.
    if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));

    const second = await gatewayOn(port);
    await until(() => second.pool.size === 3, 4_000, 'the servers to come back');
    expect(second.stats().pool.admitted).toBe(3);
    await expectIntact(url(second));
    // The stopping gateway said goodbye ("no longer knows this server"): each server went back to
    // registering at once, down for long or not, rather than after missed heartbeats.
    expect(lines.filter((line) => line.includes('gateway no longer knows this server; registering again')).length).toBeGreaterThanOrEqual(3);
    expect(lines.filter((line) => line.includes('gateway stopped answering heartbeats')).length).toBe(0);
  });

  it('a file server restarted on the same port is admitted again and used again', async () => {
    const c = await cluster({ root: root.path, gateway: GATEWAY });
    const victim = c.servers[0]!;
    const port = victim.address.port;
    await victim.stop();
    await until(() => c.gateway.pool.size === 2, 2_000, 'the goodbye');
    const again = await c.addServer({ bindPort: port });
    await c.gateway.waitForServers(3);
    expect(c.gateway.stats().pool).toMatchObject({ admitted: 3, left: 1, readmitted: 1 });
    await expectIntact(c.url(FILE));
    expect(again.stats.chunksSent).toBeGreaterThan(0);
  });
});

describe('loud failure', () => {
  /** Starts `fetchBody`, and once the gateway has taken in 1 MiB of the file, runs `strike`. */
  async function strikeMidTransfer<T>(c: Cluster, fetchBody: () => Promise<T>, strike: () => Promise<void>): Promise<T> {
    const downloading = fetchBody();
    await until(() => c.gateway.stats().udp.bytesIn > 1 << 20, 5_000, 'the transfer to start');
    await strike();
    return downloading;
  }

  it('every server gone mid-response: the body breaks off (fetch), and the log says why', async () => {
    const { logger, lines } = captureLogger();
    const c = await cluster({ root: root.path, gateway: { ...GATEWAY, logger } });
    const result = await strikeMidTransfer(c, () => download(c.url(FILE)), async () => {
      await Promise.all(c.servers.map((server) => server.stop()));
    });
    expect(result.status).toBe(200);
    expect(result.error).toBeDefined();
    expect(result.body.length).toBeLessThan(SIZE);
    expect(result.body.equals(original().subarray(0, result.body.length))).toBe(true);
    expect(result.ms).toBeLessThan(3_000);
    expect(lines.some((line) => line.includes('transfer failed') && line.includes('code=GW_ERR_SOURCES_GONE'))).toBe(true);
    expect(c.gateway.stats().transfers.failed).toBe(1);
  });

  it('every server gone mid-response: curl exits 18 (transfer closed with bytes outstanding)', async () => {
    const c = await cluster({ root: root.path, gateway: GATEWAY });
    const result = await strikeMidTransfer(c, () => curl(c.url(FILE)), async () => {
      await Promise.all(c.servers.map((server) => server.stop()));
    });
    expect(result.code).toBe(18);
    expect(result.stderr).toMatch(/transfer closed with \d+ bytes remaining/);
  });

  it('the only server hangs mid-response: the transfer stalls out after stallTimeoutMs, curl exits 18, the log says why', async () => {
    const { logger, lines } = captureLogger();
    const c = await cluster({ root: root.path, servers: 0, gateway: { ...GATEWAY, stallTimeoutMs: 1_500, logger } });
    let hung = false;
    const proxy = await createFaultyProxy({ target: c.gateway.udpAddress, tamper: () => (hung ? 'drop' : undefined) });
    onTestFinished(() => proxy.close());
    await c.addServer({ gateways: [{ host: '127.0.0.1', port: proxy.address.port }] });
    await c.gateway.waitForServers(1);
    const result = await strikeMidTransfer(c, () => curl(c.url(FILE)), async () => {
      hung = true;
    });
    expect(result.code).toBe(18);
    expect(result.ms).toBeLessThan(5_000);
    expect(lines.some((line) => line.includes('transfer failed') && line.includes('code=GW_ERR_STALLED'))).toBe(true);
    // The server is still in the pool: it heartbeats; a hang is no reason to forget it.
    expect(c.gateway.pool.size).toBe(1);
    expect(c.gateway.stats().requests.timeouts).toBeGreaterThan(0);
  });
});
