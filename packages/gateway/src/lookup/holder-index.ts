import { normalizePath, type CatalogEntry, type ListEntry, type Packet } from '@httpgw/protocol';
import { silentLogger, type Logger } from '@httpgw/runtime';
import PQueue from 'p-queue';
import { ask } from '../udp/ask.js';
import type { RequestTracker } from '../udp/request-tracker.js';
import type { PoolServer, ServerPool } from '../pool/server-pool.js';

export interface HolderIndexInit {
  pool: ServerPool;
  tracker: RequestTracker;
  logger?: Logger;
  /** Largest datagram this gateway receives, named in each catalogue request. */
  maxDatagramSize?: number;
  /** Catalogues fetched at once (default 8): 10,000 servers announcing theirs are fetched a few at a time. */
  fetchConcurrency?: number;
  /** Catalogue entries kept at most, all catalogues together (default 5,000,000); servers beyond stay unindexed. */
  maxEntries?: number;
  /** A catalogue whose fetch failed is tried again after this long at the earliest (default 30 s). */
  retryMs?: number;
  /**
   * Pool size from which catalogues are fetched at all (default 0: always). A smaller pool is asked
   * whole by lookups: its servers' generations are only noted, and fetched once the pool grows.
   */
  activeFrom?: number;
  now?: () => number;
}

/**
 * One catalogue as a server sent it. Servers whose catalogues have the same generation (a digest of
 * the entries) share one: a thousand servers serving the same tree cost one fetch and one copy.
 */
interface Catalogue {
  generation: number;
  entries: Map<string, CatalogEntry>;
  /** Keys of the indexed servers whose catalogue this is. */
  servers: KeyList;
  /** Children of each directory, as listing entries, built on the first listing. */
  children?: Map<string, ListEntry[]>;
}

interface ServerState {
  /** The generation the server named last. */
  announced: number;
  /** Its catalogue, when fetched, complete and of the announced generation. */
  catalogue?: Catalogue;
  /** When a fetch of the announced generation failed (it is not asked again before retryMs; never, when it was incomplete). */
  failedAt?: number;
}

export interface HolderPlan {
  /** Indexed servers whose catalogue lists the path. */
  holders: PoolServer[];
  /** Servers without a current complete catalogue: they may hold anything. */
  unindexed: PoolServer[];
}

export interface HolderIndexStats {
  /** Servers whose current catalogue is in the index. */
  indexed: number;
  /** Distinct catalogues held, and their entries. */
  catalogues: number;
  entries: number;
  fetches: number;
  fetchFailures: number;
  /** Fetches waiting or running. */
  fetchesPending: number;
}

const BUSY_RETRIES = 3;
/** Servers naming one generation its catalogue is asked of before the fetch counts as failed. */
const FETCH_ATTEMPTS = 3;

/**
 * What each server holds: path → the servers whose catalogue lists it, learned from the catalogues
 * servers report (fetched in the background when a server names a generation new to the gateway,
 * a few at a time). A lookup asks the holders it names plus every server not indexed yet; a path
 * that no catalogue lists and no unindexed server may hold is answered "none" without a datagram.
 *
 * The index only ever narrows whom to ask: what is served is still what those servers answer (a
 * version digest of the bytes), so a stale catalogue can delay finding a new file (until the server's
 * next walk and heartbeat), never serve a wrong one.
 */
export class HolderIndex {
  private readonly init: HolderIndexInit;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly servers = new Map<string, ServerState>();
  private readonly catalogues = new Map<number, Catalogue>();
  /** path → catalogues listing it. */
  private readonly byPath = new Map<string, Set<Catalogue>>();
  /** Keys of pool servers without a current complete catalogue. */
  private readonly unindexedKeys = new Set<string>();
  /** Fetches of one generation in progress, shared by every server naming it meanwhile. */
  private readonly fetching = new Map<number, Promise<Catalogue | 'incomplete' | undefined>>();
  private readonly queue: PQueue;
  private entryCount = 0;
  private indexedKeysCache: string[] | undefined;
  readonly counters = { fetches: 0, fetchFailures: 0 };

