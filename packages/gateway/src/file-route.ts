import { createHash } from 'node:crypto';
import { extname } from 'node:path';
import type { ServerResponse } from 'node:http';
import type { ParameterizedContext } from 'koa';
import parseRange from 'range-parser';
import type { ChunkFetcher } from './chunk-fetcher.js';
import { GatewayError } from './errors.js';
import type { FileLookup, FileVersion } from './file-lookup.js';

/** What a request leaves behind for the access log. */
export type GatewayContext = ParameterizedContext<GatewayState>;

export interface GatewayState {
  fetcher?: TransferProgress;
  error?: string;
}

/** What the access log reads of a transfer, and how a client that left ends it. */
export type TransferProgress = Pick<ChunkFetcher, 'bytesDelivered' | 'serversUsed' | 'cancel'>;

/** What the file route needs of the gateway: the lookup and the transfers (or stand-ins in tests). */
export interface FileRouteDeps {
  lookup: Pick<FileLookup, 'lookup' | 'forget'>;
  transfers: {
    fetch(file: FileVersion, firstByte: number, lastByte: number): { fetcher: TransferProgress; chunks: AsyncGenerator<Buffer, void, undefined> };
  };
}

export interface RangeHeaders {
  range?: string;
  ifRange?: string;
}

export type RangeChoice = { status: 200 | 206; start: number; end: number } | { status: 416 };

/**
 * Strong validator from the content version: equal ETags mean equal bytes. A version with
 * characters an entity tag cannot carry (it comes from a server) is replaced by its hash.
 */
export function etagOf(file: Pick<FileVersion, 'version'>): string {
  if (/^[\x21\x23-\x7e]+$/.test(file.version)) return `"${file.version}"`;
  return `"h-${createHash('sha256').update(file.version).digest('base64url').slice(0, 27)}"`;
}

/**
 * Picks the byte range to send. No Range → whole file, 200. One satisfiable range (`a-b`, `a-`,
 * `-n`; overlapping ones are combined) → 206. Several disjoint ranges → whole file, 200 (documented:
 * no multipart/byteranges; every client falls back to it). A malformed or non-bytes Range is ignored
 * (200). Unsatisfiable → 416. A Range whose If-Range no longer matches → whole file, 200.
 */
export function chooseRange(headers: RangeHeaders, file: Pick<FileVersion, 'size' | 'version' | 'mtimeMs'>): RangeChoice {
  const whole = { status: 200 as const, start: 0, end: file.size - 1 };
  if (!headers.range || !ifRangeMatches(headers.ifRange, file)) return whole;
  // RFC 9110 §14.1.2: a suffix longer than the file selects all of it; range-parser would refuse it.
  const header = headers.range.replace(/([=,])\s*-\s*(\d+)/g, (_match, separator: string, suffix: string) => `${separator}-${Math.min(Number(suffix), file.size)}`);
  const ranges = parseRange(file.size, header, { combine: true });
  if (ranges === -1) return { status: 416 };
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return whole;
  const [range] = ranges;
  return range ? { status: 206, start: range.start, end: range.end } : whole;
}

/**
 * RFC 9110 §13.1.5: an entity tag matches by strong comparison (a weak tag never does); a date
 * matches only when it is exactly the Last-Modified sent (HTTP dates have whole seconds).
 */
export function ifRangeMatches(ifRange: string | undefined, file: Pick<FileVersion, 'version' | 'mtimeMs'>): boolean {
  if (!ifRange) return true;
  if (ifRange.startsWith('"') || ifRange.startsWith('W/')) return ifRange === etagOf(file);
  const since = Date.parse(ifRange);
  return Number.isFinite(since) && Math.floor(file.mtimeMs / 1000) === Math.floor(since / 1000);
}

/** Content-Type from the file name's extension (mime-types); unknown → application/octet-stream. */
export function setContentType(ctx: GatewayContext, name: string): void {
  const extension = extname(name);
  // An empty or '.' extension would make koa take the whole value as a type name: never pass one.
  ctx.type = extension.length > 1 ? extension : '';
  if (!ctx.type) ctx.type = 'application/octet-stream';
}

/** An ASCII stand-in for a file name, for clients that ignore RFC 5987's `filename*`. */
export function asciiFallback(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]/g, '_');
}

/** Sets the headers a GET and a HEAD share; true when the client's copy is fresh (304). */
function setRepresentationHeaders(ctx: GatewayContext, file: FileVersion): boolean {
  ctx.status = 200;
  const name = file.path.slice(file.path.lastIndexOf('/') + 1);
  setContentType(ctx, name);
  ctx.set('ETag', etagOf(file));
  const modified = new Date(file.mtimeMs);
  if (!Number.isNaN(modified.getTime())) ctx.set('Last-Modified', modified.toUTCString());
  ctx.set('Accept-Ranges', 'bytes');
  // `filename*=UTF-8''…` (RFC 5987) carries any name; `filename` is plain ASCII.
  if (ctx.query.download !== undefined) ctx.attachment(name, { fallback: asciiFallback(name) });
  if (ctx.fresh) {
    ctx.status = 304;
    return true;
  }
  return false;
}

/** Serves one file version: headers, conditional and range handling, then the streamed body. */
export async function serveFile(ctx: GatewayContext, file: FileVersion, deps: FileRouteDeps): Promise<void> {
  if (setRepresentationHeaders(ctx, file)) return;
  const range = chooseRange({ range: ctx.get('Range'), ifRange: ctx.get('If-Range') }, file);
  // `Content-Range: bytes */SIZE` tells `wget -c` and `curl -C -` that a complete file is complete.
  if (range.status === 416) ctx.throw(416, 'range not satisfiable', { headers: { 'Content-Range': `bytes */${file.size}` } });
  ctx.status = range.status;
  if (range.status === 206) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`);
  const length = range.end - range.start + 1;
  if (ctx.method === 'HEAD' || length === 0) {
    ctx.length = length;
    if (length === 0) ctx.body = Buffer.alloc(0);
    return;
  }
  const { fetcher, chunks } = deps.transfers.fetch(file, range.start, range.end);
  // A client that leaves ends its transfer now, even one waiting for a chunk (not at its stall timeout).
  ctx.res.once('close', () => fetcher.cancel());
  // Wait for the first chunk before the status line goes out: a file that changed or lost all its
  // servers is still an honest error status here, not a cut connection.
  const first = await chunks.next();
  ctx.state.fetcher = fetcher;
  ctx.length = length;
  // The body goes to the socket from here, not through koa: its stream pipeline costs an
  // AbortController, a DOMException and several listeners per response, a third of a small file's cost.
  ctx.respond = false;
  void writeBody(ctx.res, first.done ? undefined : first.value, chunks);
}

/**
 * Writes the chunks with backpressure, then ends the response. A transfer that fails after the
 * status line went out can only cut the connection, so the client sees an error, never a short
 * body that looks whole (the transfer's log line says why).
 */
async function writeBody(res: ServerResponse, first: Buffer | undefined, rest: AsyncGenerator<Buffer, void, undefined>): Promise<void> {
  try {
    if (first && !res.write(first)) await drained(res);
    for await (const chunk of rest) {
      if (res.destroyed) break;
      if (!res.write(chunk)) await drained(res);
    }
    res.end();
  } catch (error) {
    res.destroy(error instanceof Error ? error : new Error(String(error)));
  }
}

/** Resolves when the socket takes more, or when the response is closed (the client left), even before. */
function drained(res: ServerResponse): Promise<void> {
  // A write to a response already closed returns false too, and its 'close' will not come again.
  if (res.destroyed || res.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
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
