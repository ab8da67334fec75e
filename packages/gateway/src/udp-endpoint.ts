import { createSocket, type Socket } from 'node:dgram';
import { ProtocolError, RateLimiter, type FrameCodec, type Logger, type Packet } from '@httpgw/protocol';

export interface UdpEndpointInit {
  address: string;
  port: number;
  codec: FrameCodec;
  /** Requested socket buffer size; the kernel may grant less (net.core.rmem_max), and the log says so. */
  socketBufferBytes: number;
  /** Datagrams per second accepted from one source (token bucket); the rest are dropped before decoding. */
  maxDatagramRate: number;
  logger: Logger;
  onPacket: (packet: Packet, address: string, port: number, datagramBytes: number) => void;
}

export interface UdpCounters {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  refused: number;
  /** Dropped undecoded: their source was over its datagram rate. */
  rateLimited: number;
  sendErrors: number;
}

/** The gateway's UDP socket: decodes every datagram as untrusted, and sends encoded packets. */
export class UdpEndpoint {
  readonly counters: UdpCounters = { datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0, refused: 0, rateLimited: 0, sendErrors: 0 };
  private readonly socket: Socket;
  private readonly init: UdpEndpointInit;
  private readonly limiter: RateLimiter;
  private quietUntil = 0;

  private constructor(socket: Socket, init: UdpEndpointInit) {
    this.socket = socket;
    this.init = init;
    this.limiter = new RateLimiter({ ratePerSecond: init.maxDatagramRate });
    socket.on('message', (datagram, from) => this.receive(datagram, from.address, from.port));
    socket.on('error', (error) => init.logger.warn('udp socket error', { error: error.message }));
  }

  static async open(init: UdpEndpointInit): Promise<UdpEndpoint> {
    const socket = createSocket({ type: 'udp4', recvBufferSize: init.socketBufferBytes, sendBufferSize: init.socketBufferBytes });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(init.port, init.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // Linux reports twice the usable size; a small grant means silent drops under load.
    const granted = socket.getRecvBufferSize();
    const log = granted < init.socketBufferBytes ? init.logger.warn : init.logger.info;
    log('udp socket buffers', { requested: init.socketBufferBytes, recv: granted, send: socket.getSendBufferSize(), hint: granted < init.socketBufferBytes ? 'raise net.core.rmem_max' : undefined });
    return new UdpEndpoint(socket, init);
  }

  get address(): { address: string; port: number } {
    const { address, port } = this.socket.address();
    return { address, port };
  }

  send(packet: Packet, address: string, port: number): number {
    const datagram = this.init.codec.encode(packet);
    this.counters.datagramsOut++;
    this.counters.bytesOut += datagram.length;
    try {
      this.socket.send(datagram, port, address, (error) => {
        if (error) this.counters.sendErrors++;
      });
    } catch {
      // Only after close(): a transfer winding down must not throw into its caller.
      this.counters.sendErrors++;
      return 0;
    }
    return datagram.length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private receive(datagram: Buffer, address: string, port: number): void {
    this.counters.datagramsIn++;
    this.counters.bytesIn += datagram.length;
    const now = performance.now();
    if (!this.limiter.allow(`${address}:${port}`, now)) {
      this.counters.rateLimited++;
      if (now >= this.quietUntil) {
        this.quietUntil = now + 10_000;
        this.init.logger.warn('datagram rate limit hit: dropping', { from: `${address}:${port}`, limit: this.init.maxDatagramRate, total: this.counters.rateLimited });
      }
      return;
    }
    let packet: Packet;
    try {
      packet = this.init.codec.decode(datagram, `${address}:${port}`);
    } catch (error) {
      this.counters.refused++;
      if (this.init.logger.isEnabled('debug')) {
        this.init.logger.debug('refused datagram', { from: `${address}:${port}`, error: error instanceof ProtocolError ? `${error.code} ${error.message}` : String(error) });
      }
      return;
    }
    this.init.onPacket(packet, address, port, datagram.length);
  }
}
