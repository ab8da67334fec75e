import type { Logger, MetaPacket } from '@httpgw/protocol';
import { ask } from './ask.js';
import type { RequestTracker } from './request-tracker.js';
import type { PoolServer, ServerPool } from './server-pool.js';

/** One version of a file and the servers that hold exactly that version. */
export interface FileVersion {
  path: string;
  size: number;
  mtimeMs: number;
  version: string;
  servers: string[];
}

export type LookupResult =
  | { kind: 'file'; file: FileVersion }
  | { kind: 'directory'; servers: string[]; mtimeMs: number }
  | { kind: 'none' }
  | { kind: 'no-servers' };

export interface FileLookupInit {
  pool: ServerPool;
  tracker: RequestTracker;
  logger: Logger;
  /** How long an answer is reused for the same path; 0 asks the servers for every request. */
  cacheMs?: number;
  now?: () => number;
}

/**
 * Asks every usable server what it holds at a path and picks one version: the one most servers hold,
 * the newest on a tie. Servers that disagree are never mixed: only holders of the chosen version serve it.
 */
export class FileLookup {
  private readonly cache = new Map<string, { result: LookupResult; expiresAt: number }>();
  private readonly init: FileLookupInit;
  private readonly now: () => number;

  constructor(init: FileLookupInit) {
    this.init = init;
    this.now = init.now ?? (() => performance.now());
  }

  async lookup(path: string): Promise<LookupResult> {
    const cached = this.cache.get(path);
    if (cached && cached.expiresAt > this.now()) return cached.result;
    const result = await this.ask(path);
    const cacheMs = this.init.cacheMs ?? 1_000;
    if (cacheMs > 0 && result.kind !== 'no-servers') {
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(path, { result, expiresAt: this.now() + cacheMs });
    }
    return result;
  }

  /** Forgets what is known of a path (its file changed under a transfer). */
  forget(path: string): void {
    this.cache.delete(path);
  }

  private async ask(path: string): Promise<LookupResult> {
    const servers = this.init.pool.usable();
    if (servers.length === 0) return { kind: 'no-servers' };
    const answers = await Promise.all(
      servers.map(async (server) => {
        const answer = await ask(this.init.tracker, server, (requestId) => ({ type: 'meta-request', requestId, path }));
        return answer?.type === 'meta' ? { server, meta: answer } : undefined;
      }),
    );
    const known = answers.filter((answer): answer is { server: PoolServer; meta: MetaPacket } => answer !== undefined);
    if (known.length === 0) return { kind: 'no-servers' };
    const files = known.filter(({ meta }) => meta.kind === 'file');
    if (files.length > 0) return { kind: 'file', file: this.chooseVersion(path, files) };
    const directories = known.filter(({ meta }) => meta.kind === 'directory');
    if (directories.length > 0) {
      return { kind: 'directory', servers: directories.map(({ server }) => server.key), mtimeMs: Math.max(...directories.map(({ meta }) => meta.mtimeMs)) };
    }
    return { kind: 'none' };
  }

  private chooseVersion(path: string, files: Array<{ server: PoolServer; meta: MetaPacket }>): FileVersion {
    // A version is the version string with the size and time it came with: a server that reports
    // the same string with another size is not mixed in (nor trusted to set the Content-Length).
    const versions = new Map<string, FileVersion>();
    for (const { server, meta } of files) {
      const key = `${meta.version}|${meta.size}|${meta.mtimeMs}`;
      const entry = versions.get(key) ?? { path, size: meta.size, mtimeMs: meta.mtimeMs, version: meta.version, servers: [] };
      entry.servers.push(server.key);
      versions.set(key, entry);
    }
    const ranked = [...versions.values()].sort((a, b) => b.servers.length - a.servers.length || b.mtimeMs - a.mtimeMs);
    if (ranked.length > 1) {
      this.init.logger.warn('servers disagree about a file; serving one version only', {
        path,
        chosen: ranked[0]!.version,
        versions: ranked.map((entry) => `${entry.version}@${entry.servers.length}`).join(','),
      });
    }
    return ranked[0]!;
  }
}
