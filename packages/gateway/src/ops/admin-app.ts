import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '@httpgw/runtime';
import type { ServerPool } from '../pool/server-pool.js';
import type { AdminToken } from './admin-auth.js';
import { serverView, transferView, type DashboardFeed } from './dashboard-feed.js';
import type { GatewayMetrics } from './metrics.js';
import { isStatusFilter, type RecentQuery, type RequestActivity } from './request-activity.js';

export interface AdminAppDeps {
  pool: ServerPool;
  activity: RequestActivity;
  metrics: GatewayMetrics;
  feed: DashboardFeed;
  token: AdminToken;
  /** The resolved options, shown by GET /config with secrets redacted. */
  config: Record<string, unknown>;
  logger: Logger;
}

/** The dashboard's files: the page, its script and style, and uPlot from its npm package (no CDN, no build). */
function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const dashboard = new URL('../../dashboard/', import.meta.url);
  const uplot = createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js');
  const read = (path: string | URL) => readFileSync(path);
  return new Map([
    ['/', { type: 'text/html; charset=utf-8', body: read(new URL('index.html', dashboard)) }],
    ['/dashboard.js', { type: 'text/javascript; charset=utf-8', body: read(new URL('dashboard.js', dashboard)) }],
    ['/dashboard.css', { type: 'text/css; charset=utf-8', body: read(new URL('dashboard.css', dashboard)) }],
    ['/vendor/uPlot.iife.min.js', { type: 'text/javascript; charset=utf-8', body: read(uplot) }],
    ['/vendor/uPlot.min.css', { type: 'text/css; charset=utf-8', body: read(uplot.replace(/uPlot\.iife\.min\.js$/, 'uPlot.min.css')) }],
  ]);
}

/** Keys whose values GET /config never shows. */
const SECRET_KEY = /secret|token|password|passphrase|credential/i;

export function redact(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (SECRET_KEY.test(key) && value !== undefined) out[key] = '[redacted]';
    else if (value !== null && typeof value === 'object' && !Array.isArray(value)) out[key] = redact(value as Record<string, unknown>);
    else out[key] = value;
  }
  return out;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The admin listener's app: the dashboard's static files (public: they hold no data), then the
 * bearer token check, then the JSON API and /metrics. Errors are JSON `{ status, error }`.
 */
export function createAdminApp(deps: AdminAppDeps): Koa {
  const app = new Koa();
  const router = new Router();
  const assets = loadAssets();

  app.on('error', (error: unknown) => deps.logger.debug('admin response failed', { error: error instanceof Error ? error.message : String(error) }));
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new HttpError(404, 'no such route');
    } catch (error) {
      const status = error instanceof HttpError ? error.status : error instanceof Error && 'status' in error && typeof error.status === 'number' ? error.status : 500;
      if (status >= 500) deps.logger.error('admin request failed', { path: ctx.path, error: error instanceof Error ? error.message : String(error) });
      ctx.status = status;
      ctx.body = { status, error: status >= 500 ? 'internal error' : error instanceof Error ? error.message : 'error' };
      if (status === 401) ctx.set('WWW-Authenticate', 'Bearer realm="httpgw-admin"');
    }
  });
  app.use(async (ctx, next) => {
    const asset = ctx.method === 'GET' || ctx.method === 'HEAD' ? assets.get(ctx.path) : undefined;
    if (asset) {
      ctx.type = asset.type;
      ctx.set('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:");
      ctx.body = asset.body;
      return;
    }
    // Lets the page ask for the token before its first call, instead of drawing a 401 (and a console error).
    if (ctx.method === 'GET' && ctx.path === '/dashboard/auth') {
      ctx.body = { tokenRequired: deps.token.required };
      return;
    }
    if (!deps.token.accepts(ctx.get('Authorization') || undefined)) throw new HttpError(401, 'unauthorized');
    await next();
  });

  router.get('/metrics', async (ctx) => {
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
  router.get('/servers', (ctx) => {
    ctx.body = { servers: deps.pool.list().map(serverView) };
  });
  router.post('/servers/:id/drain', (ctx) => {
    const server = findServer(deps.pool, ctx.params.id!);
    deps.pool.drain(server);
    deps.logger.info('server drained through the admin API', { server: server.key });
    ctx.body = { server: serverView(server) };
  });
  router.delete('/servers/:id', (ctx) => {
    const server = findServer(deps.pool, ctx.params.id!);
    deps.pool.remove(server, 'evicted', 'evicted through the admin API');
    ctx.body = { evicted: server.key };
  });
  router.get('/transfers', (ctx) => {
    ctx.body = { transfers: deps.activity.list().map(transferView) };
  });
  router.get('/transfers/recent', (ctx) => {
    ctx.body = { transfers: deps.activity.recent(recentQuery(ctx.query, deps.activity.capacity)) };
  });
  router.get('/config', (ctx) => {
    ctx.body = { config: redact(deps.config) };
  });
  router.get('/dashboard/data', (ctx) => {
    ctx.body = deps.feed.snapshot();
  });

  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}

/** A server by its id (address:port) or, failing that, by the one name it registered with. */
function findServer(pool: ServerPool, id: string) {
  const byKey = pool.get(id);
  if (byKey) return byKey;
  const named = pool.list().filter((server) => server.name === id);
  if (named.length === 1) return named[0]!;
  throw new HttpError(404, named.length > 1 ? `several servers are named "${id}": use address:port` : `no server "${id}"`);
}

function recentQuery(query: Record<string, string | string[] | undefined>, capacity: number): RecentQuery {
  const one = (name: string) => {
    const value = query[name];
    if (Array.isArray(value)) throw new HttpError(400, `give ${name} once`);
    return value === '' ? undefined : value;
  };
  const out: RecentQuery = {};
  const status = one('status');
  if (status !== undefined) {
    if (!isStatusFilter(status)) throw new HttpError(400, 'status must be a code (404) or a class (5xx)');
    out.status = status;
  }
  const path = one('path');
  if (path !== undefined) out.path = path;
  const since = one('since');
  if (since !== undefined) {
    const ms = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
    if (!Number.isFinite(ms)) throw new HttpError(400, 'since must be epoch milliseconds or an ISO 8601 date');
    out.since = ms;
  }
  const limit = one('limit');
  if (limit !== undefined) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > capacity) throw new HttpError(400, `limit must be an integer in 1..${capacity}`);
    out.limit = n;
  }
  return out;
}
