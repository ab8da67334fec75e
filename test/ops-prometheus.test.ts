import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sha256, writeFiles } from './support/cluster.js';
import { run, startProcess, type RunningProcess } from './support/processes.js';
import { startPrometheus, type Prometheus } from './support/prometheus.js';

const TOKEN = 'prometheus-scrape-token-7d2e';
const SIZE = 16 * 1024 * 1024;
/** curl's --limit-rate: the download takes about SIZE / RATE = 4 s, long enough for a rate over scrapes a second apart. */
const RATE = 4 * 1024 * 1024;

/** The gateway's duration buckets (ops/metrics.ts), seconds. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a real Prometheus scraping a gateway and its file servers', () => {
  let root: { path: string; remove: () => Promise<void> };
  let files: Map<string, Buffer>;
  let gateway: RunningProcess;
  const servers: RunningProcess[] = [];
  let prometheus: Prometheus;
  let base: string;
  let adminUrl: string;

  beforeAll(async () => {
    root = await makeTempDir();
    files = await writeFiles(root.path, { 'big.bin': SIZE, 'warm-up.txt': 'warm up\n' });
    const tokenFile = join(root.path, '.admin-token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', '--admin', '127.0.0.1:0', '--admin-token-file', tokenFile]);
    const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/);
    const [, adminPort] = await gateway.waitForLine(/admin listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    adminUrl = `http://127.0.0.1:${adminPort}`;
    base = `http://${http}`;
    for (let i = 0; i < 2; i++) servers.push(startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', root.path, '--bind', '127.0.0.1', '--metrics-port', '0']));
    const metricsPorts = await Promise.all(servers.map(async (server) => (await server.waitForLine(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1]!));
    await Promise.all(servers.map((server) => server.waitForLine(/registered with gateway/)));
    prometheus = await startPrometheus([
      { name: 'httpgw', targets: [`127.0.0.1:${adminPort}`], tokenFile },
      { name: 'fastfilesrv', targets: metricsPorts.map((port) => `127.0.0.1:${port}`) },
    ]);
    await prometheus.waitForTargets(3);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await Promise.all(servers.map((server) => server.stop()));
    await gateway?.stop();
    await root?.remove();
  });

  it('its rate of bytes and its duration quantile match a download the test timed', async () => {
    // The histogram's series must exist before the download so that rate() sees its increase.
    expect((await run('curl', ['-sSf', '-o', '/dev/null', `${base}/warm-up.txt`])).code).toBe(0);
    await sleep(2_500);

    const out = join(root.path, 'download.out');
    const started = Date.now();
    const result = await run('curl', ['-sSf', '--limit-rate', String(RATE), '-o', out, `${base}/big.bin`]);
    const finished = Date.now();
    expect(result.code, result.stderr).toBe(0);
    expect(sha256(await readFile(out))).toBe(sha256(files.get('big.bin')!));
    const seconds = (finished - started) / 1_000;
    const measuredRate = SIZE / seconds;
    // Let Prometheus scrape the end of it.
    await sleep(3_000);

    // Every body byte sent, as counted by the gateway: the warm-up file and the download.
    expect(await prometheus.query('httpgw_http_sent_bytes_total')).toBe(SIZE + files.get('warm-up.txt')!.length);
    // The byte rate over a window holding the whole download (the gateway writes ahead of curl's
    // limited reads into the socket buffers, so a window in its middle runs ahead of curl's pace).
    const window = Math.ceil(seconds) + 2;
    const rate = await prometheus.query(`rate(httpgw_http_sent_bytes_total[${window}s])`, finished + 1_000);
    expect(rate).toBeGreaterThan((SIZE / window) * 0.6);
    expect(rate).toBeLessThan((SIZE / window) * 1.6);
    expect(rate).toBeLessThan(measuredRate * 1.6);
    // The bytes the file servers sent for it: the file plus the datagrams' headers.
    const fromServers = await prometheus.query('sum(increase(fastfilesrv_chunk_sent_bytes_total[1m]))');
    expect(fromServers).toBeGreaterThan(SIZE * 0.8);
    expect(fromServers).toBeLessThan(SIZE * 1.5);
    expect(await prometheus.query('sum(fastfilesrv_chunks_served_total)')).toBeGreaterThanOrEqual(SIZE / 65_536);

    // The download was the only request in the last minute: its duration is the median, within the
    // histogram bucket holding the duration the gateway recorded for it (up to its last byte written
    // to the socket: curl, reading slowly, finished later, by what the socket buffers held).
    const recent = await fetch(`${adminUrl}/transfers/recent?path=big.bin&limit=1`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    const [entry] = ((await recent.json()) as { transfers: Array<{ durationMs: number; bytes: number; status: number }> }).transfers;
    expect(entry).toMatchObject({ bytes: SIZE, status: 200 });
    const duration = entry!.durationMs / 1_000;
    expect(duration).toBeLessThanOrEqual(seconds + 0.1);
    const bucketTop = DURATION_BUCKETS.find((bound) => bound >= duration)!;
    const bucketBottom = DURATION_BUCKETS[DURATION_BUCKETS.indexOf(bucketTop) - 1] ?? 0;
    const median = await prometheus.query('histogram_quantile(0.5, sum by (le) (rate(httpgw_http_request_duration_seconds_bucket{method="GET"}[1m])))');
    expect(median).toBeGreaterThanOrEqual(bucketBottom);
    expect(median).toBeLessThanOrEqual(bucketTop);
    const ttfb = await prometheus.query('histogram_quantile(0.5, sum by (le) (rate(httpgw_http_time_to_first_byte_seconds_bucket[1m])))');
    expect(ttfb).toBeGreaterThan(0);
    expect(ttfb).toBeLessThan(duration);
    expect(await prometheus.query('sum(increase(httpgw_http_requests_total{method="GET",status="200"}[1m]))')).toBeGreaterThan(0.5);
    expect(await prometheus.query('httpgw_servers{state="active"}')).toBe(2);
    expect(await prometheus.query('count(httpgw_server_srtt_seconds)')).toBe(2);
  });
});
