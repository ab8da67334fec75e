import { randomBytes } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { chunkDigest, decode, encode } from '@httpgw/protocol';
import { createLogger, silentLogger } from '@httpgw/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { AnswerQueue, type Answer } from '../src/transfer/answer-queue.js';

const queues: AnswerQueue[] = [];
afterEach(() => {
  for (const queue of queues.splice(0)) queue.close();
});

/** A chunk answer as the UDP endpoint hands it over: decoded from its own datagram. */
function chunkAnswer(requestId: number, honest: boolean, length = 40_000): { answer: Answer; data: Buffer } {
  const data = randomBytes(length); // two of 40,000 are more than the queue hashes inline
  const md5 = honest ? chunkDigest(data) : randomBytes(16);
  const answer = decode(encode({ type: 'chunk', requestId, chunk: requestId, hasNext: true, md5, data })) as Answer;
  return { answer, data };
}

function setup(worker: boolean, wanted: (answer: Answer) => boolean = () => true, urgent?: (answer: Answer) => boolean) {
  const delivered: Array<{ requestId: number; digestOk: boolean | undefined; data?: Buffer }> = [];
  let done: () => void = () => {};
  const queue = new AnswerQueue({
    worker,
    wanted: (answer) => wanted(answer) && (urgent?.(answer) ? 'urgent' : true),
    logger: silentLogger,
    deliver: (answer, _from, digestOk) => {
      delivered.push({ requestId: answer.requestId, digestOk, ...(answer.type === 'chunk' ? { data: Buffer.from(answer.data) } : {}) });
      done();
    },
  });
  queues.push(queue);
  const until = (count: number) =>
    new Promise<void>((resolve) => {
      done = () => {
        if (delivered.length >= count) resolve();
      };
      done();
    });
  return { queue, delivered, until };
}

describe.each([true, false])('AnswerQueue (worker: %s)', (worker) => {
  it('hands every answer on once, in arrival order, with the verdict on each chunk and its bytes intact', async () => {
    const t = setup(worker);
    const sent = [chunkAnswer(1, true), chunkAnswer(2, false), chunkAnswer(3, true)];
    t.queue.push(sent[0]!.answer, 's');
    t.queue.push(sent[1]!.answer, 's');
    // Not a chunk: nothing to hash, but it must not overtake the chunks before it.
    t.queue.push({ type: 'error', requestId: 9, code: 'busy', message: '' }, 's');
    t.queue.push(sent[2]!.answer, 's');
    await t.until(4);
    expect(t.delivered.map((d) => [d.requestId, d.digestOk])).toEqual([
      [1, true],
      [2, false],
      [9, undefined],
      [3, true],
    ]);
    expect(t.delivered[0]!.data?.equals(sent[0]!.data)).toBe(true);
    expect(t.delivered[3]!.data?.equals(sent[2]!.data)).toBe(true);
    expect(t.queue.counters).toEqual(worker ? { hashedHere: 0, hashedInWorker: 3 } : { hashedHere: 3, hashedInWorker: 0 });
  });

  it('judges every chunk right in batches of mixed lengths and sizes (hashed four at a time in lanes)', async () => {
    const t = setup(worker);
    // Each over 4 KiB, so that every datagram has its own buffer and may go to the worker.
    const lengths = [61_440, 61_440, 8_192, 61_440, 4_097, 61_440, 65_000, 61_439, 61_440, 30_001, 61_440, 9_000];
    const verdicts: boolean[] = [];
    let id = 0;
    for (const size of [16, 1, 2, 3, 5, 9, 12]) {
      for (let i = 0; i < size; i++, id++) {
        const honest = (id * 5) % 7 !== 2;
        verdicts.push(honest);
        t.queue.push(chunkAnswer(id, honest, lengths[id % lengths.length]).answer, 's');
      }
      await new Promise((resolve) => setImmediate(resolve)); // the next batch
    }
    await t.until(id);
    expect(t.delivered.map((d) => d.requestId)).toEqual(Array.from({ length: id }, (_, i) => i));
    expect(t.delivered.map((d) => d.digestOk)).toEqual(verdicts);
    expect(worker ? t.queue.counters.hashedInWorker : t.queue.counters.hashedHere).toBeGreaterThan(id / 2);
  });
});

