import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '@httpgw/runtime';
import type { FileServerStats } from './file-server.js';

export interface MetricsListenerInit {
  /** Default 127.0.0.1: only this machine. */
  address?: string;
  /** 0 picks a free port (logged). */
  port: number;
}

export interface MetricsListener {
  readonly address: { address: string; port: number };
  readonly registry: Registry;
  close(): Promise<void>;
}

/**
 * The file server's Prometheus metrics (`fastfilesrv_` prefix), read at scrape time from the counters
 * the server keeps: nothing is added to the chunk path. Its own registry, as the gateway's.
 */
export function createFileServerRegistry(stats: () => FileServerStats): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'fastfilesrv_' });
  let snapshot: { at: number; stats: FileServerStats } | undefined;
  const read = () => {
    const now = performance.now();
    if (!snapshot || now - snapshot.at > 50) snapshot = { at: now, stats: stats() };
    return snapshot.stats;
  };
  const counter = (name: string, help: string, labelNames: string[], values: () => Array<[Record<string, string>, number]>) =>
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const [labels, value] of values()) this.inc(labels, value);
      },
    });
  counter('fastfilesrv_chunks_served_total', 'Chunks sent to gateways', [], () => [[{}, read().chunksSent]]);
  counter('fastfilesrv_chunk_sent_bytes_total', 'Bytes of the datagrams that carried chunks', [], () => [[{}, read().bytesSent]]);
  counter('fastfilesrv_errors_total', 'Error answers sent to gateways, by code', ['code'], () => Object.entries(read().errors).map(([code, count]) => [{ code }, count]));
  counter('fastfilesrv_digest_computations_total', 'Chunk MD5s computed (each file version once per chunk size)', [], () => [[{}, read().digestsComputed]]);
  counter('fastfilesrv_udp_datagrams_total', 'UDP datagrams received and sent', ['direction'], () => {
    const s = read();
    return [[{ direction: 'in' }, s.datagramsIn], [{ direction: 'out' }, s.datagramsOut]];
  });
  counter('fastfilesrv_udp_sent_bytes_total', 'UDP bytes sent', [], () => [[{}, read().bytesOut]]);
  counter('fastfilesrv_udp_datagrams_dropped_total', 'UDP datagrams dropped, by reason', ['reason'], () => {
    const s = read();
    return [[{ reason: 'stranger' }, s.fromStrangers], [{ reason: 'rate_limited' }, s.rateLimited], [{ reason: 'refused' }, s.refused], [{ reason: 'send_error' }, s.sendErrors]];
  });
  new Gauge({
    name: 'fastfilesrv_gateways',
    help: 'Gateways configured, and those this server is registered with now',
    labelNames: ['state'],
    registers,
    collect() {
      const s = read();
      this.set({ state: 'registered' }, s.gatewaysRegistered);
      this.set({ state: 'configured' }, s.gatewaysConfigured);
    },
  });
  return registry;
}

/** Serves GET /metrics on its own small HTTP listener (no auth: keep it on loopback or a private network). */
export async function startMetricsListener(init: MetricsListenerInit, stats: () => FileServerStats, logger: Logger): Promise<MetricsListener> {
  const registry = createFileServerRegistry(stats);
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 only /metrics here\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('405 use GET\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'Content-Type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
      (error: unknown) => {
        logger.error('metrics failed', { error: error instanceof Error ? error.message : String(error) });
        response.writeHead(500, { 'Content-Type': 'text/plain' }).end('500 internal error\n');
      },
    );
  });
  server.requestTimeout = 10_000;
  const address = init.address ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(init.port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info(`metrics on http://${address.includes(':') ? `[${address}]` : address}:${port}/metrics`);
  return {
    address: { address, port },
    registry,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
