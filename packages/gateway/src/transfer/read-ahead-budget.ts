import { totalmem } from 'node:os';
import { integerOption } from './options.js';

export interface ReadAheadBudgetInit {
  /** Bytes of read-ahead all transfers together may hold (requested and not yet handed to their client). */
  limitBytes: number;
  /** Bytes one chunk is counted for: every transfer reserves whole chunks. */
  chunkBytes: number;
  /** Chunks every transfer may hold even when the budget is spent, so none starves (default 2). */
  minimumChunks?: number;
}

export interface ReadAheadBudgetStats {
  limitBytes: number;
  /** Bytes held now: within the limit, unless the transfers' minimums alone exceed it. */
  reservedBytes: number;
  peakBytes: number;
  /** Times a transfer found the budget spent and queued for it. */
  waits: number;
  /** Transfers queued for budget now. */
  waiting: number;
}

const MIB = 1024 * 1024;

/**
 * The default budget: 1/32 of the memory this process may use (the cgroup's limit when it has one),
 * between 64 MiB and 1 GiB: 64 MiB on a 2 GB machine, 256 MiB on 8 GB, 1 GiB from 32 GB. With the
 * budget spent the gateway's RSS is about the budget + 130 MiB (measured: node itself, a chunk per
 * response being written, the JS heap of hundreds of connections), so 1/32 leaves nine tenths of the
 * machine to everything else, the page cache of file servers that often share it first. 64 MiB is
 * still 8 downloads at the default 8 MiB read-ahead (a download needs its bandwidth-delay product
 * only: 1 MiB carries 1 GB/s at a 1 ms round trip); beyond 1 GiB, read-ahead only feeds slow
 * clients earlier, which buys nothing.
 */
export function defaultReadAheadBudgetBytes(): number {
  return Math.min(1024 * MIB, Math.max(64 * MIB, Math.floor(machineMemory() / 32 / MIB) * MIB));
}

/** The machine's memory, or the container's (cgroup) limit when that is smaller. */
export function machineMemory(): number {
  const memory = totalmem();
  // Experimental in Node 20; a huge number when there is no limit.
  const constrained = process.constrainedMemory?.();
  return constrained !== undefined && constrained > 0 && constrained < memory ? constrained : memory;
}

/**
 * One byte budget for the read-ahead of every transfer of the gateway, counted in chunks. A transfer
 * reserves a chunk when it requests it and releases it once the chunk is handed to its client, or
 * when it ends (see ReadAheadShare). Every transfer may hold `minimumChunks` whatever the budget, so
 * it always moves and never deadlocks: from its first ask that minimum is kept free for it, so that
 * holdings stay within the limit as long as every transfer's minimum fits in it (200 transfers: 24
 * MB at 60 KiB chunks). Beyond its minimum, a transfer that finds the budget spent queues. Budget
 * released goes to the queue first, in order (FIFO): the first transfer queued gets a turn, its
 * `wake` called in a microtask, and while turns are pending or transfers queued nobody else may take
 * beyond its minimum, the transfer that released included (as windows' room: ServerPool.waitForRoom).
 * Every operation is O(1) per chunk.
 */
export class ReadAheadBudget {
  limitBytes: number;
  readonly chunkBytes: number;
  readonly minimumChunks: number;
  /** Limit and holdings in chunks. */
  private limit: number;
  private reserved = 0;
  /** What active shares lack of their minimum: kept free for them. */
  private unfilled = 0;
  private peak = 0;
  private waits = 0;
  /** Transfers waiting for budget, in the order they came. */
  private readonly waiters = new Set<ReadAheadShare>();
  /** Transfers woken whose turn has not come or gone yet. */
  private turns = 0;

  constructor(init: ReadAheadBudgetInit) {
    if (!(init.limitBytes >= 0)) throw new RangeError(`limitBytes must be 0 or more (got ${init.limitBytes})`);
    this.limitBytes = init.limitBytes;
    this.chunkBytes = integerOption('chunkBytes', init.chunkBytes, 1);
    this.minimumChunks = integerOption('minimumChunks', init.minimumChunks ?? 2, 0);
    this.limit = Math.floor(init.limitBytes / init.chunkBytes);
  }

  get stats(): ReadAheadBudgetStats {
    return {
      limitBytes: this.limitBytes,
      reservedBytes: this.reserved * this.chunkBytes,
      peakBytes: this.peak * this.chunkBytes,
      waits: this.waits,
      waiting: this.waiters.size,
    };
  }

  /**
   * A new limit while running (SIGHUP). Growing it wakes queued transfers at once; shrinking it lets
   * nobody take beyond its minimum until holdings fall under the new limit: nothing is taken back.
   */
  resize(limitBytes: number): void {
    if (!(limitBytes >= 0)) throw new RangeError(`limitBytes must be 0 or more (got ${limitBytes})`);
    const freeBefore = this.free();
    this.limitBytes = limitBytes;
    this.limit = Math.floor(limitBytes / this.chunkBytes);
    const freed = this.free() - Math.max(0, freeBefore);
    if (freed > 0) this.giveTurns(freed);
  }