  constructor(init: HolderIndexInit) {
    this.init = init;
    this.logger = init.logger ?? silentLogger;
    this.now = init.now ?? (() => performance.now());
    this.queue = new PQueue({ concurrency: init.fetchConcurrency ?? 8 });
    for (const server of init.pool.list()) this.unindexedKeys.add(server.key);
    init.pool.added.add((server) => {
      this.unindexedKeys.add(server.key);
      this.indexedKeysCache = undefined;
      // The pool just grew to the size where the index is used: fetch what was only noted so far.
      if (init.pool.size === (init.activeFrom ?? 0)) {
        for (const [key, state] of this.servers) {
          const noted = init.pool.get(key);
          if (noted && !state.catalogue) this.fetchFor(noted, state.announced);
        }
      }
    });
    init.pool.removed.add((server) => this.forgetServer(server.key));
  }

  /** A server named its catalogue's generation (at registration or in a heartbeat). */
  noteGeneration(server: PoolServer, generation: number): void {
    const state = this.servers.get(server.key);
    if (state && state.announced === generation) {
      if (state.catalogue || state.failedAt === undefined || this.now() - state.failedAt < (this.init.retryMs ?? 30_000)) return;
      state.failedAt = undefined;
    } else if (state) {
      this.detach(server.key, state);
      state.announced = generation;
      state.failedAt = undefined;
    } else {
      this.servers.set(server.key, { announced: generation });
    }
    if (this.init.pool.size < (this.init.activeFrom ?? 0)) return;
    this.fetchFor(server, generation);
  }

  /** Attaches the catalogue of `generation` to `server`: the copy held, or one fetched now. */
  private fetchFor(server: PoolServer, generation: number): void {
    const shared = this.catalogues.get(generation);
    if (shared) return this.attach(server.key, shared);
    void this.fetchGeneration(server, generation).then((catalogue) => {
      const current = this.servers.get(server.key);
      if (!current || current.announced !== generation || current.catalogue) return;
      if (catalogue === 'incomplete') current.failedAt = Number.POSITIVE_INFINITY; // not asked again until it changes
      else if (catalogue) this.attach(server.key, catalogue);
      else current.failedAt = this.now();
    });
  }

  /**
   * Whom to ask about `path`: its indexed holders (all of them, or `sample` drawn at random when
   * there are more, so that a file held by 10,000 servers costs as much as one held by `sample`),
   * and the servers that are not indexed.
   */
  plan(path: string, sample = Number.POSITIVE_INFINITY, random: () => number = Math.random): HolderPlan {
    const catalogues = [...(this.byPath.get(path) ?? [])];
    const total = catalogues.reduce((sum, catalogue) => sum + catalogue.servers.size, 0);
    const keys: string[] = [];
    if (total <= sample) {
      for (const catalogue of catalogues) keys.push(...catalogue.servers);
    } else {
      const drawn = new Set<string>();
      for (let tries = 0; drawn.size < sample && tries < 4 * sample; tries++) {
        let at = Math.floor(random() * total);
        for (const catalogue of catalogues) {
          if (at < catalogue.servers.size) {
            drawn.add(catalogue.servers.at(at));
            break;
          }
          at -= catalogue.servers.size;
        }
      }
      keys.push(...drawn);
    }
    const holders: PoolServer[] = [];
    for (const key of keys) {
      const server = this.init.pool.get(key);
      if (server) holders.push(server);
    }
    return { holders, unindexed: this.unindexedServers() };
  }

  /** Whether `key`'s current catalogue lists `path`. */
  holds(key: string, path: string): boolean {
    return this.servers.get(key)?.catalogue?.entries.has(path) ?? false;
  }

  /** Keys of every indexed server (each of them would have listed the path it was asked about). */
  indexedKeys(): readonly string[] {
    this.indexedKeysCache ??= [...this.servers.entries()].flatMap(([key, state]) => (state.catalogue ? [key] : []));
    return this.indexedKeysCache;
  }

  /** Whether every server in the pool is indexed. */
  get complete(): boolean {
    return this.unindexedKeys.size === 0;
  }

