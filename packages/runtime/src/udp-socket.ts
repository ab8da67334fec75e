import { createSocket, type Socket } from 'node:dgram';
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
 * Binds a UDP socket with the buffers asked for, and logs what the kernel granted. An IPv6 address
 * gets a udp6 socket without IPV6_V6ONLY, so `::` hears IPv4 peers too (as ::ffff:a.b.c.d).
 */
export async function bindUdpSocket(init: UdpSocketInit): Promise<Socket> {
  const type = socketTypeFor(init.address);
  const socket = createSocket({ type, ipv6Only: false, recvBufferSize: init.bufferBytes, sendBufferSize: init.bufferBytes });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(init.port, init.address, () => {
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
