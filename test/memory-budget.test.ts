import { Agent, request, type ClientRequest } from 'node:http';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from './support/cluster.js';
import { memoryOf, startProcess, type RunningProcess } from './support/processes.js';

// Hundreds of slow clients against one gateway process with a small read-ahead budget: without the
// budget each download fetches 8 MiB ahead of its client (200 of them: 1.9 GB RSS, measured), with it
// all of them together hold at most the budget.

const MIB = 1024 * 1024;
const BUDGET = 64 * MIB;
const CLIENTS = 200;
/** Bytes each client reads per second: ~100 KB/s. */
const RATE = 100_000;

interface Stats {
  transfers: number;
  readAheadReserved: number;
  readAheadPeak: number;
  readAheadLimit: number;
  readAheadWaits: number;
  collections: number;
  rss: number;
  arrayBuffers: number;
}

describe('the read-ahead budget with hundreds of slow clients', () => {
  let gateway: RunningProcess;
  const servers: RunningProcess[] = [];
  let root: { path: string; remove: () => Promise<void> };
  let base: string;

  /** The gateway's figures, from the line it logs on SIGUSR2. */
  async function statsOf(): Promise<Stats> {
    const before = gateway.log().length;
    gateway.child.kill('SIGUSR2');
    for (let waited = 0; waited < 5_000; waited += 20) {
      const line = /: stats (.*)$/m.exec(gateway.log().slice(before))?.[1];
      if (line) return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map(([, key, value]) => [key, Number(value)])) as unknown as Stats;
      await sleep(20);
    }
    throw new Error('no stats line');
  }

  beforeAll(async () => {
    root = await makeTempDir();
    // Sparse: no disk, yet every chunk is read, hashed and checked like any other.
    const file = await open(join(root.path, 'big.bin'), 'w');
    await file.truncate(64 * MIB);
    await file.close();
    // All clients come from 127.0.0.1: lift the per-client limits above CLIENTS.
    gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', '--read-ahead-budget', String(BUDGET), '--cache-size', '0', '--max-transfers-per-client', '512', '--max-connections-per-client', '512']);
    const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/);
    base = `http://${http}`;
    for (let i = 0; i < 3; i++) servers.push(startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', root.path, '--bind', '127.0.0.1']));
    await Promise.all(servers.map((server) => server.waitForLine(/registered with gateway/)));
    // The servers hash the file once, on the first request for it: not while the clients are timed.
    await new Promise<void>((resolve, reject) => {
      request(`${base}/big.bin`, { headers: { range: 'bytes=0-0' } }, (response) => response.resume().on('end', resolve)).on('error', reject).end();
    });
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await gateway?.stop();
    await root?.remove();
  });

  it('keeps RSS under the budget + 150 MB while they read, and frees their buffers when they leave', async () => {
    const pid = gateway.child.pid!;
    const idle = await memoryOf(pid);
    const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
    const requests: ClientRequest[] = [];
    const readers: NodeJS.Timeout[] = [];
    const statuses: number[] = [];
    let received = 0;
    for (let i = 0; i < CLIENTS; i++) {
      const req = request(`${base}/big.bin`, { agent }, (response) => {
        statuses.push(response.statusCode!);
        response.pause();
        // RATE/10 bytes every 100 ms; the rest waits in the kernel's socket buffers, then in the gateway.
        readers.push(
          setInterval(() => {
            for (let want = RATE / 10, part: Buffer | null; want > 0 && (part = response.read(Math.min(want, 16_384)) as Buffer | null); want -= part.length) received += part.length;
          }, 100),
        );
      });
      req.on('error', () => undefined); // destroyed at the end
      req.end();
      requests.push(req);
      if (i % 20 === 19) await sleep(20);
    }

    // First the kernel's socket buffers fill (~4 MB per connection on loopback), then the budget.
    let peak = idle.rss;
    const sampler = setInterval(() => void memoryOf(pid).then(({ rss }) => (peak = Math.max(peak, rss))), 100);
    let spent: Stats | undefined;
    for (const deadline = Date.now() + 12_000; Date.now() < deadline; await sleep(500)) {
      const stats = await statsOf();
      if (stats.readAheadWaits > 0 && stats.readAheadReserved > 0.9 * BUDGET) {
        spent = stats;
        break;
      }
    }
    // Under pressure for a while: transfers queue for the budget, clients keep reading.
    await sleep(3_000);
    const during = await statsOf();
    clearInterval(sampler);
    peak = Math.max(peak, (await memoryOf(pid)).rss);

    for (const reader of readers) clearInterval(reader);
    for (const req of requests) req.destroy();
    agent.destroy();
    // The buffer collector checks every second; the transfers end as their sockets close.
    await sleep(2_500);
    const after = await statsOf();
    const afterRss = (await memoryOf(pid)).rss;
    const figures = `idle ${mib(idle.rss)}, peak ${mib(peak)}, after ${mib(afterRss)} MiB RSS; during: ${JSON.stringify(during)}; after: ${JSON.stringify(after)}`;

    expect(statuses.filter((status) => status === 200).length, figures).toBeGreaterThanOrEqual(CLIENTS * 0.95);
    expect(received, figures).toBeGreaterThan(CLIENTS * RATE * 2);
    expect(spent, `the budget was never spent: ${figures}`).toBeDefined();
    // The documented bound (--read-ahead-budget: "each may still hold two chunks"): a transfer that
    // starts while the others have spent the budget still gets its two chunks, so it always moves.
    // Transfers that share fetches move faster and spend the budget sooner: measured up to 74 MiB.
    expect(during.readAheadPeak, figures).toBeLessThanOrEqual(BUDGET + 2 * 61_440 * CLIENTS);
    expect(during.transfers, figures).toBeGreaterThanOrEqual(CLIENTS * 0.95);
    // Measured 170-197 MiB: node's own ~72 MiB, the budget, a chunk per response being written.
    expect(peak, figures).toBeLessThan(BUDGET + 150 * MIB);

    // Once they left: nothing reserved, and the chunk buffers freed or garbage below the collector's
    // threshold (16 MiB: it forces a collection beyond that; measured 0.1-15 MB, by when V8 last collected).
    expect(after.transfers, figures).toBe(0);
    expect(after.readAheadReserved, figures).toBe(0);
    expect(after.arrayBuffers, figures).toBeLessThan(16 * MIB);
    // RSS does not come down by itself: glibc keeps the freed 60 KiB blocks in its heap for the next
    // clients (measured: 170-196 MiB after, within 25 MiB of the peak), unless MALLOC_MMAP_THRESHOLD_
    // is set (measured: back to ~97 MiB; README, "Memory"). It must not grow either.
    expect(afterRss, figures).toBeLessThan(peak + 8 * MIB);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function mib(bytes: number): number {
  return Math.round(bytes / MIB);
}