  /**
   * The listing of directory `path` from the index: one list per distinct catalogue that has the
   * directory (empty when none), and the servers not indexed, which must be asked.
   */
  listing(path: string): { listings: ListEntry[][]; unindexed: PoolServer[] } {
    const listings: ListEntry[][] = [];
    const seen = new Set<Catalogue>();
    const add = (catalogue: Catalogue) => {
      if (seen.has(catalogue) || catalogue.servers.size === 0) return;
      seen.add(catalogue);
      const children = (catalogue.children ??= childrenOf(catalogue.entries)).get(path);
      if (children) listings.push(children);
    };
    if (path === '') for (const catalogue of this.catalogues.values()) add(catalogue);
    else for (const catalogue of this.byPath.get(path) ?? []) add(catalogue);
    return { listings, unindexed: this.unindexedServers() };
  }

  unindexedServers(): PoolServer[] {
    const unindexed: PoolServer[] = [];
    for (const key of this.unindexedKeys) {
      const server = this.init.pool.get(key);
      if (server) unindexed.push(server);
    }
    return unindexed;
  }

  stats(): HolderIndexStats {
    return {
      indexed: this.indexedKeys().length,
      catalogues: this.catalogues.size,
      entries: this.entryCount,
      ...this.counters,
      fetchesPending: this.queue.size + this.queue.pending,
    };
  }

  close(): void {
    this.queue.clear();
  }

  private fetchGeneration(server: PoolServer, generation: number): Promise<Catalogue | 'incomplete' | undefined> {
    let pending = this.fetching.get(generation);
    if (!pending) {
      pending = this.fetchFromAny(server, generation);
      this.fetching.set(generation, pending);
      void pending.finally(() => this.fetching.delete(generation));
    }
    return pending;
  }

  /**
   * The catalogue of `generation` from `first`, or, when it cannot give it (silent, gone), from up to
   * two other servers naming the same generation: one server's trouble must not leave the thousands
   * that share its catalogue unindexed until the retry.
   */
  private async fetchFromAny(first: PoolServer, generation: number): Promise<Catalogue | 'incomplete' | undefined> {
    const tried = new Set<string>();
    for (let server: PoolServer | undefined = first; server && tried.size < FETCH_ATTEMPTS; server = this.anotherNaming(generation, tried)) {
      tried.add(server.key);
      const from: PoolServer = server;
      const outcome = await this.queue.add(() => this.fetchFrom(from, generation));
      if (outcome) return outcome;
    }
    return undefined;
  }

  /** A server in the pool that named `generation` and is not in `tried` (a scan: only after a failed fetch). */
  private anotherNaming(generation: number, tried: ReadonlySet<string>): PoolServer | undefined {
    for (const [key, state] of this.servers) {
      if (state.announced !== generation || tried.has(key)) continue;
      const server = this.init.pool.get(key);
      if (server) return server;
    }
    return undefined;
  }

  /**
   * Every page of `server`'s catalogue: `incomplete` when the catalogue is incomplete or would
   * overfill the index (another server naming it would do no better), undefined when it changed
   * meanwhile or the server fell silent.
   */
  private async fetchFrom(server: PoolServer, generation: number): Promise<Catalogue | 'incomplete' | undefined> {
    if (this.init.pool.get(server.key) !== server) return undefined;
    this.counters.fetches++;
    const entries = new Map<string, CatalogEntry>();
    const budget = (this.init.maxEntries ?? 5_000_000) - this.entryCount;
    let cursor = 0;
    for (;;) {
      const answer = await this.page(server, cursor);
      const failed = (why: string) => {
        this.counters.fetchFailures++;
        this.logger.debug('catalogue not indexed', { server: server.key, generation, why });
        return undefined;
      };
      if (answer?.type !== 'catalog') return failed(answer ? `answered ${answer.type}` : 'no answer');
      if (answer.generation !== generation) return failed(`changed to ${answer.generation} meanwhile`);
      if (!answer.complete) {
        failed('incomplete');
        return 'incomplete';
      }
      for (const entry of answer.entries) if (isIndexable(entry[0])) entries.set(entry[0], entry);
      if (entries.size > budget) {
        failed('the index is full');
        return 'incomplete';
      }
      if (answer.next === -1) break;
      if (answer.next <= cursor) return failed('the cursor did not move on');
      cursor = answer.next;
    }
    return { generation, entries, servers: new KeyList() };
  }

