import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { sha256 } from './support/cluster.js';
import { adminCurl } from './support/admin-curl.js';
import { useCluster } from './support/fixtures.js';
import { until } from './support/wait.js';

const TOKEN = 'test-admin-token-4f9c1d';
const CHUNK = 4096;
const BIG = 6 * 1024 * 1024 + 5;

interface ServerJson {
  id: string;
  name: string;
  health: string;
  answers: number;
  inFlight: number;
  bytes: number;
}

/** curl downloading `url` at a limited rate; resolves with the SHA-256 of what it got. */
function slowDownload(url: string, rate: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['--silent', '--show-error', '--fail', '--noproxy', '*', '--limit-rate', rate, url], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
      if (error) return reject(error);
      resolve(sha256(stdout));
    });
  });
}

describe('the admin API, through curl', () => {
  const fixture = useCluster(
    { 'big.bin': BIG, 'small.txt': 'small file\n' },
    {
      servers: 3,
      // A small read-ahead: the transfer follows curl's pace, so most chunks are still to fetch when the drain comes.
      gateway: { chunkSize: CHUNK, readAheadBytes: 256 * 1024, admin: { port: 0, token: TOKEN, config: { window: 64, 'secret-file': '/etc/httpgw.key', 'admin-token-file': '/etc/admin.token' } } },
    },
  );
  const admin = (path: string) => `http://127.0.0.1:${fixture.cluster.gateway.admin!.address.port}${path}`;
  const servers = async () => ((await adminCurl(admin('/servers'), { token: TOKEN })).json as { servers: ServerJson[] }).servers;

  it('answers 401 with WWW-Authenticate and nothing else without the token or with a wrong one', async () => {
    for (const token of [undefined, 'wrong-token', `${TOKEN}x`, '']) {
      for (const path of ['/servers', '/metrics', '/config', '/transfers', '/dashboard/data', '/no-such-route']) {
        const answer = await adminCurl(admin(path), token === undefined ? {} : { token });
        expect(answer.status, `${path} with ${token}`).toBe(401);
        expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="httpgw-admin"');
        expect(answer.json).toEqual({ status: 401, error: 'unauthorized' });
      }
    }
    const target = fixture.cluster.gateway.pool.list()[0]!;
    for (const method of ['POST', 'DELETE']) {
      const refused = await adminCurl(admin(`/servers/${encodeURIComponent(target.key)}${method === 'POST' ? '/drain' : ''}`), { method, token: 'wrong' });
      expect(refused.status).toBe(401);
    }
    expect(target.draining).toBe(false);
    expect(fixture.cluster.gateway.pool.get(target.key)).toBe(target);
  });

  it('answers 200 with the token: servers, config (secrets redacted), metrics', async () => {
    const list = await servers();
    expect(list).toHaveLength(3);
    for (const server of list) expect(server).toMatchObject({ health: 'active', inFlight: 0 });

    const config = await adminCurl(admin('/config'), { token: TOKEN });
    expect(config.status).toBe(200);
    expect(config.json).toEqual({ config: { window: 64, 'secret-file': '[redacted]', 'admin-token-file': '[redacted]' } });

    const metrics = await adminCurl(admin('/metrics'), { token: TOKEN });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.body).toMatch(/^httpgw_servers\{state="active"\} 3$/m);
    expect(metrics.body).toMatch(/^httpgw_process_resident_memory_bytes \d+/m);

    const missing = await adminCurl(admin('/servers/203.0.113.9%3A1/drain'), { method: 'POST', token: TOKEN });
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ status: 404 });
    expect((await adminCurl(admin('/transfers/recent?status=abc'), { token: TOKEN })).status).toBe(400);
    expect((await adminCurl(admin('/servers'), { token: TOKEN, method: 'PUT' })).status).toBe(405);
  });

  it('drains a server mid-download: it gets no new chunks, the download completes from the others', async () => {
    const { cluster } = fixture;
    const downloaded = slowDownload(cluster.url('big.bin'), '3M');
    // Strike once the download is under way, with every server busy.
    await until(() => cluster.gateway.activity.bytesSent() > 512 * 1024, 15_000, 'the download to start');
    const target = (await servers())[0]!;
    const drained = await adminCurl(admin(`/servers/${encodeURIComponent(target.id)}/drain`), { method: 'POST', token: TOKEN });
    expect(drained.status).toBe(200);
    const atDrain = cluster.gateway.pool.get(target.id)!;
    const answersAtDrain = atDrain.stats.answers;
    const inFlightAtDrain = atDrain.inFlight;
    const othersAtDrain = cluster.gateway.pool.list().filter((server) => server !== atDrain).reduce((sum, server) => sum + server.stats.answers, 0);
    const live = await adminCurl(admin('/transfers'), { token: TOKEN });
    expect((live.json as { transfers: Array<{ path: string; progress: number }> }).transfers).toEqual([expect.objectContaining({ path: '/big.bin', progress: expect.any(Number) })]);

    expect(await downloaded).toBe(sha256(fixture.files.get('big.bin')!));
    const after = await servers();
    const drainedAfter = after.find((server) => server.id === target.id)!;
    expect(drainedAfter.health).toBe('draining');
    // Only the requests in flight when it was drained were answered.
    expect(drainedAfter.answers).toBeLessThanOrEqual(answersAtDrain + inFlightAtDrain);
    expect(drainedAfter.inFlight).toBe(0);
    // And the rest of the file, most of it, came from the others after the drain.
    const othersAfter = after.filter((server) => server.id !== target.id).reduce((sum, server) => sum + server.answers, 0);
    expect(othersAfter - othersAtDrain).toBeGreaterThan((BIG - 1024 * 1024) / CHUNK / 2);
    // A second download goes to the others alone.
    const again = await fetch(cluster.url('big.bin'));
    expect(sha256(Buffer.from(await again.arrayBuffer()))).toBe(sha256(fixture.files.get('big.bin')!));
    expect((await servers()).find((server) => server.id === target.id)!.answers).toBe(drainedAfter.answers);

    const recent = await adminCurl(admin('/transfers/recent?status=2xx&path=big&limit=5'), { token: TOKEN });
    const finished = (recent.json as { transfers: Array<{ path: string; status: number; bytes: number; outcome: string }> }).transfers;
    expect(finished).toHaveLength(2);
    for (const entry of finished) expect(entry).toMatchObject({ path: '/big.bin', status: 200, bytes: BIG, outcome: 'complete' });
    const metrics = await adminCurl(admin('/metrics'), { token: TOKEN });
    expect(metrics.body).toMatch(/^httpgw_servers\{state="draining"\} 1$/m);
    expect(metrics.body).toMatch(/^httpgw_http_requests_total\{method="GET",status="200"\} 2$/m);
  });

  it('evicts a server at once with DELETE', async () => {
    const target = (await servers()).find((server) => server.health === 'active')!;
    const evicted = await adminCurl(admin(`/servers/${encodeURIComponent(target.id)}`), { method: 'DELETE', token: TOKEN });
    expect(evicted.status).toBe(200);
    expect(evicted.json).toEqual({ evicted: target.id });
    expect(fixture.cluster.gateway.pool.get(target.id)).toBeUndefined();
    const metrics = await adminCurl(admin('/metrics'), { token: TOKEN });
    expect(metrics.body).toContain(`httpgw_server_evictions_total{server="${target.id}"} 1`);
    expect(metrics.body).toMatch(/^httpgw_server_removals_total\{reason="evicted"\} 1$/m);
    // An id the pool does not hold is a 404 (the evicted server itself may be back already: below).
    expect((await adminCurl(admin(`/servers/${encodeURIComponent('127.0.0.1:1')}`), { method: 'DELETE', token: TOKEN })).status).toBe(404);
    // As documented: a server still running registers again at its next heartbeat.
    await until(() => fixture.cluster.gateway.pool.get(target.id) !== undefined, 10_000, 'the evicted server to register again');
  });
});