describe('AnswerQueue', () => {
  it('hands a chunk a client waits for on at once, with what arrived before it, before the batch would be hashed', () => {
    const t = setup(true, () => true, (answer) => answer.requestId === 3);
    const sent = [chunkAnswer(1, true, 61_440), chunkAnswer(2, false, 61_440), chunkAnswer(3, true, 61_440), chunkAnswer(4, true, 61_440)];
    for (const { answer } of sent) t.queue.push(answer, 's');
    // Synchronously: no event-loop turn, no worker. The fourth waits for its batch.
    expect(t.delivered.map((d) => [d.requestId, d.digestOk])).toEqual([
      [1, true],
      [2, false],
      [3, true],
    ]);
    expect(t.delivered[2]!.data?.equals(sent[2]!.data)).toBe(true);
    expect(t.queue.counters.hashedHere).toBe(3);
  });

  it('does not hash a chunk nobody waits for: it goes on at once, unjudged', async () => {
    const t = setup(true, (answer) => answer.requestId !== 2);
    t.queue.push(chunkAnswer(2, true).answer, 's');
    expect(t.delivered).toEqual([expect.objectContaining({ requestId: 2, digestOk: undefined })]);
  });

  it('never detaches a buffer other packets share: such chunks are hashed here', async () => {
    const t = setup(true);
    const datagrams = [1, 2, 3].map((id) => encode({ type: 'chunk', requestId: id, chunk: id, hasNext: true, md5: chunkDigest(Buffer.alloc(40_000, id)), data: Buffer.alloc(40_000, id) }));
    const pool = Buffer.concat(datagrams); // one ArrayBuffer behind all three
    let at = 0;
    for (const datagram of datagrams) {
      t.queue.push(decode(pool.subarray(at, at + datagram.length)) as Answer, 's');
      at += datagram.length;
    }
    await t.until(3);
    expect(t.delivered.map((d) => d.digestOk)).toEqual([true, true, true]);
    expect(t.queue.counters.hashedInWorker).toBe(0);
    expect(pool.buffer.byteLength).toBeGreaterThan(0); // not detached
  });

  it('goes on hashing here when the worker dies; what the worker held is lost like datagrams, and logged', async () => {
    const lines: string[] = [];
    const delivered: number[] = [];
    const queue = new AnswerQueue({
      worker: true,
      wanted: () => true,
      logger: createLogger({ name: 't', write: (line) => lines.push(line) }),
      deliver: (answer) => delivered.push(answer.requestId),
    });
    queues.push(queue);
    for (const id of [1, 2, 3]) queue.push(chunkAnswer(id, true).answer, 's');
    await new Promise((resolve) => setImmediate(resolve)); // the batch went to the worker
    expect(queue.counters.hashedInWorker).toBe(3);
    await (queue as unknown as { workers: Worker[] }).workers[0]!.terminate();
    await expect.poll(() => lines.join(''), { timeout: 2_000, interval: 5 }).toMatch(/md5 worker failed/);
    for (const id of [4, 5, 6]) queue.push(chunkAnswer(id, true).answer, 's');
    await expect.poll(() => delivered.at(-1), { timeout: 2_000, interval: 5 }).toBe(6);
    // 1-3 were dropped unless the worker answered before it died: lost ones are asked again after
    // their timeout. Nothing twice, nothing out of order, and the rest hashed here.
    expect([[4, 5, 6], [1, 2, 3, 4, 5, 6]]).toContainEqual(delivered);
    expect(queue.counters.hashedHere).toBe(3);
  });

  it('hashes across many batches without losing or reordering one answer', async () => {
    const t = setup(true);
    const n = 200;
    for (let i = 0; i < n; i++) {
      t.queue.push(chunkAnswer(i, i % 7 !== 3).answer, 's');
      if (i % 13 === 0) await new Promise((resolve) => setImmediate(resolve)); // a new batch
    }
    await t.until(n);
    expect(t.delivered.map((d) => d.requestId)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(t.delivered.filter((d) => d.digestOk === false).map((d) => d.requestId)).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => i % 7 === 3));
    expect(t.queue.counters.hashedInWorker).toBeGreaterThan(n / 2);
  });

  it('deals slices round several workers and still hands every answer on in arrival order', async () => {
    const delivered: Array<{ requestId: number; digestOk: boolean | undefined }> = [];
    const queue = new AnswerQueue({ worker: true, workers: 3, wanted: () => true, logger: createLogger({ name: 't', write: () => undefined }), deliver: (answer, _from, digestOk) => delivered.push({ requestId: answer.requestId, digestOk }) });
    queues.push(queue);
    const n = 120;
    for (let i = 0; i < n; i++) queue.push(chunkAnswer(i, i % 5 !== 2).answer, 's'); // one batch: 15 slices
    await expect.poll(() => delivered.length, { timeout: 5_000, interval: 5 }).toBe(n);
    expect(delivered.map((d) => d.requestId)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(delivered.filter((d) => d.digestOk === false).map((d) => d.requestId)).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => i % 5 === 2));
    expect((queue as unknown as { workers: Worker[] }).workers.length).toBe(3);
    expect(queue.counters.hashedInWorker).toBe(n);
  });
});

