import { createSocket, type Socket } from 'node:dgram';
import type { LookupOptions } from 'node:dns';
import type { Logger } from './logger.js';
import { socketTypeFor } from './net-address.js';

export interface UdpSocketInit {
  address: string;
  port: number;
  /** Requested receive and send buffer size; the kernel may grant less (net.core.rmem_max), and the log says so. */
  bufferBytes: number;
  logger: Logger;
}

/**
 * Only addresses are ever sent to (names are resolved once, at start). Node's default lookup
 * (dns.lookup) answers an address on the next tick, so every datagram would leave only after the
 * code that sent it, and all it sends next, had run: a run of chunks read in one go would go out
 * together at its end, and a first chunk would wait behind its run.
 */
function addressAsIs(address: string, family: number | LookupOptions, callback: (error: Error | null, address: string, family: number) => void): void {
  callback(null, address, typeof family === 'number' ? family : address.includes(':') ? 6 : 4);
}

/**
 * Binds a UDP socket with the buffers asked for, and logs what the kernel granted. An IPv6 address
 * gets a udp6 socket without IPV6_V6ONLY, so `::` hears IPv4 peers too (as ::ffff:a.b.c.d).
 */
export async function bindUdpSocket(init: UdpSocketInit): Promise<Socket> {
  const type = socketTypeFor(init.address);
  const socket = createSocket({ type, ipv6Only: false, recvBufferSize: init.bufferBytes, sendBufferSize: init.bufferBytes, lookup: addressAsIs });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    // Exclusive: in a cluster's worker, a socket of its own (by default node:cluster would share the
    // primary's, and an answer could reach a worker that never asked).
    socket.bind({ port: init.port, address: init.address, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  // Linux reports twice the usable size; a small grant means silent drops under load.
  const granted = socket.getRecvBufferSize();
  const short = granted < init.bufferBytes;
  (short ? init.logger.warn : init.logger.info)('udp socket buffers', {
    requested: init.bufferBytes,
    recv: granted,
    send: socket.getSendBufferSize(),
    hint: short ? 'raise net.core.rmem_max' : undefined,
  });
  return socket;
}
