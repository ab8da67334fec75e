import { setTimeout as delay } from 'node:timers/promises';
import { normalizePath, type ListEntry, type Packet } from '@httpgw/protocol';
import { silentLogger, type Logger } from '@httpgw/runtime';
import { LRUCache } from 'lru-cache';
import PQueue from 'p-queue';
import { ask } from '../udp/ask.js';
import type { RequestTracker } from '../udp/request-tracker.js';
import type { PoolServer, ServerPool } from '../pool/server-pool.js';
import type { HolderIndex } from './holder-index.js';

export type ListingResult =
  /** `incomplete`: some server did not answer every page; what it did send is included. */
  | { kind: 'directory'; entries: ListEntry[]; incomplete: boolean }
  | { kind: 'none' }
  | { kind: 'no-servers' };

export interface DirectoryListerInit {
  pool: ServerPool;
  tracker: RequestTracker;
  logger?: Logger;
  /** How long a merged listing is reused for the same path (0: ask on every request). */
  cacheMs?: number;
  /** Largest datagram this gateway receives, named in each list request (default: none named, 65,507). */
  maxDatagramSize?: number;
  /**
   * What each server holds: with a pool of at least `indexFrom` servers (default 32), a listing is
   * merged from the catalogues in the index (one per distinct catalogue, no datagram) and the pages of
   * the servers not indexed yet.
   */
  index?: HolderIndex;
  indexFrom?: number;
  /** Entries taken from one server for one directory at most; beyond it the listing is incomplete. */
  maxEntriesPerServer?: number;
  now?: () => number;
}

/** What one server holds at a directory path. */
type ServerListing = { kind: 'entries'; entries: ListEntry[]; complete: boolean } | { kind: 'none' } | { kind: 'silent' };

const BUSY_RETRIES = 3;
const CACHED_LISTINGS = 16;
/** Servers paged through at once for one listing: a large pool is asked in waves, not all at once. */
const LISTING_FAN_OUT = 64;

/**
 * Lists a directory across the pool: pages through every usable server at once (each server's pages
 * in order, by cursor, each page asked again on loss), then merges the answers by name. Concurrent
 * requests for one path share one fetch; the merged result is reused for `cacheMs`.
 */
export class DirectoryLister {
  /** Merged listings by path, least recently used evicted first. */
  private readonly cache = new LRUCache<string, { result: Promise<ListingResult>; expiresAt: number }>({ max: CACHED_LISTINGS });
  private readonly init: DirectoryListerInit;
  private readonly logger: Logger;
  private readonly now: () => number;

  constructor(init: DirectoryListerInit) {
    this.init = init;
    this.logger = init.logger ?? silentLogger;
    this.now = init.now ?? (() => performance.now());
  }

  list(path: string): Promise<ListingResult> {
    const cached = this.cache.get(path);
    // expiresAt is +Infinity while the fetch runs, so concurrent requests share it.
    if (cached && cached.expiresAt > this.now()) return cached.result;
    const entry = { result: this.fetch(path), expiresAt: Number.POSITIVE_INFINITY };
    this.cache.set(path, entry);
    const cacheMs = this.init.cacheMs ?? 1_000;
    const forget = () => {
      if (this.cache.get(path) === entry) this.cache.delete(path);
    };
    entry.result.then((result) => {
      if (result.kind !== 'no-servers' && cacheMs > 0) entry.expiresAt = this.now() + cacheMs;
      else forget();
    }, forget);
    return entry.result;
  }

  private async fetch(path: string): Promise<ListingResult> {
    const { index, pool } = this.init;
    if (index && pool.size >= (this.init.indexFrom ?? 32)) return this.fetchIndexed(index, path);
    const servers = this.init.pool.usable();
    if (servers.length === 0) return { kind: 'no-servers' };
    const fanOut = new PQueue({ concurrency: LISTING_FAN_OUT });
    const answers = await Promise.all(servers.map((server) => fanOut.add(() => this.fetchFrom(server, path))));
    const held = answers.flatMap((answer) => (answer.kind === 'entries' ? [answer] : []));
    if (held.length === 0) return answers.some((answer) => answer.kind === 'none') ? { kind: 'none' } : { kind: 'no-servers' };
    // Servers cooling down after timeouts were not asked: what they hold may be missing too.
    const skipped = servers.length < this.init.pool.size;
    const incomplete = skipped || answers.some((answer) => answer.kind === 'silent' || (answer.kind === 'entries' && !answer.complete));
    return { kind: 'directory', entries: mergeListings(held.map((answer) => answer.entries)), incomplete };
  }

