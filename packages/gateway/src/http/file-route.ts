import { createHash, randomBytes } from 'node:crypto';
import { extname } from 'node:path';
import type { ServerResponse } from 'node:http';
import type { ParameterizedContext } from 'koa';
import parseRange from 'range-parser';
import type { CacheOutcome, TransferView } from '../transfer/transfers.js';
import { freeChunk } from '../transfer/chunk-memory.js';
import { GatewayError } from '../errors.js';
import type { FileLookup, FileVersion } from '../lookup/file-lookup.js';

/** What a request leaves behind for the access log. */
export type GatewayContext = ParameterizedContext<GatewayState>;

export interface GatewayState {
  fetcher?: TransferProgress;
  error?: string;
  /** The request's id (X-Request-Id), set by the app from the access log's record. */
  requestId?: string;
  /**
   * The access log's `cache` field (RFC 9211 style: hit, miss, stale…): whoever serves a response
   * from a cache sets it; absent when no cache was involved.
   */
  cacheStatus?: string;
}

/** What the access log reads of a transfer, and what a writer waiting for the client to drain watches. */
export type TransferProgress = Pick<TransferView, 'bytesDelivered' | 'serversUsed' | 'failed' | 'cacheOutcome' | 'retransmissions'>;

/** What the file route needs of the gateway: the lookup and the transfers (or stand-ins in tests). */
export interface FileRouteDeps {
  lookup: Pick<FileLookup, 'lookup' | 'forget'>;
  transfers: {
    /** `signal`: aborted when the client leaves, which ends the transfer; `requestId` goes on the transfer's log lines. */
    fetch(file: FileVersion, firstByte: number, lastByte: number, signal: AbortSignal, requestId?: string): { fetcher: TransferProgress; chunks: AsyncGenerator<Buffer, void, undefined> };
    /** How the cache would take part in sending these bytes (a HEAD's Cache-Status); undefined without a cache. */
    cacheOutcome?(file: FileVersion, firstByte: number, lastByte: number): CacheOutcome | undefined;
  };
  /**
   * A fully cached version of `path` to serve although no server holding it answered (`answered`:
   * the servers that said they lack it); undefined when there is none or serving stale is off.
   */
  staleVersion?(path: string, answered: readonly string[]): Promise<FileVersion | undefined>;
}

/** The name this cache goes by in Cache-Status (RFC 9211). */
const CACHE_NAME = 'httpgw';

/** RFC 9211 Cache-Status for an outcome; `stale`: served stale because no server answered. */
export function cacheStatusOf(outcome: CacheOutcome, stale = false): string {
  if (stale) return `${CACHE_NAME}; fwd=stale; detail=servers-unavailable`;
  if (outcome === 'hit') return `${CACHE_NAME}; hit`;
  if (outcome === 'collapsed') return `${CACHE_NAME}; fwd=miss; stored; collapsed`;
  return `${CACHE_NAME}; fwd=${outcome}; stored`;
}

/** Cache-Status, and Age for what comes from the cache (seconds since servers last reported the version). */
function setCacheHeaders(ctx: GatewayContext, file: FileVersion, outcome: CacheOutcome | undefined, stale: boolean): void {
  if (!outcome) return;
  ctx.state.cacheStatus = cacheStatusOf(outcome, stale);
  ctx.set('Cache-Status', ctx.state.cacheStatus);
  if ((outcome === 'hit' || stale) && file.checkedAt !== undefined) ctx.set('Age', String(Math.max(0, Math.floor((Date.now() - file.checkedAt) / 1000))));
}

export interface RangeHeaders {
  range?: string;
  ifRange?: string;
}

export interface ByteRange {
  start: number;
  end: number;
}

/** One byte range (200 whole file or 206), several disjoint ones (206 multipart/byteranges, in request order), or 416. */
export type RangeChoice = { status: 200 | 206; start: number; end: number } | { status: 206; parts: ByteRange[] } | { status: 416 };

