import { keepChunk } from '../transfer/chunk-memory.js';

/** Gets a chunk another transfer fetched, or undefined: that transfer will not get it, fetch it yourself. */
export type ChunkWaiter = (data: Buffer | undefined) => void;

interface InFlight {
  owner: object;
  waiters: ChunkWaiter[];
}

/**
 * Chunks being fetched right now, gateway-wide, so that concurrent downloads of one version share
 * one fetch of each chunk: the first transfer to need a chunk claims it and asks the servers; the
 * others join and get the same buffer when it comes. An owner that ends before its chunk came
 * (its client left, it failed) abandons its claims, and whoever waited fetches for itself.
 */
export class SharedChunks {
  private readonly inFlight = new Map<string, InFlight>();
  /** Chunks a transfer got from another one's fetch instead of asking the servers. */
  collapsed = 0;

  get size(): number {
    return this.inFlight.size;
  }

  isInFlight(key: string): boolean {
    return this.inFlight.has(key);
  }

  /** Joins the fetch of `key` if some transfer is on it (true); false: nobody is, claim it. */
  join(key: string, waiter: ChunkWaiter): boolean {
    const entry = this.inFlight.get(key);
    if (!entry) return false;
    entry.waiters.push(waiter);
    this.collapsed++;
    return true;
  }

  /** `owner` fetches `key`: others who need it join. */
  claim(key: string, owner: object): void {
    if (!this.inFlight.has(key)) this.inFlight.set(key, { owner, waiters: [] });
  }

  /** The chunk came: everyone who joined gets it. Returns how many did. */
  publish(key: string, data: Buffer): number {
    const entry = this.inFlight.get(key);
    if (!entry) return 0;
    this.inFlight.delete(key);
    // Several transfers deliver the same buffer now: none may free it after its own write.
    if (entry.waiters.length > 0) keepChunk(data);
    for (const waiter of entry.waiters) waiter(data);
    return entry.waiters.length;
  }

  /** `owner` will not fetch `key` after all: those who joined fetch it themselves. */
  abandon(key: string, owner: object): void {
    const entry = this.inFlight.get(key);
    if (!entry || entry.owner !== owner) return;
    this.inFlight.delete(key);
    for (const waiter of entry.waiters) waiter(undefined);
  }
}
