import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Md5Lanes, md5LanesModule, type Packet } from '@httpgw/protocol';
import { type Logger } from '@httpgw/runtime';
import { MD5_WORKER_SOURCE } from './md5-worker-source.js';

export type Answer = Packet & { requestId: number };

/** Receives each answer once, in arrival order; `digestOk` is set for chunks (their MD5 was checked). */
export type DeliverAnswer = (answer: Answer, from: string, digestOk: boolean | undefined) => void;

export interface AnswerQueueInit {
  deliver: DeliverAnswer;
  /** Check MD5s on worker threads (default); false checks them on this thread, in the same batches. */
  worker?: boolean;
  /** Worker threads at most (default defaultMd5Workers(): one per core beyond the main thread's, 1..4). */
  workers?: number;
  /**
   * Whether an answer is still wanted; unwanted ones skip the hash and go straight on (to be
   * counted). 'urgent': a client waits for it before anything else: hashed here at once, with what
   * arrived before it, not batched.
   */
  wanted: (answer: Answer, from: string) => boolean | 'urgent';
  logger: Logger;
}

interface Entry {
  answer: Answer;
  from: string;
  /** Undefined while the worker hashes it. */
  digestOk: boolean | undefined;
  ready: boolean;
  /** Lost with a failed worker: never delivered, so its request times out and is asked again. */
  dropped?: boolean;
}

type ChunkAnswer = Extract<Answer, { type: 'chunk' }>;
interface ChunkEntry extends Entry {
  answer: ChunkAnswer;
}

interface HashItem {
  buffer: ArrayBuffer;
  dataOffset: number;
  dataLength: number;
  md5Offset: number;
}

/** Batches this small are hashed here when the worker is idle. */
const INLINE_BATCH = 2;
/** Bytes of a chunk datagram beside its data: frame and auth headers, msgpack fields, MAC. */
const MAX_FRAME_OVERHEAD = 1_024;
/** Most chunks per message to the worker. */
const WORKER_SLICE = 8;
/** Batches of this many bytes or fewer are always hashed here. */
const INLINE_BYTES = 64 * 1024;

/**
 * Answers from file servers on their way to the request tracker. MD5 is the gateway's largest cost
 * per byte, so chunks are hashed in batches, one per event-loop turn (every datagram read in one poll
 * phase), four at a time in the WebAssembly SIMD lanes of Md5Lanes: on a worker thread, their
 * buffers transferred, not copied; or here, without the worker or for small batches. Every answer,
 * hashed or not, is handed on in arrival order, so loss detection by reordering sees what the
 * network did.
 */
export class AnswerQueue {
  /** Chunks whose MD5 was checked on this thread, and on the worker. */
  readonly counters = { hashedHere: 0, hashedInWorker: 0 };
  private readonly init: AnswerQueueInit;
  private readonly entries: Entry[] = [];
  private head = 0;
  private batch: ChunkEntry[] = [];
  /** Per worker, the slices it is hashing, in the order they were posted. */
  private readonly inWorker = new Map<Worker, ChunkEntry[][]>();
  private slicesInWorkers = 0;
  private flushScheduled = false;
  private readonly workers: Worker[] = [];
  private readonly maxWorkers: number;
  private nextWorker = 0;
  /** Built with the queue: generating and compiling the wasm must not delay the first chunk. */
  private readonly lanes = new Md5Lanes();
  private workerFailed = false;
  private closed = false;

  constructor(init: AnswerQueueInit) {
    this.init = init;
    this.maxWorkers = Math.max(1, init.workers ?? defaultMd5Workers());
  }

  push(answer: Answer, from: string): void {
    if (this.closed) return;
    const wanted = answer.type === 'chunk' && this.init.wanted(answer, from);
    if (!wanted) return this.passOn(answer, from, undefined);
    const entry: ChunkEntry = { answer, from, digestOk: undefined, ready: false };
    this.entries.push(entry);
    this.batch.push(entry);
    if (wanted === 'urgent') {
      // A download's first chunk: its client has been waiting a whole round trip already, and a
      // batch may grow for the rest of this poll phase, then wait for a worker. This batch so far
      // (all that arrived before it) is hashed now; what arrives next starts another.
      const upToIt = this.batch;
      this.batch = [];
      this.settleHere(upToIt);
      this.drain();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // After the poll phase: every datagram already read joins this batch.
      setImmediate(() => this.flush());
    }
  }

  /** An answer that needs no waiting: delivered now, or queued behind those that do. */
  private passOn(answer: Answer, from: string, digestOk: boolean | undefined): void {
    if (this.head === this.entries.length) this.init.deliver(answer, from, digestOk);
    else this.entries.push({ answer, from, digestOk, ready: true });
  }

