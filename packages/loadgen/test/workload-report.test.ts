/**
 * A run against a small local file server with a JSON listing: the size mix, length and checksum
 * checks, ranges, errors by kind, and the three report writers (text, JSON, HTML opened in Chromium).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import hdr from 'hdr-histogram-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad } from '../src/driver.js';
import { seededUniform } from '../src/random.js';
import { renderHtml, renderText, toJson, type Report } from '../src/report.js';
import { constantRate } from '../src/schedule.js';
import { highestRateUnder } from '../src/sweep.js';
import { createWorkload, fetchListing, rangeLength, readManifest } from '../src/workload.js';

const FILES: Record<string, Buffer> = {
  'small-a': Buffer.alloc(4096, 1),
  'small-b': Buffer.alloc(3000, 2),
  'large-a': Buffer.alloc(256 * 1024, 3),
};

describe('workload and reports', () => {
  let server: http.Server;
  let base = '';
  let dir = '';
  const hits = new Map<string, number>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loadgen-report-'));
    server = http.createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      hits.set(path, (hits.get(path) ?? 0) + 1);
      if (path === '/files/') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ path, entries: [...Object.entries(FILES).map(([name, b]) => ({ name, kind: 'file', size: b.length, mtimeMs: 0 })), { name: 'sub', kind: 'directory', size: 0, mtimeMs: 0 }] }));
        return;
      }
      if (path === '/hang') return; // never answers
      if (path === '/half') {
        res.writeHead(200, { 'content-length': 1000 });
        res.write(Buffer.alloc(500)); // half the body, then nothing
        return;
      }
      if (path === '/fail') {
        res.statusCode = 503;
        res.end('busy');
        return;
      }
      const body = FILES[path.replace('/files/', '')];
      if (!body) {
        res.statusCode = 404;
        res.end();
        return;
      }
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (range) {
        const slice = body.subarray(Number(range[1]), Number(range[2]) + 1);
        res.writeHead(206, { 'content-length': slice.length });
        res.end(slice);
      } else {
        res.writeHead(200, { 'content-length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  const load = (workload: ReturnType<typeof createWorkload>, rate = 300, durationMs = 1000, timeoutMs = 10_000) =>
    runLoad({ workload, mode: { kind: 'open', arrival: 'poisson', rate: constantRate(rate) }, durationMs, warmupMs: 0, maxConnections: 64, timeoutMs, uniform: seededUniform(7) });

  it('draws a size mix over a listing and checks lengths and checksums', async () => {
    const files = await fetchListing(new URL(`${base}/files/`));
    expect(files.map((f) => f.size).sort((a, b) => a - b)).toEqual([3000, 4096, 256 * 1024]);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    // small-b's entry is wrong on purpose: every full GET of it must count as a checksum error.
    await writeFile(join(dir, 'SHA256SUMS'), `${sha(FILES['small-a']!)}  small-a\n${sha(FILES['large-a']!)}  large-a\n${sha(Buffer.from('other'))}  small-b\n`);
    const manifest = await readManifest(join(dir, 'SHA256SUMS'));
    hits.clear();
    const workload = createWorkload({ urls: [], method: 'GET', files, mix: [{ size: '4KiB', weight: 3 }, { size: '1MiB', weight: 1 }], manifest, uniform: seededUniform(3) });
    expect(workload.description).toBe('GET mix 4 KiB=3 (2 files), 1 MiB=1 (1 file)');
    const r = await load(workload);
    const small = (hits.get('/files/small-a') ?? 0) + (hits.get('/files/small-b') ?? 0);
    const large = hits.get('/files/large-a') ?? 0;
    expect(small + large).toBe(r.offered);
    // 3:1 by weight; binomial with n of about 300: the share is 0.75 +- 0.025 (1 sd).
    expect(small / (small + large)).toBeGreaterThan(0.62);
    expect(small / (small + large)).toBeLessThan(0.88);
    expect(r.errors.checksum).toBe(hits.get('/files/small-b'));
    expect(r.errors.checksum).toBeGreaterThan(0);
    expect(r.errors.length + r.errors.status + r.errors.reset + r.errors.timeout).toBe(0);
    expect(r.bytesPerS * r.durationS).toBe((hits.get('/files/small-a') ?? 0) * 4096 + (hits.get('/files/small-b') ?? 0) * 3000 + large * 256 * 1024);
  });

  it('ranges and HEAD: expected lengths from the listing', async () => {
    const files = await fetchListing(new URL(`${base}/files/`));
    expect(rangeLength('0-99', 3000)).toBe(100);
    expect(rangeLength('-10', 3000)).toBe(10);
    expect(rangeLength('2990-', 3000)).toBe(10);
    const ranged = await load(createWorkload({ urls: [], method: 'GET', range: '0-99', files, uniform: seededUniform(1) }), 100);
    expect(ranged.completed).toBe(ranged.offered);
    expect(ranged.bytesPerS * ranged.durationS).toBe(100 * ranged.completed);
    expect(Object.values(ranged.errors).every((n) => n === 0)).toBe(true);
    const head = await load(createWorkload({ urls: [], method: 'HEAD', files, uniform: seededUniform(1) }), 100);
    expect(head.bytesPerS).toBe(0);
    expect(Object.values(head.errors).every((n) => n === 0)).toBe(true);
  });

  it('counts requests without a full answer in time as timeouts, headers or not', async () => {
    for (const path of ['/hang', '/half']) {
      const r = await load(createWorkload({ urls: [new URL(`${base}${path}`)], method: 'GET', uniform: seededUniform(1) }), 50, 1000, 300);
      expect(r.errors.timeout, path).toBe(r.offered);
      expect(r.offered).toBeGreaterThan(20);
      expect(r.completed).toBe(0);
    }
  });

  it('counts non-2xx answers as status errors', async () => {
    const r = await load(createWorkload({ urls: [new URL(`${base}/fail`)], method: 'GET', uniform: seededUniform(1) }), 100);
    expect(r.errors.status).toBe(r.offered);
    expect(r.offered).toBeGreaterThan(50);
  });

  it('writes a table, a JSON report with the histogram, and an HTML page that opens in Chromium', async () => {
    const url = new URL(`${base}/files/small-a`);
    const runs = [];
    for (const rate of [100, 200]) runs.push({ label: `${rate} req/s`, offered: rate, result: await load(createWorkload({ urls: [url], method: 'GET', uniform: seededUniform(2) }), rate) });
    const report: Report = { tool: 'httpgw-load', date: '2026-12-01T00:00:00.000Z', argv: ['--sweep', '100,200'], workload: `GET ${url.href}`, mode: 'open loop, poisson, sweep 100, 200 req/s', runs, slo: { p99Ms: 100, highestRate: highestRateUnder(runs, 100) } };

    const text = renderText(report);
    expect(text).toContain('| offered');
    expect(text).toMatch(/\| 100 req\/s +\| +\d/);
    expect(text).toMatch(/\| 200 req\/s +\| +\d/);
    expect(text).toContain('highest rate with p99 < 100 ms');

    const json = JSON.parse(JSON.stringify(toJson(report))) as { runs: Array<{ completed: number; histogram: string; latency: { p99Ms: number }; intervals: unknown[]; spectrum: Array<[number, number]> }> };
    for (const [i, run] of json.runs.entries()) {
      const h = hdr.decodeFromCompressedBase64(run.histogram);
      expect(h.totalCount).toBe(run.completed);
      expect(h.getValueAtPercentile(99) / 1000).toBeCloseTo(run.latency.p99Ms, 6);
      expect(run.completed).toBe(runs[i]?.result.completed);
      expect(run.intervals.length).toBeGreaterThanOrEqual(1);
      expect(run.spectrum.at(-1)?.[0]).toBe(100);
    }

    const html = renderHtml(report);
    expect(html).not.toMatch(/<script|<link|src=|@import/i);
    const file = join(dir, 'report.html');
    await writeFile(file, html);
    const { stdout } = await promisify(execFile)('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', `file://${file}`], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    expect(stdout).toContain('httpgw-load report');
    // The distribution, the latency vs load curve and achieved vs offered, each with its lines drawn.
    expect(stdout.match(/<svg/g)?.length).toBe(3);
    expect(stdout).toContain('Latency vs offered load');
    expect(stdout.match(/<path d="M/g)?.length).toBeGreaterThanOrEqual(5);
  }, 90_000);
});
