import type { Packet } from '@httpgw/protocol';
import type { RequestTracker } from './request-tracker.js';
import type { PoolServer } from '../pool/server-pool.js';

/**
 * One small request (metadata, a listing page) to one server, sent again on loss up to `attempts`
 * times. Resolves with the answer, or undefined when the server never answered.
 */
export function ask(tracker: RequestTracker, server: PoolServer, build: (requestId: number) => Packet, attempts = 6): Promise<Packet | undefined> {
  return new Promise((resolve) => {
    let left = attempts;
    const attempt = () => {
      left--;
      tracker.send(server, build, {
        onAnswer: (answer) => resolve(answer),
        onLost: () => (left > 0 ? attempt() : resolve(undefined)),
      });
    };
    attempt();
  });
}
