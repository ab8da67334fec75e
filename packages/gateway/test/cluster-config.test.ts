import { loadConfig } from '@httpgw/runtime';
import { describe, expect, it } from 'vitest';
import { configForWorker } from '../src/cluster.js';
import { GATEWAY_COMMAND } from '../src/config/options.js';

async function config(flags: Record<string, unknown>) {
  return (await loadConfig(GATEWAY_COMMAND, flags, {})).config;
}

describe('configForWorker', () => {
  it('moves the UDP and admin ports by the worker index and shares out the cache, budgets and totals', async () => {
    const base = await config({ workers: 4, port: 8080, admin: '127.0.0.1:9090', 'cache-size': '1GiB', 'cache-dir': '/var/cache/httpgw', 'cache-dir-size': '8GiB', 'read-ahead-budget': 256 * 1024 * 1024, 'max-transfers': 10, 'max-connections': 1001 });
    const third = configForWorker(base, { index: 2 });
    expect(third['udp-port']).toBe(8082); // UDP defaults to the HTTP port's number
    expect(third.port).toBe(8080); // HTTP is shared
    expect(third.admin).toBe('127.0.0.1:9092');
    expect(third['cache-size']).toBe(256 * 1024 * 1024);
    expect(third['cache-dir']).toBe('/var/cache/httpgw/worker-2');
    expect(third['cache-dir-size']).toBe(2 * 1024 ** 3);
    expect(third['read-ahead-budget']).toBe(64 * 1024 * 1024);
    expect(third['max-transfers']).toBe(3);
    expect(third['max-connections']).toBe(251);
    expect(third['max-transfers-per-client']).toBe(base['max-transfers-per-client']); // per worker
  });

  it('keeps port 0 for the OS to pick, and a restarted worker takes the UDP port it had', async () => {
    const base = await config({ workers: 2, port: 0, 'udp-port': 0, admin: '[::1]:0' });
    expect(configForWorker(base, { index: 1 })['udp-port']).toBe(0);
    expect(configForWorker(base, { index: 1 }).admin).toBe('[::1]:0');
    expect(configForWorker(base, { index: 1, udpPort: 40123 })['udp-port']).toBe(40123);
  });
});
