import { PerformanceObserver, constants } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ReadAheadBudget } from './read-ahead-budget.js';

export interface BufferCollectorInit {
  budget: ReadAheadBudget;
  /** ArrayBuffer bytes held on purpose beyond read-ahead (the chunk cache's memory tier): live, not garbage. */
  heldBytes?: () => number;
  /** ArrayBuffer memory beyond what read-ahead holds that calls for a collection (default 16 MiB). */
  thresholdBytes?: number;
  /** Between checks; at most one collection per check (default 1 s). */
  intervalMs?: number;
  /** V8's full collection (default: `gc`, reached without --expose-gc; see `findGc`). */
  gc?: () => void;
  /** Bytes of ArrayBuffer memory allocated (default: process.memoryUsage().arrayBuffers). */
  arrayBufferBytes?: () => number;
}

/**
 * Frees chunk buffers that are garbage when V8 would not. V8 frees an ArrayBuffer's memory only when
 * a GC finds it dead, and starts a GC for that memory after 64 MB more of it were allocated. At
 * high speed that is every few tens of ms; with slow clients it takes seconds, and once they leave
 * nothing allocates: the buffers they had (the whole budget, and as much garbage again) were measured
 * still held 30 s later. So every `intervalMs` (a check costs a few µs), when ArrayBuffer memory
 * exceeds what read-ahead holds by `thresholdBytes` and V8 ran no full collection since the last
 * check, this runs one (tens of ms). At high speed V8 collects every few tens of ms and this never
 * does; with slow clients it caps their garbage near `thresholdBytes` plus a second of traffic.
 *
 * The freed buffers go back to malloc; whether RSS falls too is the allocator's choice (glibc keeps
 * 60 KiB blocks in its heap: see the README, "Memory").
 */
export class BufferCollector {
  /** Collections run. */
  collections = 0;
  private readonly init: BufferCollectorInit;
  private readonly thresholdBytes: number;
  private readonly gc: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly observer: PerformanceObserver | undefined;
  /** A full collection ran since the last check. */
  private collected = false;

  constructor(init: BufferCollectorInit) {
    this.init = init;
    this.thresholdBytes = init.thresholdBytes ?? 16 * 1024 * 1024;
    this.gc = init.gc ?? findGc();
    if (!this.gc) return;
    this.timer = setInterval(() => this.check(), init.intervalMs ?? 1_000);
    this.timer.unref();
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) this.collected = true;
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Collects if garbage buffers exceed the threshold; returns whether it did. */
  check(): boolean {
    const collected = this.collected;
    this.collected = false;
    if (!this.gc || collected) return false;
    const allocated = this.init.arrayBufferBytes?.() ?? process.memoryUsage().arrayBuffers;
    if (allocated - this.init.budget.reservedBytes - (this.init.heldBytes?.() ?? 0) < this.thresholdBytes) return false;
    this.gc();
    this.collections++;
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
    this.observer?.disconnect();
  }
}

/**
 * V8's `gc()`: the global one under --expose-gc, else the one a new context gets while the flag is
 * set for a moment (the flag only decides whether contexts created from then on see `gc`).
 * Undefined if neither works.
 */
export function findGc(): (() => void) | undefined {
  const global = (globalThis as { gc?: unknown }).gc;
  if (typeof global === 'function') return global as () => void;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