  /** The catalogues' lists of `path`, and the pages of every usable server not indexed. */
  private async fetchIndexed(index: HolderIndex, path: string): Promise<ListingResult> {
    const { listings, unindexed } = index.listing(path);
    const asked = unindexed.filter((server) => !server.draining && server.state === 'active');
    const fanOut = new PQueue({ concurrency: LISTING_FAN_OUT });
    const answers = await Promise.all(asked.map((server) => fanOut.add(() => this.fetchFrom(server, path))));
    const held = [...listings, ...answers.flatMap((answer) => (answer.kind === 'entries' ? [answer.entries.filter(isListable)] : []))];
    if (held.length === 0) {
      const anyAnswer = index.indexedKeys().length > 0 || answers.some((answer) => answer.kind === 'none');
      return anyAnswer ? { kind: 'none' } : { kind: 'no-servers' };
    }
    const incomplete = asked.length < unindexed.length || answers.some((answer) => answer.kind === 'silent' || (answer.kind === 'entries' && !answer.complete));
    return { kind: 'directory', entries: mergeListings(held), incomplete };
  }

  /** Every page one server has of a directory, in order. */
  private async fetchFrom(server: PoolServer, path: string): Promise<ServerListing> {
    const entries: ListEntry[] = [];
    const maxEntries = this.init.maxEntriesPerServer ?? 200_000;
    let cursor = 0;
    for (;;) {
      const answer = await this.page(server, path, cursor);
      if (answer?.type === 'list') {
        entries.push(...answer.entries.filter(isListable));
        if (answer.next === -1) return { kind: 'entries', entries, complete: true };
        // A cursor that does not move on, or a directory past the limit, ends the listing here.
        if (answer.next <= cursor || entries.length >= maxEntries) {
          this.logger.warn('directory listing cut short', { server: server.key, path, entries: entries.length, next: answer.next });
          return { kind: 'entries', entries, complete: false };
        }
        cursor = answer.next;
        continue;
      }
      if (cursor > 0) {
        this.logger.warn('directory listing interrupted', { server: server.key, path, cursor, answer: answer?.type ?? 'none' });
        return { kind: 'entries', entries, complete: false };
      }
      if (answer?.type === 'error' && (answer.code === 'not-found' || answer.code === 'bad-request')) return { kind: 'none' };
      if (answer?.type === 'error') this.logger.warn('server could not list a directory', { server: server.key, path, error: answer.message });
      return { kind: 'silent' };
    }
  }

  /** One page; a `busy` answer is asked again after a short pause, a few times. */
  private async page(server: PoolServer, path: string, cursor: number): Promise<Packet | undefined> {
    const { maxDatagramSize } = this.init;
    const sized = maxDatagramSize === undefined ? {} : { maxDatagramSize };
    for (let retry = 0; ; retry++) {
      const answer = await ask(this.init.tracker, server, (requestId) => ({ type: 'list-request', requestId, path, cursor, ...sized }));
      if (answer?.type !== 'error' || answer.code !== 'busy' || retry >= BUSY_RETRIES) return answer;
      await delay(10 * 2 ** retry);
    }
  }
}

/**
 * One entry per name from several servers' listings. A name that is a file somewhere is a file (as
 * a GET of it serves the file); among several, the newest wins, whatever its size. Folders come
 * first, then files, each sorted by name (code point order).
 */
export function mergeListings(listings: ListEntry[][]): ListEntry[] {
  const byName = new Map<string, ListEntry>();
  for (const listing of listings) {
    for (const entry of listing) {
      const known = byName.get(entry.name);
      if (!known || rank(entry) > rank(known) || (rank(entry) === rank(known) && entry.mtimeMs > known.mtimeMs)) byName.set(entry.name, entry);
    }
  }
  return [...byName.values()].sort((a, b) => {
    if (a.kind !== b.kind) return a.kind === 'directory' ? -1 : 1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}

/** An entry worth showing: a name the gateway would serve, and a date that can be printed. */
function isListable(entry: ListEntry): boolean {
  return isServableName(entry.name) && !Number.isNaN(new Date(entry.mtimeMs).getTime());
}

/** A name the gateway would serve as one path segment: no '/', '.', '..', dotfile or control character. */
export function isServableName(name: string): boolean {
  try {
    return name !== '' && !name.includes('/') && normalizePath(name) === name;
  } catch {
    return false;
  }
}

function rank(entry: ListEntry): number {
  return entry.kind === 'file' ? 1 : 0;
}