/**
 * Most parts a multipart/byteranges answer carries (after overlapping and adjacent ranges are
 * combined): each part is a transfer of its own. A Range with more gets the whole file with 200, as
 * nginx does beyond `max_ranges`; RFC 9110 §14.2 lets a server ignore a Range.
 */
export const MAX_RANGE_PARTS = 16;

/** Bytes a multipart/byteranges boundary has (hex): random, so no file's bytes are mistaken for one. */
const BOUNDARY_BYTES = 12;

/**
 * Strong validator from the content version: equal ETags mean equal bytes. A version with
 * characters an entity tag cannot carry (it comes from a server) is replaced by its hash.
 */
export function etagOf(file: Pick<FileVersion, 'version'>): string {
  if (/^[\x21\x23-\x7e]+$/.test(file.version)) return `"${file.version}"`;
  return `"h-${createHash('sha256').update(file.version).digest('base64url').slice(0, 27)}"`;
}

/**
 * Picks the byte ranges to send. No Range → whole file, 200. Overlapping and adjacent ranges are
 * combined first (so overlaps never inflate an answer); unsatisfiable ones are dropped. One range
 * left (`a-b`, `a-`, `-n`) → 206. Several disjoint ones → 206 multipart/byteranges, parts in the
 * order asked, unless there are more than MAX_RANGE_PARTS of them or the multipart body would be no
 * smaller than the file itself: then the whole file, 200 (as nginx does when the ranges add up to
 * more than the file). A malformed or non-bytes Range is ignored (200). None satisfiable → 416. A
 * Range whose If-Range no longer matches → whole file, 200.
 */
export function chooseRange(headers: RangeHeaders, file: Pick<FileVersion, 'size' | 'version' | 'mtimeMs'>, partType = 'application/octet-stream'): RangeChoice {
  const whole = { status: 200 as const, start: 0, end: file.size - 1 };
  if (!headers.range || !ifRangeMatches(headers.ifRange, file)) return whole;
  // RFC 9110 §14.1.2: a suffix longer than the file selects all of it; range-parser would refuse it.
  const header = headers.range.replace(/([=,])\s*-\s*(\d+)/g, (_match, separator: string, suffix: string) => `${separator}-${Math.min(Number(suffix), file.size)}`);
  const ranges = parseRange(file.size, header, { combine: true });
  if (ranges === -1) return { status: 416 };
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length > MAX_RANGE_PARTS) return whole;
  if (ranges.length > 1) {
    const parts = ranges.map(({ start, end }) => ({ start, end }));
    return multipartLayout(parts, file.size, partType, '0'.repeat(2 * BOUNDARY_BYTES)).length < file.size ? { status: 206, parts } : whole;
  }
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

/** The bytes of a multipart/byteranges body around its parts (RFC 9110 §14.6), and its exact length. */
function multipartLayout(parts: ByteRange[], size: number, partType: string, boundary: string): { heads: Buffer[]; tail: Buffer; length: number } {
  const heads = parts.map(({ start, end }, index) => Buffer.from(`${index === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${partType}\r\nContent-Range: bytes ${start}-${end}/${size}\r\n\r\n`, 'latin1'));
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  let length = tail.length;
  for (const [index, { start, end }] of parts.entries()) length += heads[index]!.length + end - start + 1;
  return { heads, tail, length };
}

/**
 * RFC 9110 §13.2.2 steps 1 and 2: false (412) when If-Match fails (strong comparison: a weak tag
 * never matches, `*` matches any file), or, without If-Match, when the file was modified after a
 * valid If-Unmodified-Since date (whole seconds, as Last-Modified has). An invalid date is ignored.
 */
