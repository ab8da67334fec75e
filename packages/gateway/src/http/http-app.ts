import Router from '@koa/router';
import Koa from 'koa';
import { ProtocolError, normalizePath } from '@httpgw/protocol';
import { normalizeAddress, type Logger } from '@httpgw/runtime';
import { GatewayError, type GatewayErrorCode } from '../errors.js';
import { serveFilePath, type FileRouteDeps, type GatewayContext, type GatewayState } from './file-route.js';
import { recordOf } from './access-log.js';

export interface HttpAppDeps extends FileRouteDeps {
  logger: Logger;
  /** Renders a directory listing; without it, directories are 404. */
  serveListing?: (ctx: GatewayContext, path: string) => Promise<void>;
  /** Longest request target accepted (414 beyond); read on each request (SIGHUP may change it). */
  maxUrlBytes?: number | (() => number);
  /** For `/readyz`: whether load balancers should send requests here, and why not. */
  readiness?: () => { ready: boolean; reason?: string };
  /** Runs first for every request: the operators' view of requests (ops/request-activity.ts). */
  observe?: Koa.Middleware<GatewayState>;
}

/**
 * Paths answered by the gateway itself, before any file route: a file at the root named like one of
 * them cannot be fetched through the gateway (documented in docs/OPERATING.md).
 */
export const PROBE_PATHS = new Set(['/healthz', '/readyz']);

export const STATUS_OF: Record<GatewayErrorCode, number> = {
  GW_ERR_NO_SERVERS: 503,
  GW_ERR_NOT_FOUND: 404,
  GW_ERR_BAD_PATH: 400,
  GW_ERR_STALLED: 504,
  GW_ERR_SOURCES_GONE: 502,
  GW_ERR_FILE_CHANGED: 503,
  // As nginx answers for a file it may not open.
  GW_ERR_UNREADABLE: 403,
};

/** Decodes and checks the URL path: '' is the root, a trailing '/' marks a directory. */
export function requestPath(rawPath: string): { path: string; isDirectory: boolean } {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw new GatewayError('GW_ERR_BAD_PATH', 'malformed percent-encoding in the path');
  }
  try {
    return { path: normalizePath(decoded), isDirectory: decoded.endsWith('/') };
  } catch (error) {
    if (error instanceof ProtocolError && error.code === 'PROTO_ERR_HIDDEN_PATH') throw new GatewayError('GW_ERR_NOT_FOUND');
    throw new GatewayError('GW_ERR_BAD_PATH', error instanceof Error ? error.message : 'malformed path');
  }
}

/** Error codes of a body that could not be written because the client closed its connection. */
const CLIENT_GONE = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

/** Methods served; everything else is 405 with this list in `Allow`. */
const ALLOWED_METHODS = 'GET, HEAD';

/** True when the client asked for JSON (`?format=json`, or `Accept` preferring it to text and HTML). */
export function prefersJson(ctx: GatewayContext): boolean {
  if (ctx.query.format === 'json') return true;
  if (ctx.query.format !== undefined) return false;
  return ctx.accepts('text/html', 'text/plain', 'application/json') === 'application/json';
}

