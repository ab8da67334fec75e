import Koa from 'koa';
import { describe, expect, it } from 'vitest';
import { ServerPool } from '../src/pool/server-pool.js';
import { SourceChoice } from '../src/transfer/source-choice.js';
import { AdminToken, isLoopback, parseAdminAddress } from '../src/ops/admin-auth.js';
import { redact } from '../src/ops/admin-app.js';
import { RequestActivity, type FinishedRequest } from '../src/ops/request-activity.js';

describe('admin token', () => {
  it('accepts only the exact bearer token; without one set, everything', () => {
    const token = new AdminToken('abc123');
    expect(token.accepts('Bearer abc123')).toBe(true);
    expect(token.accepts('bearer abc123')).toBe(true);
    for (const header of [undefined, '', 'Bearer', 'Bearer abc12', 'Bearer abc1234', 'Basic abc123', 'abc123', 'Bearer abc123 x']) expect(token.accepts(header), String(header)).toBe(false);
    token.set('other');
    expect(token.accepts('Bearer abc123')).toBe(false);
    expect(token.accepts('Bearer other')).toBe(true);
    const open = new AdminToken();
    expect(open.required).toBe(false);
    expect(open.accepts(undefined)).toBe(true);
  });
});

describe('--admin ADDRESS:PORT', () => {
  it('needs a port; takes IPv4, names and bracketed IPv6', () => {
    expect(parseAdminAddress('127.0.0.1:9090')).toEqual({ address: '127.0.0.1', port: 9090 });
    expect(parseAdminAddress('127.0.0.1:0')).toEqual({ address: '127.0.0.1', port: 0 });
    expect(parseAdminAddress('[::1]:9090')).toEqual({ address: '::1', port: 9090 });
    expect(parseAdminAddress('localhost:1')).toEqual({ address: 'localhost', port: 1 });
    for (const bad of ['127.0.0.1', '9090', ':9090', '127.0.0.1:', '127.0.0.1:65536', '::1:9090', 'a b:1']) expect(() => parseAdminAddress(bad), bad).toThrow(/ADDRESS:PORT/);
  });

  it('knows loopback addresses', () => {
    for (const address of ['127.0.0.1', '127.8.9.1', '::1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(address), address).toBe(true);
    for (const address of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com']) expect(isLoopback(address), address).toBe(false);
  });
});

describe('GET /config redaction', () => {
  it('hides the values of secret and token keys, at any depth', () => {
    expect(redact({ window: 64, 'secret-file': '/k', secretFile: '/k', 'admin-token-file': '/t', nested: { password: 'p', ok: 1 }, absent: undefined })).toEqual({
      window: 64,
      'secret-file': '[redacted]',
      secretFile: '[redacted]',
      'admin-token-file': '[redacted]',
      nested: { password: '[redacted]', ok: 1 },
      absent: undefined,
    });
  });
});

describe('draining', () => {
  it('leaves a drained server out of lookups and chunk runs, keeps it registered', () => {
    const pool = new ServerPool();
    const a = pool.admit('127.0.0.1', 1, 'a')!;
    const b = pool.admit('127.0.0.1', 2, 'b')!;
    pool.drain(a);
    expect(pool.size).toBe(2);
    expect(pool.usable()).toEqual([b]);
    expect(a.room).toBe(0);
    const choice = new SourceChoice([a.key, b.key], pool);
    for (let first = 0; first < 64; first += 16) expect(choice.forRun(first, 16, 64)?.server).toBe(b);
    expect(choice.withRoom(undefined)).toBe(b);
    expect(choice.forHedge(new Map([[1, b.key]]))).toBeUndefined();
    pool.drain(b);
    expect(pool.usable()).toEqual([]);
    pool.close();
  });
});

describe('RequestActivity', () => {
  function finished(activity: RequestActivity, entries: Array<Partial<FinishedRequest>>): void {
    // Recorded directly (the next test goes through the middleware and HTTP).
    const record = (activity as unknown as { record(request: FinishedRequest): void }).record.bind(activity);
    for (const [i, entry] of entries.entries()) {
      record({ id: i, method: 'GET', path: `/f${i}`, range: undefined, client: '127.0.0.1', status: 200, bytes: 10, length: 10, startedAt: 0, finishedAt: 1_000 + i, durationMs: 1, ttfbMs: 1, outcome: 'complete', servers: [], error: undefined, ...entry });
    }
  }

  it('keeps the last N finished requests, newest first, filtered by status, path and time', () => {
    const activity = new RequestActivity(4);
    finished(activity, [{ status: 200 }, { status: 404, path: '/missing' }, { status: 503 }, { status: 200, path: '/big.bin' }, { status: 206, path: '/big.bin' }, { status: 502 }]);
    expect(activity.recent().map((r) => r.id)).toEqual([5, 4, 3, 2]);
    expect(activity.recent({ status: '5xx' }).map((r) => r.id)).toEqual([5, 2]);
    expect(activity.recent({ status: '206' }).map((r) => r.id)).toEqual([4]);
    expect(activity.recent({ path: 'big' }).map((r) => r.id)).toEqual([4, 3]);
    expect(activity.recent({ since: 1_004 }).map((r) => r.id)).toEqual([5, 4]);
    expect(activity.recent({ limit: 1 }).map((r) => r.id)).toEqual([5]);
    expect(activity.totals).toEqual({ requests: 6, clientErrors: 1, serverErrors: 2, aborted: 0 });
    expect(activity.bytesSent()).toBe(60);
  });

  it('sees each request through its middleware: in progress, then finished with status and bytes', async () => {
    const activity = new RequestActivity();
    const app = new Koa();
    let seenInProgress = 0;
    app.use(activity.middleware());
    app.use((ctx) => {
      seenInProgress = activity.inProgress;
      ctx.status = ctx.path === '/missing' ? 404 : 200;
      ctx.body = ctx.path === '/missing' ? 'no' : 'hello world';
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as { port: number }).port;
    await (await fetch(`http://127.0.0.1:${port}/hello`, { headers: { Range: 'bytes=0-1' } })).text();
    await (await fetch(`http://127.0.0.1:${port}/missing`)).text();
    await new Promise((resolve) => server.close(resolve));
    expect(seenInProgress).toBe(1);
    expect(activity.inProgress).toBe(0);
    const [missing, hello] = activity.recent();
    expect(hello).toMatchObject({ path: '/hello', status: 200, bytes: 11, range: 'bytes=0-1', outcome: 'complete' });
    expect(missing).toMatchObject({ path: '/missing', status: 404, bytes: 2 });
    expect(hello!.ttfbMs).toBeGreaterThanOrEqual(0);
  });
});

describe('the cache hook', () => {
  it('exports nothing until a cache reports, then its tiers as counters and a gauge', async () => {
    const { createGateway } = await import('../src/gateway.js');
    // No cache tier: the hook is the subject (a gateway with its cache registers its tiers at start).
    const gateway = await createGateway({ address: '127.0.0.1', httpPort: 0, udpPort: 0, cache: { memoryBytes: 0 } });
    try {
      const before = await gateway.metrics.registry.metrics();
      expect(before).not.toMatch(/^httpgw_cache_hits_total\{/m);
      expect(gateway.metrics.cacheStats()).toBeUndefined();
      let hits = 3;
      gateway.metrics.setCacheSource(() => [
        { tier: 'memory', hits, misses: 1, bytesServed: 4096, bytesStored: 8192 },
        { tier: 'disk', hits: 0, misses: 1, bytesServed: 0, bytesStored: 0 },
      ]);
      const after = await gateway.metrics.registry.metrics();
      expect(after).toMatch(/^httpgw_cache_hits_total\{tier="memory"\} 3$/m);
      expect(after).toMatch(/^httpgw_cache_misses_total\{tier="disk"\} 1$/m);
      expect(after).toMatch(/^httpgw_cache_served_bytes_total\{tier="memory"\} 4096$/m);
      expect(after).toMatch(/^httpgw_cache_stored_bytes\{tier="memory"\} 8192$/m);
      hits = 10;
      expect(await gateway.metrics.registry.metrics()).toMatch(/^httpgw_cache_hits_total\{tier="memory"\} 10$/m);
      // Without an admin listener, no process metrics (they would outlive the gateway).
      expect(after).not.toContain('httpgw_process_cpu');
    } finally {
      await gateway.stop();
    }
  });
});