  /** Bytes held now. */
  get reservedBytes(): number {
    return this.reserved * this.chunkBytes;
  }

  /** A share for one transfer (`wake`: called when budget it queued for is free; it should ask again then). */
  open(wake: () => void): ReadAheadShare {
    return new ReadAheadShare(this, wake);
  }

  /** @internal Chunks `share` may take beyond its minimum: what is free, if nobody is before it. */
  freeFor(share: ReadAheadShare): number {
    return share.woken || (this.waiters.size === 0 && this.turns === 0) ? this.free() : 0;
  }

  /**
   * @internal A share's holdings go from `before` to `after` chunks (undefined: not active, nothing
   * kept for it). What this frees goes to the transfers queued.
   */
  account(before: number | undefined, after: number | undefined): void {
    const freeBefore = this.free();
    this.reserved += (after ?? 0) - (before ?? 0);
    this.unfilled += this.lack(after) - this.lack(before);
    if (this.reserved > this.peak) this.peak = this.reserved;
    const freed = this.free() - freeBefore;
    if (freed > 0) this.giveTurns(freed);
  }

  /** @internal */
  enqueue(share: ReadAheadShare): void {
    if (this.waiters.has(share)) return;
    this.waiters.add(share);
    this.waits++;
  }

  /** @internal Takes `share` out of the queue; a turn it had goes on to the next one. */
  leave(share: ReadAheadShare): void {
    this.waiters.delete(share);
    if (this.endTurn(share)) this.giveTurns(1);
  }

  /** @internal Ends `share`'s turn, if it had one. */
  endTurn(share: ReadAheadShare): boolean {
    if (!share.woken) return false;
    share.woken = false;
    this.turns--;
    return true;
  }

  /** Chunks no share may take beyond its minimum: neither held nor kept for minimums. */
  private free(): number {
    return this.limit - this.reserved - this.unfilled;
  }

  private lack(held: number | undefined): number {
    return held === undefined ? 0 : Math.max(0, this.minimumChunks - held);
  }

  /** Up to `count` transfers queued get a turn, first come first, while budget is free. */
  private giveTurns(count: number): void {
    for (let n = Math.min(count, this.free()); n > 0; n--) {
      const next = this.waiters.values().next();
      if (next.done) return;
      const share = next.value;
      this.waiters.delete(share);
      share.woken = true;
      this.turns++;
      queueMicrotask(() => {
        share.wake();
        // Its turn lasts while it runs: unused (it wanted nothing, or windows were full), it goes on.
        if (this.endTurn(share)) this.giveTurns(1);
      });
    }
  }
}

/** One transfer's part of the budget: the chunks it holds (requested, not yet handed to its client). */
export class ReadAheadShare {
  /** Chunks held. */
  held = 0;
  /** @internal Its turn came (see ReadAheadBudget.giveTurns): it may take before those still queued. */
  woken = false;
  /** Asked once, not closed: its minimum is kept for it. */
  private active = false;

  constructor(
    private readonly budget: ReadAheadBudget,
    /** @internal */
    readonly wake: () => void,
  ) {}

  /**
   * How many of `wanted` more chunks this transfer may request now: what it lacks of its minimum,
   * and what is free when nobody is queued before it. Takes nothing (see `take`); when it
   * returns 0, `waitForBudget` queues the transfer.
   */
  affordable(wanted: number): number {
    if (!this.active) {
      this.active = true;
      this.budget.account(undefined, this.held);
    }
    const allowed = Math.max(0, this.budget.minimumChunks - this.held) + Math.max(0, this.budget.freeFor(this));
    return Math.min(allowed, wanted);
  }

  /** Reserves `chunks` (no more than `affordable` allowed); a turn is used up. */
  take(chunks: number): void {
    this.budget.endTurn(this);
    this.change(this.held + chunks);
  }

  /** Returns `chunks` (handed to the client). */
  release(chunks: number): void {
    this.change(this.held - chunks);
  }

  /** Queues the transfer until budget is released (`wake` is called once then: it must ask again). */
  waitForBudget(): void {
    this.budget.enqueue(this);
  }

  /** The transfer ended: returns all it holds (chunks in flight too: their answers are dropped) and leaves the queue. */
  close(): void {
    this.budget.leave(this);
    this.budget.account(this.active ? this.held : undefined, undefined);
    this.active = false;
    this.held = 0;
  }

  private change(held: number): void {
    const before = this.held;
    this.held = held;
    if (this.active) this.budget.account(before, held);
  }
}