  /** The catalogue of this generation in the index: `catalogue` entered now, or the copy already there. */
  private register(catalogue: Catalogue): Catalogue {
    const known = this.catalogues.get(catalogue.generation);
    if (known) return known;
    this.catalogues.set(catalogue.generation, catalogue);
    this.entryCount += catalogue.entries.size;
    for (const path of catalogue.entries.keys()) {
      let holders = this.byPath.get(path);
      if (!holders) this.byPath.set(path, (holders = new Set()));
      holders.add(catalogue);
    }
    return catalogue;
  }

  private async page(server: PoolServer, cursor: number): Promise<Packet | undefined> {
    const { maxDatagramSize } = this.init;
    const sized = maxDatagramSize === undefined ? {} : { maxDatagramSize };
    for (let retry = 0; ; retry++) {
      const answer = await ask(this.init.tracker, server, (requestId) => ({ type: 'catalog-request', requestId, cursor, ...sized }));
      if (answer?.type !== 'error' || answer.code !== 'busy' || retry >= BUSY_RETRIES) return answer;
      await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** retry));
    }
  }

  private attach(key: string, fetched: Catalogue): void {
    const state = this.servers.get(key);
    if (!state || !this.init.pool.get(key)) return;
    const catalogue = this.register(fetched);
    state.catalogue = catalogue;
    catalogue.servers.add(key);
    this.unindexedKeys.delete(key);
    this.indexedKeysCache = undefined;
  }

  private detach(key: string, state: ServerState): void {
    const catalogue = state.catalogue;
    state.catalogue = undefined;
    this.indexedKeysCache = undefined;
    if (this.init.pool.get(key)) this.unindexedKeys.add(key);
    if (!catalogue) return;
    catalogue.servers.delete(key);
    if (catalogue.servers.size > 0) return;
    // Nobody names this generation any more: its entries go.
    this.catalogues.delete(catalogue.generation);
    this.entryCount -= catalogue.entries.size;
    for (const path of catalogue.entries.keys()) {
      const holders = this.byPath.get(path);
      holders?.delete(catalogue);
      if (holders?.size === 0) this.byPath.delete(path);
    }
  }

  private forgetServer(key: string): void {
    const state = this.servers.get(key);
    if (state) this.detach(key, state);
    this.servers.delete(key);
    this.unindexedKeys.delete(key);
    this.indexedKeysCache = undefined;
  }
}

/** A path the gateway would ask for (canonical, no dotfile): anything else is never looked up. */
function isIndexable(path: string): boolean {
  try {
    return path !== '' && normalizePath(path) === path;
  } catch {
    return false;
  }
}

/** Directory path ('' for the root) → its entries, from a catalogue's paths. */
function childrenOf(entries: Map<string, CatalogEntry>): Map<string, ListEntry[]> {
  const children = new Map<string, ListEntry[]>();
  for (const [path, kind, size, mtimeMs] of entries.values()) {
    const slash = path.lastIndexOf('/');
    const parent = slash === -1 ? '' : path.slice(0, slash);
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push({ name: path.slice(slash + 1), kind: kind === 'f' ? 'file' : 'directory', size, mtimeMs });
  }
  return children;
}

/** Server keys with O(1) add, delete and access by position (for drawing holders at random). */
class KeyList implements Iterable<string> {
  private readonly keys: string[] = [];
  private readonly positions = new Map<string, number>();

  get size(): number {
    return this.keys.length;
  }

  at(index: number): string {
    return this.keys[index]!;
  }

  add(key: string): void {
    if (this.positions.has(key)) return;
    this.positions.set(key, this.keys.length);
    this.keys.push(key);
  }

  delete(key: string): void {
    const position = this.positions.get(key);
    if (position === undefined) return;
    const last = this.keys.pop()!;
    this.positions.delete(key);
    if (last !== key) {
      this.keys[position] = last;
      this.positions.set(last, position);
    }
  }

  [Symbol.iterator](): Iterator<string> {
    return this.keys[Symbol.iterator]();
  }
}
