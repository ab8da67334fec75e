import type { Packet } from '@httpgw/protocol';
import type { RequestTracker } from './request-tracker.js';
import type { PoolServer } from '../pool/server-pool.js';

/**
 * One small request (metadata, a listing page) to one server, sent again on loss up to `attempts`
 * times. Resolves with the answer, or undefined when the server never answered. Aborting `signal`
 * resolves undefined at once and sends nothing more (the request in flight runs its course in the
 * tracker, unheard).
 */
export function ask(tracker: RequestTracker, server: PoolServer, build: (requestId: number) => Packet, attempts = 6, signal?: AbortSignal): Promise<Packet | undefined> {
  if (signal?.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    let left = attempts;
    const settle = (answer: Packet | undefined) => {
      signal?.removeEventListener('abort', stop);
      resolve(answer);
    };
    const stop = () => settle(undefined);
    const attempt = () => {
      left--;
      tracker.send(server, build, {
        onAnswer: (answer) => settle(answer),
        onLost: () => (left > 0 && !signal?.aborted ? attempt() : settle(undefined)),
      });
    };
    signal?.addEventListener('abort', stop);
    attempt();
  });
}