export function preconditionsHold(headers: { ifMatch?: string; ifUnmodifiedSince?: string }, file: Pick<FileVersion, 'version' | 'mtimeMs'>): boolean {
  if (headers.ifMatch) {
    if (headers.ifMatch.trim() === '*') return true;
    const etag = etagOf(file);
    // Entity tags may hold commas: take each quoted tag, with its W/ prefix, rather than splitting.
    return [...headers.ifMatch.matchAll(/(W\/)?"[^"]*"/g)].some(([tag]) => tag === etag);
  }
  if (!headers.ifUnmodifiedSince || !Number.isFinite(file.mtimeMs)) return true;
  const since = Date.parse(headers.ifUnmodifiedSince);
  return !Number.isFinite(since) || Math.floor(file.mtimeMs / 1000) <= Math.floor(since / 1000);
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

/**
 * Sets the headers a GET and a HEAD share, then evaluates the preconditions in the order of RFC 9110
 * §13.2.2: If-Match, else If-Unmodified-Since (412, with the validators); then If-None-Match, else
 * If-Modified-Since (koa's `fresh`: 304). True when the client's copy is fresh (304). If-Range is
 * chooseRange's.
 */
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
  if (!preconditionsHold({ ifMatch: ctx.get('If-Match'), ifUnmodifiedSince: ctx.get('If-Unmodified-Since') }, file)) {
    const validators: Record<string, string> = { ETag: etagOf(file) };
    const lastModified = ctx.response.get('Last-Modified');
    if (lastModified) validators['Last-Modified'] = lastModified;
    ctx.throw(412, 'precondition failed', { headers: validators });
  }
  if (ctx.fresh) {
    ctx.status = 304;
    return true;
  }
  return false;
}

/** Serves one file version: headers, conditional and range handling, then the streamed body. `stale`: from the cache, no server answered. */
export async function serveFile(ctx: GatewayContext, file: FileVersion, deps: FileRouteDeps, stale = false): Promise<void> {
  if (setRepresentationHeaders(ctx, file)) {
    setCacheHeaders(ctx, file, deps.transfers.cacheOutcome?.(file, 0, file.size - 1), stale);
    return;
  }
  const partType = String(ctx.response.get('Content-Type'));
  const range = chooseRange({ range: ctx.get('Range'), ifRange: ctx.get('If-Range') }, file, partType);
  // `Content-Range: bytes */SIZE` tells `wget -c` and `curl -C -` that a complete file is complete.
  if (range.status === 416) ctx.throw(416, 'range not satisfiable', { headers: { 'Content-Range': `bytes */${file.size}` } });
  if ('parts' in range) return serveParts(ctx, file, range.parts, partType, deps, stale);
  ctx.status = range.status;
  if (range.status === 206) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`);
  const length = range.end - range.start + 1;
  if (ctx.method === 'HEAD' || length === 0) {
    setCacheHeaders(ctx, file, deps.transfers.cacheOutcome?.(file, range.start, range.end), stale);
    ctx.length = length;
    if (length === 0) ctx.body = Buffer.alloc(0);
    return;
  }
  const { fetcher, chunks } = deps.transfers.fetch(file, range.start, range.end, clientLeft(ctx.res), ctx.state.requestId);
  // Wait for the first chunk before the status line goes out: a file that changed or lost all its
  // servers is still an honest error status here, not a cut connection.
  const first = await chunks.next();
  ctx.state.fetcher = fetcher;
  setCacheHeaders(ctx, file, fetcher.cacheOutcome, stale);
  ctx.length = length;
  // The body goes to the socket from here, not through koa: its stream pipeline costs an
  // AbortController, a DOMException and several listeners per response, a third of a small file's cost.
  ctx.respond = false;
  void writeBody(ctx.res, first.done ? undefined : first.value, chunks, length, () => fetcher.failed);
}

/**
 * A signal aborted when the client leaves: a client that leaves ends its transfer now, even one
 * waiting for a chunk (not at its stall timeout).
 */
function clientLeft(res: ServerResponse): AbortSignal {
  const left = new AbortController();
  // A response that finished has its transfer done: aborting would only cost an event and an error object.
  res.once('close', () => {
    if (!res.writableFinished) left.abort();
  });
  return left.signal;
}

/**
 * The parts of one multipart/byteranges answer, fetched one after another, seen by the access log
 * as one transfer: the file bytes of every part, the servers of every part. Every part gets the
 * same signal: the client leaving ends the part in progress, and no other starts.
 */
class PartTransfers implements TransferProgress {
  private readonly fetchers: TransferProgress[] = [];

  constructor(
    private readonly fetchPart: (range: ByteRange, signal: AbortSignal) => ReturnType<FileRouteDeps['transfers']['fetch']>,
    private readonly signal: AbortSignal,
  ) {}

  get bytesDelivered(): number {
    return this.fetchers.reduce((sum, fetcher) => sum + fetcher.bytesDelivered, 0);
  }

  get retransmissions(): number {
    return this.fetchers.reduce((sum, fetcher) => sum + (fetcher.retransmissions ?? 0), 0);
  }

  get serversUsed(): Set<string> {
    return new Set(this.fetchers.flatMap((fetcher) => [...fetcher.serversUsed]));
  }

  /** A hit only if every part was one. */
  get cacheOutcome(): CacheOutcome | undefined {
    const outcomes = new Set(this.fetchers.map((fetcher) => fetcher.cacheOutcome));
    if (outcomes.has(undefined)) return undefined;
    return outcomes.size === 1 ? [...outcomes][0] : 'partial';
  }

  /** The part being fetched. */
  get current(): TransferProgress | undefined {
    return this.fetchers.at(-1);
  }

  /** The chunks of the next part; undefined once the client left. */
  open(range: ByteRange): AsyncGenerator<Buffer, void, undefined> | undefined {
    if (this.signal.aborted) return undefined;
    const { fetcher, chunks } = this.fetchPart(range, this.signal);
    this.fetchers.push(fetcher);
    return chunks;
  }
}

/**
 * Several disjoint ranges: 206 multipart/byteranges (RFC 9110 §14.6), each part with the file's
 * Content-Type and its Content-Range, the exact Content-Length computed beforehand. As with one
 * range, the first part's first chunk is awaited before the status line goes out.
 */
async function serveParts(ctx: GatewayContext, file: FileVersion, ranges: ByteRange[], partType: string, deps: FileRouteDeps, stale: boolean): Promise<void> {
  const boundary = randomBytes(BOUNDARY_BYTES).toString('hex');
  const { heads, tail, length } = multipartLayout(ranges, file.size, partType, boundary);
  ctx.status = 206;
  ctx.set('Content-Type', `multipart/byteranges; boundary=${boundary}`);
  if (ctx.method === 'HEAD') {
    ctx.length = length;
    return;
  }
  const transfers = new PartTransfers((range, signal) => deps.transfers.fetch(file, range.start, range.end, signal, ctx.state.requestId), clientLeft(ctx.res));
  const chunks = transfers.open(ranges[0]!)!;
  const first = await chunks.next();
  ctx.state.fetcher = transfers;
  // The first part's outcome: the others are fetched later, after the headers.
  setCacheHeaders(ctx, file, transfers.current?.cacheOutcome, stale);
  ctx.length = length;
  ctx.respond = false;
  const parts = ranges.map((range, index) => ({ ...range, head: heads[index]! }));
  void writeParts(ctx.res, parts, tail, transfers, first.done ? undefined : first.value, chunks);
}

/**
 * Writes each part's head and bytes, fetching the parts one after another, then the closing
 * boundary. A part that fails or falls short cuts the connection, as writeBody does.
 */
async function writeParts(
  res: ServerResponse,
  parts: Array<ByteRange & { head: Buffer }>,
  tail: Buffer,
  transfers: PartTransfers,
  first: Buffer | undefined,
  firstChunks: AsyncGenerator<Buffer, void, undefined>,
): Promise<void> {
  try {
    for (const [index, part] of parts.entries()) {
      const chunks = index === 0 ? firstChunks : transfers.open(part);
      // The client left: its response is closed, nothing more to fetch.
      if (!chunks || res.destroyed) break;
      if (!res.write(part.head)) await drained(res);
      await writeChunks(res, index === 0 ? first : undefined, chunks, part.end - part.start + 1, () => transfers.current?.failed);
    }
    res.end(tail);
  } catch (error) {
    res.destroy(error instanceof Error ? error : new Error(String(error)));
  }
}

/**
 * Writes the chunks with backpressure, then ends the response. A transfer that fails after the
 * status line went out can only cut the connection, so the client sees an error, never a short
 * body that looks whole (the transfer's log line says why).
 */
async function writeBody(res: ServerResponse, first: Buffer | undefined, rest: AsyncGenerator<Buffer, void, undefined>, length: number, failed?: FailedSignal): Promise<void> {
  try {
    await writeChunks(res, first, rest, length, failed);
    res.end();
  } catch (error) {
    res.destroy(error instanceof Error ? error : new Error(String(error)));
  }
}

/**
 * Writes one range's chunks with backpressure. Throws when they fail, or end short of `length`
 * bytes with the client still there (a transfer cancelled as the gateway stops): the caller cuts
 * the connection rather than end a short body cleanly.
 */
async function writeChunks(res: ServerResponse, first: Buffer | undefined, rest: AsyncGenerator<Buffer, void, undefined>, length: number, failed?: FailedSignal): Promise<void> {
  let written = 0;
  if (first) {
    written += first.length;
    if (!res.write(first, () => freeChunk(first))) await drained(res, failed);
  }
  for await (const chunk of rest) {
    if (res.destroyed) return;
    written += chunk.length;
    // Written (the kernel has it): its memory is freed now if it was a datagram's alone (chunk-memory.ts).
    if (!res.write(chunk, () => freeChunk(chunk))) await drained(res, failed);
  }
  if (written !== length && !res.destroyed) throw new Error(`the transfer ended after ${written} of ${length} bytes`);
}

/** The transfer's `failed` signal, asked for only when a write has to wait (it is made on first use). */
type FailedSignal = () => AbortSignal | undefined;

/**
 * Resolves when the socket takes more, when the response is closed (the client left), even before,
 * or when the transfer `failed` (the next chunk asked for then throws its error).
 */
function drained(res: ServerResponse, failedSignal?: FailedSignal): Promise<void> {
  // A write to a response already closed returns false too, and its 'close' will not come again.
  if (res.destroyed || res.closed) return Promise.resolve();
  const failed = failedSignal?.();
  if (failed?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      failed?.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    failed?.addEventListener('abort', done);
  });
}

/** Looks a path up and serves it; retries once when its version changed between lookup and fetch. */
export async function serveFilePath(ctx: GatewayContext, path: string, deps: FileRouteDeps): Promise<'file' | 'directory'> {
  // RFC 9111 §5.2.1.4: `no-cache` asks for validation with the origin: the servers are asked which
  // version is current (cached chunks of that version still serve).
  if (/(^|,)\s*no-cache\s*(,|$)/i.test(ctx.get('Cache-Control')) || (!ctx.get('Cache-Control') && /no-cache/i.test(ctx.get('Pragma')))) deps.lookup.forget(path);
  for (let attempt = 1; ; attempt++) {
    const found = await deps.lookup.lookup(path);
    if (found.kind === 'no-servers' || found.kind === 'none') {
      // No server holding the file answered: a fully cached copy is better than an error.
      const stale = await deps.staleVersion?.(path, found.kind === 'none' ? (found.answered ?? []) : []);
      if (stale) {
        await serveFile(ctx, stale, deps, true);
        return 'file';
      }
      throw new GatewayError(found.kind === 'none' ? 'GW_ERR_NOT_FOUND' : 'GW_ERR_NO_SERVERS');
    }
    if (found.kind === 'unreadable') throw new GatewayError('GW_ERR_UNREADABLE');
    if (found.kind === 'directory') return 'directory';
    try {
      await serveFile(ctx, found.file, deps);
      return 'file';
    } catch (error) {
      const worthAnotherLookup = error instanceof GatewayError && (error.code === 'GW_ERR_FILE_CHANGED' || error.code === 'GW_ERR_SOURCES_GONE' || error.code === 'GW_ERR_UNREADABLE');
      if (attempt >= 2 || !worthAnotherLookup) throw error;
      deps.lookup.forget(path);
    }
  }
}
