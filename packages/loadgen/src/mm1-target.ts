/**
 * A server whose answer is known: one worker, first come first served, exponentially distributed
 * service times of rate mu. With Poisson arrivals it is an M/M/1 queue, whose response time is
 * exponential with rate mu - lambda.
 *
 * The queue runs in virtual time: request n arrives at A(n) (when its headers were read), starts at
 * max(A(n), D(n-1)) and departs at D(n) = start + S(n). The answer is sent at D(n) by a precise
 * timer. A late timer therefore delays one answer a little but never pushes the queue back, so the
 * server itself stays an exact M/M/1 queue however busy the machine is.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { nowMs, sleepUntil } from './precise-timer.js';
import { exponential, uniformSource } from './random.js';

/** Response header: "SEQUENCE SERVICE_US", the order the worker served it in and its service time. */
export const MM1_HEADER = 'x-mm1';

export interface Mm1TargetInit {
  mu: number;
  host: string;
  port: number;
  seed?: number;
}

export interface Mm1Target {
  readonly url: string;
  close(): Promise<void>;
}

export async function startMm1Target(init: Mm1TargetInit): Promise<Mm1Target> {
  if (!(init.mu > 0)) throw new RangeError('mu must be positive');
  const uniform = uniformSource(init.seed);
  let lastDeparture = 0;
  let sequence = 0;
  const server = http.createServer((req, res) => {
    const arrival = nowMs();
    const serviceMs = exponential(uniform, init.mu) * 1000;
    const departure = Math.max(arrival, lastDeparture) + serviceMs;
    lastDeparture = departure;
    const seq = sequence++;
    req.resume();
    void sleepUntil(departure).then(() => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3', [MM1_HEADER]: `${seq} ${Math.round(serviceMs * 1000)}` });
      res.end('ok\n');
    });
  });
  // Clients keep connections open between requests; no idle cut-off in the middle of a run.
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(init.port, init.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
