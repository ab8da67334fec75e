import Router from '@koa/router';
import Koa from 'koa';
import { ProtocolError, normalizePath, type Logger } from '@httpgw/protocol';
import { GatewayError, type GatewayErrorCode } from './errors.js';
import { serveFilePath, type FileRouteDeps, type GatewayContext, type GatewayState } from './file-route.js';

export interface HttpAppDeps extends FileRouteDeps {
  logger: Logger;
  /** Renders a directory listing; without it, directories are 404. */
  serveListing?: (ctx: GatewayContext, path: string) => Promise<void>;
  /** Longest request target accepted (414 beyond). */
  maxUrlBytes?: number;
}

const STATUS_OF: Record<GatewayErrorCode, number> = {
  GW_ERR_NO_SERVERS: 503,
  GW_ERR_NOT_FOUND: 404,
  GW_ERR_BAD_PATH: 400,
  GW_ERR_STALLED: 504,
  GW_ERR_SOURCES_GONE: 502,
  GW_ERR_FILE_CHANGED: 503,
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

/** The gateway's HTTP side: GET and HEAD of files and directories; everything else is 405. */
export function createHttpApp(deps: HttpAppDeps): Koa<GatewayState> {
  const app = new Koa<GatewayState>();
  const router = new Router<GatewayState>();
  const maxUrlBytes = deps.maxUrlBytes ?? 8_192;

  app.use(accessLog(deps.logger));
  app.use(errorBodies(deps.logger));
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    if (Buffer.byteLength(ctx.url) > maxUrlBytes) ctx.throw(414, 'request URL too long');
    await next();
  });

  router.get(/^\/.*/, async (ctx) => {
    const { path, isDirectory } = requestPath(ctx.path);
    if (!isDirectory && path !== '' && (await serveFilePath(ctx, path, deps)) === 'file') return;
    if (!isDirectory && path !== '') {
      ctx.redirect(`${ctx.path}/${ctx.search}`);
      ctx.status = 301;
      return;
    }
    if (!deps.serveListing) throw new GatewayError('GW_ERR_NOT_FOUND', 'directory listings are not available');
    await deps.serveListing(ctx, path);
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** Turns failures into a short plain-text body with the right status; never a stack trace. */
function errorBodies(logger: Logger): Koa.Middleware<GatewayState> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (ctx.headerSent) throw error;
      const { status, message } = describe(error);
      if (status >= 500 && !(error instanceof GatewayError)) logger.error('request failed', { path: ctx.path, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      ctx.status = status;
      ctx.type = 'text/plain';
      ctx.body = `${status} ${message}\n`;
      ctx.state.error = error instanceof GatewayError ? error.code : message;
      if (status === 405 || status === 501) ctx.set('Allow', 'GET, HEAD');
    }
  };
}

function describe(error: unknown): { status: number; message: string } {
  if (error instanceof GatewayError) return { status: STATUS_OF[error.code], message: error.message };
  if (error instanceof Error && 'status' in error && typeof error.status === 'number' && 'expose' in error && error.expose) {
    return { status: error.status, message: error.message };
  }
  return { status: 500, message: 'internal error' };
}

/** One log line per request once the response is over: status, bytes, duration, servers used. */
function accessLog(logger: Logger): Koa.Middleware<GatewayState> {
  return async (ctx, next) => {
    const started = performance.now();
    ctx.res.once('close', () => {
      const complete = ctx.res.writableFinished;
      const level = ctx.status >= 500 || !complete ? 'warn' : 'info';
      logger[level](`${ctx.method} ${ctx.url}`, {
        status: ctx.status,
        bytes: ctx.state.fetcher ? ctx.state.fetcher.bytesDelivered : ctx.method === 'HEAD' ? 0 : (ctx.response.length ?? 0),
        ms: Math.round(performance.now() - started),
        servers: ctx.state.fetcher ? [...ctx.state.fetcher.serversUsed].join(',') : undefined,
        client: ctx.ip,
        error: ctx.state.error,
        outcome: complete ? undefined : 'aborted',
      });
    });
    await next();
  };
}
