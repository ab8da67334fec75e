import type { Dirent } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_LIST_ENTRIES, listEntryBytes, type ListEntry } from '@httpgw/protocol';
import { LRUCache } from 'lru-cache';
import { NotFoundError, isErrno } from './errors.js';
import type { PathGuard } from './path-guard.js';

/** How long a listing snapshot serves the pages after the first one. */
const LISTING_SNAPSHOT_MS = 30_000;

export interface ListingsInit {
  /** How long a listing is trusted for a first page before the directory is read again. */
  revalidateMs: number;
  /** Directories whose snapshots are kept; the least recently used goes first. */
  max?: number;
  now: () => number;
}

export interface ListingPage {
  entries: ListEntry[];
  /** Cursor of the next page, or -1 after the last. */
  next: number;
}

interface ListingSnapshot {
  /** The directory's real path. */
  real: string;
  /** Visible names, sorted; a cursor is an index into this list. */
  names: Dirent[];
  /** Filled as pages are read: an entry, null when the name is not listed, undefined before its stat. */
  entries: Array<ListEntry | null>;
}

interface CachedListing {
  snapshot: Promise<ListingSnapshot>;
  checkedAt: number;
}

/** Paged directory listings, from snapshots of recently listed directories. */
export class Listings {
  private readonly guard: PathGuard;
  private readonly revalidateMs: number;
  private readonly now: () => number;
  private readonly snapshots: LRUCache<string, CachedListing>;

  constructor(guard: PathGuard, init: ListingsInit) {
    this.guard = guard;
    this.revalidateMs = init.revalidateMs;
    this.now = init.now;
    this.snapshots = new LRUCache<string, CachedListing>({ max: init.max ?? 256 });
  }

  /**
   * One page of a directory listing, sorted by name, starting at `cursor`, within `maxBytes` of
   * entries (as listEntryBytes counts them; at least one entry) and MAX_LIST_ENTRIES entries. Only the page's entries are stat'ed, so every answer costs one
   * page whatever the directory's size. Pages after the first come from the snapshot the first was
   * cut from while it is recent, so a gateway paging through a large directory sees one list.
   */
  async page(path: string, cursor: number, maxBytes: number): Promise<ListingPage> {
    const snapshot = await this.snapshot(path, cursor === 0 ? this.revalidateMs : Math.max(this.revalidateMs, LISTING_SNAPSHOT_MS));
    const end = Math.min(snapshot.names.length, cursor + MAX_LIST_ENTRIES);
    await this.describeEntries(path, snapshot, cursor, end);
    const entries: ListEntry[] = [];
    let budget = maxBytes;
    let index = cursor;
    for (; index < end; index++) {
      const entry = snapshot.entries[index];
      if (!entry) continue;
      const cost = listEntryBytes(entry);
      if (cost > budget && entries.length > 0) break;
      budget -= cost;
      entries.push(entry);
    }
    return { entries, next: index < snapshot.names.length ? index : -1 };
  }

  /**
   * The sorted names in a directory, at most `maxAgeMs` old; one read at a time per path (a read in
   * progress is shared whatever its age). A missing path or one that is no directory is NotFoundError.
   */
  private snapshot(path: string, maxAgeMs: number): Promise<ListingSnapshot> {
    const cached = this.snapshots.get(path);
    // checkedAt is +Infinity while the read runs: now − ∞ is below any maximum age.
    if (cached && this.now() - cached.checkedAt < maxAgeMs) return cached.snapshot;
    const entry: CachedListing = { snapshot: this.readListing(path), checkedAt: Number.POSITIVE_INFINITY };
    this.snapshots.set(path, entry);
    entry.snapshot.then(
      () => {
        entry.checkedAt = this.now();
      },
      () => {
        if (this.snapshots.peek(path) === entry) this.snapshots.delete(path);
      },
    );
    return entry.snapshot;
  }

  private async readListing(path: string): Promise<ListingSnapshot> {
    const real = await this.guard.resolve(path);
    const dirents = await readdir(real, { withFileTypes: true }).catch((error: unknown) => {
      if (isErrno(error, 'ENOTDIR') || isErrno(error, 'ENOENT')) throw new NotFoundError(`${path} is not a directory`);
      throw error;
    });
    const visible = dirents.filter((dirent) => this.guard.shows(dirent.name));
    visible.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { real, names: visible, entries: new Array<ListEntry | null>(visible.length) };
  }

  /** Stats the snapshot's names `from..to-1` not stat'ed yet, all at once (at most one page). */
  private async describeEntries(path: string, snapshot: ListingSnapshot, from: number, to: number): Promise<void> {
    const describe = async (index: number): Promise<void> => {
      const dirent = snapshot.names[index]!;
      const childPath = path === '' ? dirent.name : `${path}/${dirent.name}`;
      let entry: ListEntry | null = null;
      try {
        // A plain file or directory in a resolved directory stays under the root: lstat it (a link
        // swapped in meanwhile is skipped). Links and unknown types go through resolve(), which hides
        // those that leave the root. check() drops names the protocol could not carry.
        this.guard.check(childPath);
        const plain = dirent.isFile() || dirent.isDirectory();
        const stats = plain ? await lstat(join(snapshot.real, dirent.name)) : await stat(await this.guard.resolve(childPath));
        if (stats.isFile()) entry = { name: dirent.name, kind: 'file', size: stats.size, mtimeMs: stats.mtimeMs };
        else if (stats.isDirectory()) entry = { name: dirent.name, kind: 'directory', size: 0, mtimeMs: stats.mtimeMs };
      } catch {
        // Vanished, forbidden or unreadable entries are simply not listed.
      }
      snapshot.entries[index] = entry;
    };
    const pending: Array<Promise<void>> = [];
    for (let index = from; index < to; index++) if (snapshot.entries[index] === undefined) pending.push(describe(index));
    await Promise.all(pending);
  }
}
