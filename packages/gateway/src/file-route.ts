import { extname } from 'node:path';
import { Readable } from 'node:stream';
import type { ParameterizedContext } from 'koa';
import type { ChunkFetcher } from './chunk-fetcher.js';
import parseRange from 'range-parser';
import { GatewayError } from './errors.js';
import type { FileLookup, FileVersion } from './file-lookup.js';
import type { Transfers } from './transfers.js';

/** What a request leaves behind for the access log. */
export type GatewayContext = ParameterizedContext<GatewayState>;

export interface GatewayState {
  fetcher?: ChunkFetcher;
  error?: string;
}

export interface FileRouteDeps {
  lookup: FileLookup;
  transfers: Transfers;
}

/** Strong validator from the content version: equal ETags mean equal bytes. */
export function etagOf(file: FileVersion): string {
  return `"${file.version}"`;
}

/**
 * Picks the byte range to send. No Range → whole file, 200. One satisfiable range → 206. Several
 * ranges → whole file, 200 (documented: no multipart/byteranges). Unsatisfiable → 416. A Range whose
 * If-Range no longer matches → whole file, 200.
 */
export function chooseRange(ctx: GatewayContext, file: FileVersion): { status: 200 | 206 | 416; start: number; end: number } {
  const whole = { status: 200 as const, start: 0, end: file.size - 1 };
  const header = ctx.get('Range');
  if (!header || !ifRangeMatches(ctx.get('If-Range'), file)) return whole;
  const ranges = parseRange(file.size, header, { combine: true });
  if (ranges === -1) return { status: 416, start: 0, end: -1 };
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return whole;
  const [range] = ranges;
  return range ? { status: 206, start: range.start, end: range.end } : whole;
}

function ifRangeMatches(ifRange: string, file: FileVersion): boolean {
  if (!ifRange) return true;
  if (ifRange.startsWith('"') || ifRange.startsWith('W/')) return ifRange === etagOf(file);
  const since = Date.parse(ifRange);
  return Number.isFinite(since) && Math.floor(file.mtimeMs / 1000) <= Math.floor(since / 1000);
}

/** Sets the headers a GET and a HEAD share; true when the client's copy is fresh (304). */
function setRepresentationHeaders(ctx: GatewayContext, file: FileVersion): boolean {
  ctx.status = 200;
  const name = file.path.slice(file.path.lastIndexOf('/') + 1);
  ctx.type = extname(name) || 'application/octet-stream';
  if (!ctx.type) ctx.type = 'application/octet-stream';
  ctx.set('ETag', etagOf(file));
  ctx.set('Last-Modified', new Date(file.mtimeMs).toUTCString());
  ctx.set('Accept-Ranges', 'bytes');
  if (ctx.query.download !== undefined) ctx.attachment(name);
  if (ctx.fresh) {
    ctx.status = 304;
    return true;
  }
  return false;
}

/** Serves one file version: headers, conditional and range handling, then the streamed body. */
export async function serveFile(ctx: GatewayContext, file: FileVersion, deps: FileRouteDeps): Promise<void> {
  if (setRepresentationHeaders(ctx, file)) return;
  const range = chooseRange(ctx, file);
  if (range.status === 416) {
    ctx.status = 416;
    ctx.set('Content-Range', `bytes */${file.size}`);
    ctx.type = 'text/plain';
    ctx.body = 'range not satisfiable\n';
    return;
  }
  ctx.status = range.status;
  if (range.status === 206) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`);
  const length = range.end - range.start + 1;
  if (ctx.method === 'HEAD' || length === 0) {
    ctx.length = length;
    if (length === 0) ctx.body = Buffer.alloc(0);
    return;
  }
  const { fetcher, chunks } = deps.transfers.fetch(file, range.start, range.end);
  // Wait for the first chunk before the status line goes out: a file that changed or lost all its
  // servers is still an honest error status here, not a cut connection.
  const first = await chunks.next();
  const body = Readable.from(prepend(first, chunks), { objectMode: false, highWaterMark: 256 * 1024 });
  ctx.state.fetcher = fetcher;
  ctx.length = length;
  ctx.body = body;
}

async function* prepend(first: IteratorResult<Buffer, void>, rest: AsyncGenerator<Buffer, void, undefined>): AsyncGenerator<Buffer, void, undefined> {
  if (first.done) return;
  yield first.value;
  yield* rest;
}

/** Looks a path up and serves it; retries once when its version changed between lookup and fetch. */
export async function serveFilePath(ctx: GatewayContext, path: string, deps: FileRouteDeps): Promise<'file' | 'directory'> {
  for (let attempt = 1; ; attempt++) {
    const found = await deps.lookup.lookup(path);
    if (found.kind === 'no-servers') throw new GatewayError('GW_ERR_NO_SERVERS');
    if (found.kind === 'none') throw new GatewayError('GW_ERR_NOT_FOUND');
    if (found.kind === 'directory') return 'directory';
    try {
      await serveFile(ctx, found.file, deps);
      return 'file';
    } catch (error) {
      if (attempt >= 2 || !(error instanceof GatewayError) || (error.code !== 'GW_ERR_FILE_CHANGED' && error.code !== 'GW_ERR_SOURCES_GONE')) throw error;
      deps.lookup.forget(path);
    }
  }
}
