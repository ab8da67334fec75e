/**
 * A server that stops answering for 1 s in the middle of a run. Open loop, every request due during
 * the stall waits for it, so about a third of the requests of a 3 s run show up to 1 s of latency:
 * p99 and max both show it. A closed loop (as wrk runs) has only its few connections waiting, sends
 * nothing meanwhile, and its p99 hides the stall.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBin } from './run-bin.js';

const STALL_MS = 1000;

interface JsonRun {
  latency: { p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number };
  completed: number;
  errors: Record<string, number>;
}

describe('a 1 s stall in the middle of a run', () => {
  let server: http.Server;
  let url = '';
  let first: number | undefined;
  let runs = 0;

  beforeAll(async () => {
    // The stall starts 1 s after the first request of each run; each run asks for its own ?run=N.
    let run: string | undefined;
    server = http.createServer((req, res) => {
      const now = Date.now();
      if (first === undefined || req.url !== run) [first, run] = [now, req.url];
      req.resume();
      const stallStart = first + 1000;
      const answer = () => res.end('ok\n');
      if (now >= stallStart && now < stallStart + STALL_MS) setTimeout(answer, stallStart + STALL_MS - now);
      else answer();
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const run = async (mode: string[]): Promise<JsonRun> => {
    const { mkdtemp, readFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'loadgen-stall-'));
    try {
      const r = await runBin([`${url}?run=${++runs}`, ...mode, '--duration', '3s', '--warmup', '0s', '--quiet', '--json', join(dir, 'r.json')]);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(await readFile(join(dir, 'r.json'), 'utf8')) as { runs: JsonRun[] };
      return report.runs[0] as JsonRun;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('open loop: shows in p90, p99 and max; a closed loop hides it in p99', async () => {
    const open = await run(['--rate', '100']);
    // Requests due during the stall wait between 0 and 1 s, evenly: a third of the run.
    expect(Object.values(open.errors).reduce((a, b) => a + b, 0)).toBe(0);
    expect(open.completed).toBeGreaterThan(200);
    expect(open.latency.maxMs).toBeGreaterThan(0.85 * STALL_MS);
    expect(open.latency.p99Ms).toBeGreaterThan(0.75 * STALL_MS);
    expect(open.latency.p90Ms).toBeGreaterThan(0.4 * STALL_MS);

    const closed = await run(['--concurrency', '2']);
    // Two requests wait out the stall; the rest of the run is fast, so only the max sees it.
    expect(closed.latency.maxMs).toBeGreaterThan(0.85 * STALL_MS);
    expect(closed.latency.p99Ms).toBeLessThan(open.latency.p99Ms / 2);
  }, 60_000);
});
