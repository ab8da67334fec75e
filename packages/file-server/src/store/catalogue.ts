import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_CATALOG_ENTRIES, catalogEntriesBudget, catalogEntryBytes, type CatalogEntry } from '@httpgw/protocol';
import type { PathGuard } from './path-guard.js';

export interface CatalogueInit {
  /** Entries kept at most; a larger tree makes an incomplete catalogue (the gateway then asks this server about everything). */
  maxEntries?: number;
  /** Directories read at once while walking the tree. */
  concurrency?: number;
}

/** One walk of the tree: every file and directory served, sorted by path, and the generation naming it. */
export interface CatalogueSnapshot {
  /** A 48-bit digest of the entries and `complete`: two snapshots share it only when they list the same things. */
  generation: number;
  entries: CatalogEntry[];
  /** False when something served is left out (too many entries, an unreadable directory, a directory reached by a link). */
  complete: boolean;
  /** How long the walk took, to pace the next one. */
  scanMs: number;
}

export interface CataloguePage {
  generation: number;
  entries: CatalogEntry[];
  next: number;
  complete: boolean;
}

/**
 * What this server holds, for the gateway's holder index: a walk of the root (as the path guard
 * shows it: dotfiles only when allowed, links only when they stay under the root), summed up in a
 * generation number that changes whenever a file or directory appears, goes, or changes size or
 * time. The gateway fetches the pages only when the generation it hears in a heartbeat is new to it.
 */
export class Catalogue {
  private readonly guard: PathGuard;
  private readonly maxEntries: number;
  private readonly concurrency: number;
  private snapshot: CatalogueSnapshot | undefined;
  private scanning: Promise<CatalogueSnapshot> | undefined;

  constructor(guard: PathGuard, init: CatalogueInit = {}) {
    this.guard = guard;
    this.maxEntries = init.maxEntries ?? 100_000;
    this.concurrency = init.concurrency ?? 8;
  }

  /** The generation of the last walk, undefined before the first one ends. */
  get generation(): number | undefined {
    return this.snapshot?.generation;
  }

  get current(): CatalogueSnapshot | undefined {
    return this.snapshot;
  }

  /** Walks the tree again (one walk at a time: a call during a walk shares it). */
  rescan(): Promise<CatalogueSnapshot> {
    this.scanning ??= this.walk().then(
      (snapshot) => {
        this.snapshot = snapshot;
        this.scanning = undefined;
        return snapshot;
      },
      (error: unknown) => {
        this.scanning = undefined;
        throw error;
      },
    );
    return this.scanning;
  }

  /**
   * One page from `cursor`, within `maxDatagramSize` (catalogEntriesBudget) and MAX_CATALOG_ENTRIES.
   * An entry too long for any page of this size is left out, and the page says `complete: false`.
   */
  async page(cursor: number, maxDatagramSize: number): Promise<CataloguePage> {
    const snapshot = this.snapshot ?? (await this.rescan());
    const full = catalogEntriesBudget(maxDatagramSize);
    let budget = full;
    let complete = snapshot.complete;
    const entries: CatalogEntry[] = [];
    let index = cursor;
    for (; index < snapshot.entries.length && entries.length < MAX_CATALOG_ENTRIES; index++) {
      const entry = snapshot.entries[index]!;
      const cost = catalogEntryBytes(entry[0]);
      if (cost > full) {
        complete = false;
        continue;
      }
      if (cost > budget) break;
      budget -= cost;
      entries.push(entry);
    }
    return { generation: snapshot.generation, entries, next: index < snapshot.entries.length ? index : -1, complete };
  }

  private async walk(): Promise<CatalogueSnapshot> {
    const startedAt = performance.now();
    const entries: CatalogEntry[] = [];
    let complete = true;
    const pending: string[] = [''];
    const readOne = async (dir: string): Promise<void> => {
      let dirents: Dirent[];
      try {
        dirents = await readdir(dir === '' ? this.guard.root : join(this.guard.root, dir), { withFileTypes: true });
      } catch {
        complete = false;
        return;
      }
      for (const dirent of dirents) {
        if (!this.guard.shows(dirent.name)) continue;
        const path = dir === '' ? dirent.name : `${dir}/${dirent.name}`;
        try {
          this.guard.check(path);
        } catch {
          continue; // a name the protocol cannot carry is never asked for
        }
        if (entries.length >= this.maxEntries) {
          complete = false;
          return;
        }
        try {
          const link = !(dirent.isFile() || dirent.isDirectory());
          // Links are followed only where they stay under the root (resolve() refuses the rest).
          const stats = link ? await stat(await this.guard.resolve(path)) : await lstat(join(this.guard.root, path));
          if (stats.isFile()) entries.push([path, 'f', stats.size, stats.mtimeMs]);
          else if (stats.isDirectory()) {
            entries.push([path, 'd', 0, stats.mtimeMs]);
            // A directory reached through a link is not walked (no cycles): what is under it is unknown here.
            if (link) complete = false;
            else pending.push(path);
          }
        } catch {
          // Vanished, forbidden or a link leaving the root: not served, not listed.
        }
      }
    };
    while (pending.length > 0) await Promise.all(pending.splice(0, this.concurrency).map(readOne));
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const digest = createHash('sha256').update(JSON.stringify([complete, entries])).digest();
    return { generation: digest.readUIntBE(0, 6), entries, complete, scanMs: performance.now() - startedAt };
  }
}
