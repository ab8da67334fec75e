import { describe, expect, it } from 'vitest';
import { BINS, run } from './support/processes.js';

// The network flags of both commands: the datagram size limit and the address forms.

describe('network flags', () => {
  it('both commands document --max-datagram-size and IPv6 addresses in --help', async () => {
    for (const bin of [BINS.httpgw, BINS.fastfilesrv]) {
      const help = await run(process.execPath, [bin, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('--max-datagram-size');
      expect(help.stdout).toMatch(/::/);
    }
  });

  it('httpgw refuses a datagram size limit out of range, or one its chunks do not fit', async () => {
    const tooSmall = await run(process.execPath, [BINS.httpgw, '--max-datagram-size', '100']);
    expect(tooSmall.code).toBe(2);
    expect(tooSmall.stderr).toMatch(/^httpgw: --max-datagram-size must be an integer in 576\.\.65507/);
    const chunkTooBig = await run(process.execPath, [BINS.httpgw, '--max-datagram-size', '1452']);
    expect(chunkTooBig.code).toBe(2);
    expect(chunkTooBig.stderr).toMatch(/^httpgw: --max-datagram-size must hold a chunk: at least 61612 for --chunk-size 61440/);
  });

  it('fastfilesrv reads [IPv6]:PORT and refuses an unbracketed IPv6 address with a hint', async () => {
    const unbracketed = await run(process.execPath, [BINS.fastfilesrv, '--gateway', '::1:8080']);
    expect(unbracketed.code).toBe(2);
    expect(unbracketed.stderr).toMatch(/^fastfilesrv: "::1:8080" is not HOST:PORT \(write an IPv6 address in brackets: \[::1\]:8080\)/);
    const badSize = await run(process.execPath, [BINS.fastfilesrv, '--gateway', '[::1]:8080', '--max-datagram-size', '70000']);
    expect(badSize.code).toBe(2);
    expect(badSize.stderr).toMatch(/^fastfilesrv: --max-datagram-size must be/);
    // An IPv6 gateway cannot be reached from an IPv4 socket: said at once, not as silent send errors.
    const mismatch = await run(process.execPath, [BINS.fastfilesrv, '--gateway', '[::1]:8080', '--bind', '127.0.0.1']);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/gateway \[::1\]:8080 is IPv6 but the local address 127\.0\.0\.1 is IPv4/);
    const reverse = await run(process.execPath, [BINS.fastfilesrv, '127.0.0.1', '8080', '--bind', '::1']);
    expect(reverse.code).toBe(1);
    expect(reverse.stderr).toMatch(/gateway 127\.0\.0\.1:8080 is IPv4 but the local address ::1 is IPv6: bind to :: \(both families\)/);
  });
});