  close(): void {
    this.closed = true;
    this.entries.length = 0;
    this.head = 0;
    this.batch = [];
    this.inWorker.clear();
    this.slicesInWorkers = 0;
    for (const worker of this.workers.splice(0)) void worker.terminate();
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0 || this.closed) return;
    const useWorkers = this.worthTheWorker(batch) && this.ensureWorker();
    const items = useWorkers ? transferableItems(batch) : undefined;
    if (!items) {
      this.settleHere(batch);
      this.drain();
      return;
    }
    this.counters.hashedInWorker += batch.length;
    // In slices, so the first answers come back while a worker hashes the rest (the first chunk of
    // a download is in the first, large batch, and its client waits for it), dealt round the workers;
    // drain() hands answers on in arrival order whichever worker finishes first.
    for (let from = 0; from < batch.length; from += WORKER_SLICE) {
      const slice = items.slice(from, from + WORKER_SLICE);
      const worker = this.pickWorker();
      this.inWorker.get(worker)!.push(batch.slice(from, from + WORKER_SLICE));
      this.slicesInWorkers++;
      worker.postMessage(slice, [...new Set(slice.map((item) => item.buffer))]);
    }
  }

  /** The next worker round-robin; a new one while fewer than maxWorkers run and every one is busy. */
  private pickWorker(): Worker {
    const idle = this.workers.find((worker) => this.inWorker.get(worker)!.length === 0);
    if (idle) return idle;
    if (this.workers.length < this.maxWorkers) {
      const worker = this.startWorker();
      if (worker) return worker;
    }
    this.nextWorker = (this.nextWorker + 1) % this.workers.length;
    return this.workers[this.nextWorker]!;
  }

  /**
   * Posting to the worker (and waking it) costs more than hashing a few small chunks, or a chunk or
   * two of any size when it is idle (the first chunk of a download waits on it).
   */
  private worthTheWorker(batch: readonly ChunkEntry[]): boolean {
    if (this.init.worker === false || this.workerFailed) return false;
    if (batch.length <= INLINE_BATCH && this.slicesInWorkers === 0) return false;
    let bytes = 0;
    for (const { answer } of batch) bytes += answer.data.length;
    return bytes > INLINE_BYTES;
  }

  private settleHere(batch: readonly ChunkEntry[]): void {
    this.counters.hashedHere += batch.length;
    const ok = this.lanes.matches(
      batch.map(({ answer }) => answer.data),
      batch.map(({ answer }) => answer.md5),
    );
    batch.forEach((entry, i) => {
      entry.digestOk = ok[i] === true;
      entry.ready = true;
    });
  }

  /** Whether a worker runs or could be started. */
  private ensureWorker(): boolean {
    if (this.workerFailed) return false;
    return this.workers.length > 0 || this.startWorker() !== undefined;
  }

  private startWorker(): Worker | undefined {
    if (this.workerFailed) return undefined;
    const worker = new Worker(MD5_WORKER_SOURCE, { eval: true, workerData: { md5Lanes: md5LanesModule() } });
    worker.unref();
    worker.on('message', (result: { ok: boolean[]; items: HashItem[] }) => this.onHashed(worker, result));
    worker.on('error', (error) => this.onWorkerFailure(error));
    worker.on('exit', (code) => {
      if (!this.closed) this.onWorkerFailure(new Error(`md5 worker exited with code ${code}`));
    });
    this.workers.push(worker);
    this.inWorker.set(worker, []);
    return worker;
  }

  private onHashed(worker: Worker, result: { ok: boolean[]; items: HashItem[] }): void {
    const batch = this.inWorker.get(worker)?.shift();
    if (!batch || this.closed) return;
    this.slicesInWorkers--;
    batch.forEach((entry, i) => {
      const item = result.items[i]!;
      // The buffer came back: the packet's views onto it are rebuilt.
      entry.answer.data = new Uint8Array(item.buffer, item.dataOffset, item.dataLength);
      entry.answer.md5 = new Uint8Array(item.buffer, item.md5Offset, 16);
      entry.digestOk = result.ok[i] === true;
      entry.ready = true;
    });
    this.drain();
  }

  /** A worker failed: every chunk is hashed here from now on; what the workers held is lost like datagrams. */
  private onWorkerFailure(error: Error): void {
    if (this.workerFailed || this.closed) return;
    this.workerFailed = true;
    this.init.logger.warn('md5 worker failed: checking chunks on the main thread', { error: error.message });
    for (const slices of this.inWorker.values()) {
      for (const entry of slices.flat()) {
        entry.ready = true;
        entry.dropped = true;
      }
    }
    this.inWorker.clear();
    this.slicesInWorkers = 0;
    for (const worker of this.workers.splice(0)) void worker.terminate();
    this.drain();
  }

  private drain(): void {
    while (this.head < this.entries.length) {
      const entry = this.entries[this.head]!;
      if (!entry.ready) break;
      this.head++;
      if (!entry.dropped) this.init.deliver(entry.answer, entry.from, entry.digestOk);
    }
    if (this.head === this.entries.length) {
      this.entries.length = 0;
      this.head = 0;
    } else if (this.head > 1024) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
  }
}

/**
 * The batch as items for the worker, or undefined when a buffer cannot be transferred: transferring
 * detaches it here, so only a buffer that is the datagram's alone (node gives each received datagram
 * its own) may go, never a pool other packets share.
 */
function transferableItems(batch: readonly ChunkEntry[]): HashItem[] | undefined {
  const items: HashItem[] = [];
  for (const { answer } of batch) {
    const { buffer } = answer.data;
    if (!(buffer instanceof ArrayBuffer) || answer.md5.buffer !== buffer || buffer.byteLength > answer.data.length + MAX_FRAME_OVERHEAD) return undefined;
    items.push({ buffer, dataOffset: answer.data.byteOffset, dataLength: answer.data.length, md5Offset: answer.md5.byteOffset });
  }
  return items;
}

/** MD5 workers by default: one per core beyond the one the main thread uses, at least one, at most four. */
export function defaultMd5Workers(): number {
  return Math.min(4, Math.max(1, availableParallelism() - 1));
}
