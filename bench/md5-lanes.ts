/**
 * Microbench: MD5 of 61,440-byte chunks (the gateway's chunk size) with node:crypto, one message at a
 * time, against the WebAssembly SIMD lanes (4 messages per pass, or 8 in two interleaved sets), in batches as the gateway's answer
 * queue sees them. The lanes' figure includes copying each chunk into wasm memory; HMAC-SHA256 (the
 * authenticated frame's MAC) is there for comparison. Run pinned to one
 * core, several times (the machine is shared):
 *
 *   taskset -c 1 npx tsx bench/md5-lanes.ts [--chunk 61440] [--mb 256] [--runs 5]
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Md5Lanes } from '../packages/protocol/src/md5-lanes/md5-many.js';

const { values } = parseArgs({
  options: {
    chunk: { type: 'string', default: '61440' },
    mb: { type: 'string', default: '256' },
    runs: { type: 'string', default: '5' },
  },
});
const chunkSize = Number(values.chunk);
const totalBytes = Number(values.mb) * 1024 * 1024;
const runs = Number(values.runs);
const batches = [1, 2, 4, 8, 16, 64];

// A pool of distinct chunks, larger than the L2 cache, as datagrams arrive: each its own buffer.
const pool = Array.from({ length: 256 }, () => new Uint8Array(randomBytes(chunkSize)));
const secret = randomBytes(32);
const lanes4 = new Md5Lanes({ widest: 4 });
const lanes8 = new Md5Lanes({ widest: 8 });

function perBatch(batch: number, hash: (chunks: Uint8Array[]) => void): number {
  const rounds = Math.max(1, Math.round(totalBytes / chunkSize / batch));
  const start = process.hrtime.bigint();
  for (let round = 0, at = 0; round < rounds; round++) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < batch; i++, at = (at + 1) % pool.length) chunks.push(pool[at]!);
    hash(chunks);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return (rounds * batch * chunkSize) / seconds / 1e6;
}

const approaches: Record<string, (chunks: Uint8Array[]) => void> = {
  crypto: (chunks) => {
    for (const chunk of chunks) createHash('md5').update(chunk).digest();
  },
  'lanes x4': (chunks) => {
    lanes4.digests(chunks);
  },
  'lanes x8': (chunks) => {
    lanes8.digests(chunks);
  },
  // For comparison, not an MD5: what a frame's HMAC-SHA256 costs (each datagram, sealed and opened).
  'hmac-sha256': (chunks) => {
    for (const chunk of chunks) createHmac('sha256', secret).update(chunk).digest();
  },
};

// Warm up: V8 compiles wasm with its baseline compiler first and optimises it once it is hot.
for (const hash of Object.values(approaches)) for (let i = 0; i < 3; i++) perBatch(16, hash);

console.log(`MD5 MB/s, ${chunkSize}-byte chunks, ${runs} runs of ${values.mb} MB each (min / median / max)`);
const names = Object.keys(approaches);
console.log(`| batch | ${names.join(' | ')} | ${names.slice(1).map((name) => `${name} ÷ crypto`).join(' | ')} |`);
console.log(`| ---: |${' ---: |'.repeat(2 * names.length - 1)}`);
for (const batch of batches) {
  const figures = Object.fromEntries(names.map((name) => [name, [] as number[]]));
  // Interleaved runs, so that a burst of load elsewhere on the machine hits every approach alike.
  for (let run = 0; run < runs; run++) {
    for (const [name, hash] of Object.entries(approaches)) figures[name]!.push(perBatch(batch, hash));
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const cell = (xs: number[]) => `${Math.min(...xs).toFixed(0)} / ${median(xs).toFixed(0)} / ${Math.max(...xs).toFixed(0)}`;
  const ratios = names.slice(1).map((name) => `${(median(figures[name]!) / median(figures.crypto!)).toFixed(2)}×`);
  console.log(`| ${batch} | ${names.map((name) => cell(figures[name]!)).join(' | ')} | ${ratios.join(' | ')} |`);
}
