/** All scenarios, in run order. A new scenario goes in its own file and is listed here. */
import type { Scenario } from '../types.js';
import { throughput } from './throughput.js';
import { wrk } from './wrk.js';
import { cost } from './cost.js';
import { sizeScaling } from './size-scaling.js';
import { serverScaling } from './server-scaling.js';
import { sweep } from './sweep.js';
import { slowClient } from './slow-client.js';
import { loss } from './loss.js';
import { cache } from './cache.js';
import { openLoop } from './open-loop.js';
import { accessLog } from './access-log.js';
import { unequal } from './unequal.js';
import { haproxy } from './haproxy.js';
import { pools } from './pools.js';
import { workers } from './workers.js';

export const SCENARIOS: readonly Scenario[] = [throughput, wrk, cache, cost, sizeScaling, serverScaling, sweep, slowClient, loss, openLoop, accessLog, unequal, haproxy, pools, workers];
