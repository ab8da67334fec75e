/**
 * Goodput vs packet loss — placeholder.
 *
 * Plan: put test/support/udp-relay.ts (the fault-injecting relay used by the tests) between the
 * file servers and the gateway's UDP port, sweep loss 0/0.1/1/5 %, and record MB/s of a 64 MiB
 * download. Add the implementation here; the driver already lists this scenario.
 */
import type { Scenario } from '../types.js';
import { SkipScenario } from './common.js';

export const loss: Scenario = {
  name: 'loss',
  title: 'Goodput vs packet loss',
  run(): Promise<void> {
    return Promise.reject(new SkipScenario('not implemented yet (placeholder)'));
  },
};