/** The URL path of a canonical path: each segment percent-encoded, '/' first. */
export function encodePath(path: string): string {
  return path === '' ? '/' : `/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** The gateway's HTTP side: GET and HEAD of files and directories; everything else is 405. */
export function createHttpApp(deps: HttpAppDeps): Koa<GatewayState> {
  const app = new Koa<GatewayState>();
  const router = new Router<GatewayState>();
  const maxUrlBytes = typeof deps.maxUrlBytes === 'function' ? deps.maxUrlBytes : () => (deps.maxUrlBytes as number | undefined) ?? 8_192;

  // Errors after the status line went out (a client that hung up, a transfer that failed mid-body):
  // the response is already cut; log them here rather than letting koa print to stderr.
  app.on('error', (error: unknown, ctx?: GatewayContext) => {
    const code = error instanceof Error && 'code' in error ? String(error.code) : undefined;
    const fields = { reqId: ctx?.state.requestId, path: ctx?.path, error: error instanceof Error ? error.message : String(error), code };
    if (code !== undefined && CLIENT_GONE.has(code)) deps.logger.debug('client went away mid-response', fields);
    else deps.logger.warn('response cut short', fields);
  });
  app.use(async (ctx, next) => {
    // The access log (withAccessLog, around the whole handler) reads the outcome from the state;
    // lines this request logs carry its id.
    const record = recordOf(ctx.req);
    if (record) {
      record.state = ctx.state;
      ctx.state.requestId = record.id;
    }
    await next();
  });
  if (deps.observe) app.use(deps.observe);
  app.use(errorBodies(deps.logger));
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    if (Buffer.byteLength(ctx.url) > maxUrlBytes()) ctx.throw(414, 'request URL too long');
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') ctx.throw(405, `${ctx.method} is not allowed: use GET or HEAD`);
    await next();
  });

  const serveDirectory = async (ctx: GatewayContext, path: string) => {
    if (!deps.serveListing) throw new GatewayError('GW_ERR_NOT_FOUND', 'directory listings are not available');
    await deps.serveListing(ctx, path);
  };
  // Probes for load balancers and orchestrators, ahead of the file routes so no file shadows them.
  router.get('/healthz', (ctx) => {
    ctx.type = 'text/plain';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = 'ok\n';
  });
  router.get('/readyz', (ctx) => {
    const { ready, reason } = deps.readiness?.() ?? { ready: true };
    ctx.type = 'text/plain';
    ctx.set('Cache-Control', 'no-store');
    ctx.status = ready ? 200 : 503;
    ctx.body = ready ? 'ready\n' : `not ready: ${reason ?? 'unknown'}\n`;
  });
  // A path ending in '/' names a directory: its listing.
  router.get(/\/$/, async (ctx) => serveDirectory(ctx, requestPath(ctx.path).path));
  // Any other path: the file, or, when it turns out to be a directory, a redirect to its listing.
  router.get(/[^/]$/, async (ctx) => {
    const { path, isDirectory } = requestPath(ctx.path);
    // A name that decodes to nothing ('%2e' segments dropped, say) or to a directory path is listed.
    if (isDirectory || path === '') return serveDirectory(ctx, path);
    if ((await serveFilePath(ctx, path, deps)) === 'file') return;
    // Built from the checked path, never from the raw one: `//host` must not become an open redirect.
    const location = `${encodePath(path)}/${ctx.search}`;
    ctx.status = 301;
    ctx.set('Location', location);
    ctx.type = 'text/plain';
    ctx.body = `301 moved to ${location}\n`;
  });

  app.use(router.routes());
  app.use(() => {
    throw new GatewayError('GW_ERR_BAD_PATH', 'the request target is not a path');
  });
  return app;
}

/**
 * Turns failures into a short plain-text body (JSON when asked) with the right status; never a stack
 * trace. Headers set for the response that failed (ETag, Content-Disposition…) are dropped; the
 * error's own (`Content-Range` of a 416) are kept.
 */
function errorBodies(logger: Logger): Koa.Middleware<GatewayState> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (ctx.headerSent) throw error;
      const { status, message } = describe(error);
      if (status >= 500 && !(error instanceof GatewayError)) logger.error('request failed', { reqId: ctx.state.requestId, path: ctx.path, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      const code = error instanceof GatewayError ? error.code : undefined;
      for (const name of ctx.res.getHeaderNames()) ctx.res.removeHeader(name);
      if (ctx.state.requestId) ctx.set('X-Request-Id', ctx.state.requestId);
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Vary', 'Accept');
      ctx.set(errorHeaders(error));
      if (status === 405) ctx.set('Allow', ALLOWED_METHODS);
      ctx.status = status;
      if (prefersJson(ctx)) ctx.body = { status, ...(code ? { code } : {}), message };
      else {
        ctx.type = 'text/plain';
        ctx.body = `${status} ${message}\n`;
      }
      ctx.state.error = code ?? message;
    }
  };
}

/** Headers an http-errors error carries (`ctx.throw(416, …, { headers })`), as koa's own handler keeps them. */
function errorHeaders(error: unknown): Record<string, string> {
  if (!(error instanceof Error) || !('headers' in error) || typeof error.headers !== 'object' || error.headers === null) return {};
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(error.headers)) if (typeof value === 'string') headers[name] = value;
  return headers;
}

function describe(error: unknown): { status: number; message: string } {
  if (error instanceof GatewayError) return { status: STATUS_OF[error.code], message: error.message };
  if (error instanceof Error && 'status' in error && typeof error.status === 'number' && 'expose' in error && error.expose) {
    return { status: error.status, message: error.message };
  }
  return { status: 500, message: 'internal error' };
}
