import cluster, { type Worker } from 'node:cluster';
import { join } from 'node:path';
import { STOP_MESSAGES, type Logger } from '@httpgw/runtime';
import { parseAdminAddress } from './ops/admin-auth.js';
import { defaultCacheBytes } from './gateway.js';
import type { GatewayConfig } from './config/options.js';
import { defaultReadAheadBudgetBytes } from './transfer/read-ahead-budget.js';

/**
 * `--workers N`: N gateway processes share the HTTP port (node:cluster hands each accepted
 * connection to one of them), so HTTP parsing, the transfers and the MD5 checks of one busy
 * gateway use more than one core. Each worker is a whole gateway with its own UDP port (the
 * configured one + its index), cache share and admin port (+ index); file servers register with
 * every worker's UDP port (`fastfilesrv --gateway` once per worker).
 */

/**
 * Set by the primary in each worker's environment: `INDEX` (0..N-1, kept across restarts), or
 * `INDEX:UDP_PORT` for a worker started again, which takes the UDP port it had (one the OS picked
 * included): its file servers know no other.
 */
const WORKER_ENV = 'HTTPGW_CLUSTER_WORKER';
/** A worker tells the primary it is serving, and on which UDP port: a worker that exits before it ever did fails the start. */
const READY = 'httpgw:ready';

export interface WorkerIdentity {
  index: number;
  /** The UDP port it had before a restart. */
  udpPort?: number;
}

/** This process's place among the workers, or undefined when it is no worker. */
export function workerIdentity(): WorkerIdentity | undefined {
  if (!cluster.isWorker) return undefined;
  const [index, udpPort] = (process.env[WORKER_ENV] ?? '').split(':').map(Number);
  if (!Number.isInteger(index) || index! < 0) return undefined;
  return { index: index!, ...(Number.isInteger(udpPort) && udpPort! > 0 ? { udpPort: udpPort! } : {}) };
}

/** Tells the primary this worker serves, on `udpPort`. */
export function reportReady(udpPort: number): void {
  process.send?.({ type: READY, udpPort });
}

/**
 * The configuration one worker runs with: ports moved by its index, and the shared amounts (cache,
 * read-ahead budget, total transfers and connections) divided between the workers. Per-client
 * limits stay per worker.
 */
export function configForWorker(config: GatewayConfig, { index, udpPort }: WorkerIdentity): GatewayConfig {
  const count = config.workers;
  const udpBase = config['udp-port'] ?? config.port;
  const admin = config.admin === undefined ? undefined : parseAdminAddress(config.admin);
  const share = (bytes: number) => Math.max(1, Math.floor(bytes / count));
  return {
    ...config,
    'udp-port': udpPort ?? (udpBase === 0 ? 0 : udpBase + index),
    ...(admin ? { admin: `${admin.address.includes(':') ? `[${admin.address}]` : admin.address}:${admin.port === 0 ? 0 : admin.port + index}` } : {}),
    'cache-size': share(config['cache-size'] ?? defaultCacheBytes()),
    ...(config['cache-dir'] !== undefined ? { 'cache-dir': join(config['cache-dir'], `worker-${index}`), 'cache-dir-size': share(config['cache-dir-size']) } : {}),
    'read-ahead-budget': Math.max(2 * config['chunk-size'], share(config['read-ahead-budget'] ?? defaultReadAheadBudgetBytes())),
    'max-transfers': Math.ceil(config['max-transfers'] / count),
    'max-connections': Math.ceil(config['max-connections'] / count),
  };
}

/** A worker that stopped: the channel to its primary would keep it alive. */
export function leaveCluster(): void {
  if (cluster.isWorker && process.connected) process.disconnect();
}

/** Restarts of a worker that keeps failing wait longer each time, up to this. */
const MAX_RESTART_DELAY_MS = 10_000;

/**
 * The primary: starts `count` workers, starts again one that exits unasked, hands SIGHUP and SIGUSR2
 * on to every worker, and on SIGTERM/SIGINT asks them to drain (a second signal: to exit now).
 * Resolves with the exit code once every worker exited: 0 after a clean drain, else the first
 * worker's failure; 1 when a worker fails before it ever served.
 */
export function runPrimary(count: number, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    const workers = new Map<number, Worker>();
    const ready = new Set<number>();
    const restartDelayMs = new Map<number, number>();
    let stopping = false;
    let exitCode = 0;

    const udpPorts = new Map<number, number>();
    const start = (index: number) => {
      const port = udpPorts.get(index);
      const worker = cluster.fork({ [WORKER_ENV]: port === undefined ? String(index) : `${index}:${port}` });
      workers.set(index, worker);
      worker.on('message', (message: unknown) => {
        if (typeof message !== 'object' || message === null || !('type' in message) || message.type !== READY) return;
        if ('udpPort' in message && typeof message.udpPort === 'number') udpPorts.set(index, message.udpPort);
        ready.add(index);
        if (workers.size === count && ready.size === count) logger.info('all workers serving', { workers: count });
      });
      worker.on('exit', (code, signal) => onExit(index, worker, code, signal));
    };

    const onExit = (index: number, worker: Worker, code: number | null, signal: string | null) => {
      if (workers.get(index) !== worker) return;
      workers.delete(index);
      if (stopping) {
        // One stopped by the signal before it ever served (see send) did no harm.
        const stoppedStarting = signal === 'SIGTERM' && !ready.has(index);
        if (code !== 0 && !stoppedStarting && exitCode === 0) exitCode = code ?? 1;
        if (workers.size === 0) finish();
        return;
      }
      if (!ready.has(index)) {
        // It never served: a bad port or option, which a restart would only repeat.
        logger.error('a worker failed to start: stopping', { worker: index, code: code ?? undefined, signal: signal ?? undefined });
        exitCode = 1;
        stop('SIGTERM');
        return;
      }
      const delayMs = restartDelayMs.get(index) ?? 100;
      restartDelayMs.set(index, Math.min(2 * delayMs, MAX_RESTART_DELAY_MS));
      logger.error('a worker exited: starting it again', { worker: index, code: code ?? undefined, signal: signal ?? undefined, inMs: delayMs });
      ready.delete(index);
      setTimeout(() => {
        if (!stopping) start(index);
      }, delayMs);
    };

    // A worker still starting has no handler for the message yet: the signal itself stops it.
    const send = (message: string) => {
      for (const [index, worker] of workers) {
        if (ready.has(index) && worker.isConnected()) worker.send(message);
        else worker.process.kill('SIGTERM');
      }
    };
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn('second signal: workers exit now', { signal });
        send(STOP_MESSAGES.stopNow);
        return;
      }
      stopping = true;
      logger.info('stopping workers', { signal, workers: workers.size });
      send(STOP_MESSAGES.stop);
      if (workers.size === 0) finish();
    };
    const handOn = (signal: NodeJS.Signals) => () => {
      for (const worker of workers.values()) worker.process.kill(signal);
    };
    const onHup = handOn('SIGHUP');
    const onUsr2 = handOn('SIGUSR2');
    const finish = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', onHup);
      process.off('SIGUSR2', onUsr2);
      logger.info('stopped', { exitCode });
      resolve(exitCode);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', onHup);
    process.on('SIGUSR2', onUsr2);
    logger.info('starting workers', { workers: count });
    for (let index = 0; index < count; index++) start(index);
  });
}
