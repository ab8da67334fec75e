// A transfer ends when its client leaves or the gateway stops, even while it waits for a chunk
// that never comes: not at its stall timeout, with requests and timers still running.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { encode } from '@httpgw/protocol';
import { LOOPBACK, gatewayFor, registerRaw } from './security-support.js';
import { until } from './support/wait.js';

/** A registered file server that knows `big.bin` but never sends a chunk of it. */
async function silentHolder(gatewayPort: number) {
  const server = await registerRaw(gatewayPort);
  const { decode } = await import('@httpgw/protocol');
  server.socket.on('message', (datagram) => {
    const packet = decode(datagram);
    if (packet.type === 'meta-request') {
      server.socket.send(encode({ type: 'meta', requestId: packet.requestId, kind: 'file', size: 10_000_000, mtimeMs: 1, version: 'v1' }), gatewayPort, LOOPBACK);
    }
  });
  return server;
}

describe('ending transfers early', () => {
  it('curl giving up ends its transfer at once, not at the stall timeout', async () => {
    const gateway = await gatewayFor({ stallTimeoutMs: 60_000 });
    await silentHolder(gateway.udpAddress.port);
    const curl = spawn('curl', ['-s', '-o', '/dev/null', '--max-time', '0.5', `http://${LOOPBACK}:${gateway.httpAddress.port}/big.bin`]);
    await until(() => gateway.stats().transfers.active === 1, 5_000, 'the transfer to start');
    const code = await new Promise((resolve) => curl.on('exit', resolve));
    expect(code).toBe(28); // curl: operation timed out
    await until(() => gateway.stats().transfers.active === 0, 2_000, 'the transfer to end');
    const sent = gateway.stats().requests.sent;
    // The requests it left in flight run their course (they time out, unanswered); none is sent again.
    await until(() => gateway.stats().servers.every((server) => server.inFlight === 0), 10_000, 'the requests in flight to time out');
    expect(gateway.stats().requests.sent).toBe(sent); // nothing more asked for
    expect(gateway.stats().transfers).toMatchObject({ failed: 0, completed: 0 });
  });

  it('stop() ends waiting transfers and returns at once; a second stop() is harmless', async () => {
    const gateway = await gatewayFor({ stallTimeoutMs: 60_000 });
    await silentHolder(gateway.udpAddress.port);
    const response = fetch(`http://${LOOPBACK}:${gateway.httpAddress.port}/big.bin`).catch((error: unknown) => error);
    await until(() => gateway.stats().transfers.active === 1, 5_000, 'the transfer to start');
    const started = performance.now();
    await gateway.stop();
    await gateway.stop();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(gateway.stats().transfers.active).toBe(0);
    expect(await response).toBeInstanceOf(Error); // the connection was closed, no response
  });
});
