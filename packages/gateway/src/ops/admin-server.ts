import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@httpgw/runtime';
import type { GatewayStats } from '../gateway.js';
import type { ServerPool } from '../pool/server-pool.js';
import { createAdminApp } from './admin-app.js';
import { AdminToken, isLoopback } from './admin-auth.js';
import { DashboardFeed } from './dashboard-feed.js';
import type { GatewayMetrics } from './metrics.js';
import type { RequestActivity } from './request-activity.js';

export interface AdminInit {
  /** Default 127.0.0.1: only this machine. */
  address?: string;
  /** 0 picks a free port (logged). */
  port: number;
  /** Bearer token every API request must carry; without one the API is open. */
  token?: string;
  /** The resolved options, for GET /config (secrets redacted there). */
  config?: Record<string, unknown>;
}

export interface AdminComponents {
  pool: ServerPool;
  activity: RequestActivity;
  metrics: GatewayMetrics;
  stats(): GatewayStats;
  logger: Logger;
}

export interface AdminListener {
  readonly address: { address: string; port: number };
  /** Replaces the token (undefined opens the API): for a reload. */
  setToken(token: string | undefined): void;
  close(): Promise<void>;
}

/** Starts the admin listener: metrics, the admin API and the dashboard, on their own address and port. */
export async function startAdminListener(init: AdminInit, components: AdminComponents): Promise<AdminListener> {
  const { logger } = components;
  const token = new AdminToken(init.token);
  const feed = new DashboardFeed({ stats: components.stats, pool: components.pool, activity: components.activity, cacheStats: () => components.metrics.cacheStats() });
  const app = createAdminApp({ ...components, feed, token, config: init.config ?? {} });
  const server: Server = createServer(app.callback());
  server.requestTimeout = 30_000;
  const address = init.address ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Exclusive: each of --workers' processes has an admin port of its own (node:cluster would share one).
      server.listen({ port: init.port, host: address, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    feed.stop();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const host = address.includes(':') ? `[${address}]` : address;
  logger.info(`admin listening on http://${host}:${port}/`, { auth: token.required ? 'bearer token' : 'off' });
  if (!token.required && !isLoopback(address)) logger.warn('the admin API listens beyond loopback without a token: anyone who can reach it can drain and evict servers (see --admin-token-file)', { address });
  return {
    address: { address, port },
    setToken: (next) => token.set(next),
    async close() {
      feed.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
