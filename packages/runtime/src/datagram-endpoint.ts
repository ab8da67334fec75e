import type { Socket } from 'node:dgram';
import { ProtocolError, type FrameCodec, type Packet } from '@httpgw/protocol';
import type { Logger } from './logger.js';
import { RateLimiter } from './rate-limiter.js';
import { formatHostPort, normalizeAddress } from './net-address.js';
import { bindUdpSocket } from './udp-socket.js';

export interface DatagramEndpointInit {
  address: string;
  port: number;
  codec: FrameCodec;
  socketBufferBytes: number;
  /** Datagrams per second accepted from one source (token bucket); the rest are dropped before decoding. */
  maxDatagramRate: number;
  logger: Logger;
  /**
   * Whom to hear at all: a label for the source (its rate-limit bucket and log name), or undefined to
   * drop its datagram undecoded as a stranger's. Default: every source, labelled `address:port`
   * (`[v6]:port`). Addresses given to `admit` and `onPacket` are normalized (normalizeAddress): an
   * IPv4 peer of a dual-stack socket is its IPv4 address.
   */
  admit?: (address: string, port: number) => string | undefined;
  onPacket: (packet: Packet, address: string, port: number, datagramBytes: number) => void;
}

export interface DatagramCounters {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Dropped undecoded: not from a source `admit` accepts. */
  fromStrangers: number;
  /** Dropped undecoded: their source was over its datagram rate. */
  rateLimited: number;
  /** Refused by the decoder (malformed, unauthenticated, replayed). */
  refused: number;
  sendErrors: number;
}

/** How long a repeated warning (rate limit, send errors) stays quiet after it was logged. */
const QUIET_MS = 10_000;

/**
 * One UDP socket of either command: every datagram is untrusted (strangers and floods dropped before
 * decoding, malformed ones refused and counted), socket errors are logged, and packets go out in
 * parts (a chunk's data is sent from the buffer it was read into).
 */
export class DatagramEndpoint {
  readonly counters: DatagramCounters = { datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0, fromStrangers: 0, rateLimited: 0, refused: 0, sendErrors: 0 };
  private readonly limiter: RateLimiter;
  private readonly quietUntil = { rateLimited: 0, sendErrors: 0 };
  /** A udp6 socket: peers arrive as (and IPv4 peers are sent to as) IPv4-mapped addresses. */
  private readonly ipv6: boolean;

  private constructor(
    private readonly socket: Socket,
    private readonly init: DatagramEndpointInit,
  ) {
    this.ipv6 = socket.address().family === 'IPv6';
    this.limiter = new RateLimiter({ ratePerSecond: init.maxDatagramRate });
    socket.on('message', (datagram, from) => this.receive(datagram, from.address, from.port));
    socket.on('error', (error) => init.logger.warn('udp socket error', { error: error.message }));
  }

  static async open(init: DatagramEndpointInit): Promise<DatagramEndpoint> {
    const socket = await bindUdpSocket({ address: init.address, port: init.port, bufferBytes: init.socketBufferBytes, logger: init.logger });
    return new DatagramEndpoint(socket, init);
  }

  get address(): { address: string; port: number } {
    const { address, port } = this.socket.address();
    return { address, port };
  }

  /**
   * Sends `packet` to an address of either family (an IPv4 address from a dual-stack socket goes out
   * IPv4-mapped); returns the datagram's size, or 0 when the socket is already closed. `onSent`:
   * called once the socket no longer reads the packet's buffers (sent, failed, or never sent).
   */
  send(packet: Packet, address: string, port: number, onSent?: () => void): number {
    const parts = this.init.codec.encodeParts(packet);
    let length = 0;
    for (const part of parts) length += part.length;
    this.counters.datagramsOut++;
    this.counters.bytesOut += length;
    try {
      // An address without ':' is IPv4 (only addresses, never names, are sent to).
      const to = this.ipv6 && !address.includes(':') ? `::ffff:${address}` : address;
      this.socket.send(parts, port, to, (error) => {
        if (error) this.onSendError(formatHostPort(address, port), error);
        onSent?.();
      });
    } catch {
      // Only after close(): a read or transfer winding down must not throw into its caller.
      this.counters.sendErrors++;
      onSent?.();
      return 0;
    }
    return length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private onSendError(to: string, error: Error): void {
    this.counters.sendErrors++;
    const now = performance.now();
    if (now < this.quietUntil.sendErrors) return;
    this.quietUntil.sendErrors = now + QUIET_MS;
    this.init.logger.warn('udp send failed', { to, error: error.message, total: this.counters.sendErrors });
  }

  private receive(datagram: Buffer, from: string, port: number): void {
    this.counters.datagramsIn++;
    this.counters.bytesIn += datagram.length;
    const address = this.ipv6 ? normalizeAddress(from) : from;
    const label = this.init.admit ? this.init.admit(address, port) : formatHostPort(address, port);
    if (label === undefined) {
      // Only peers we know get answers: no reflection towards anyone else.
      this.counters.fromStrangers++;
      return;
    }
    const now = performance.now();
    if (!this.limiter.allow(label, now)) {
      this.counters.rateLimited++;
      if (now >= this.quietUntil.rateLimited) {
        this.quietUntil.rateLimited = now + QUIET_MS;
        this.init.logger.warn('datagram rate limit hit: dropping', { from: label, limit: this.init.maxDatagramRate, total: this.counters.rateLimited });
      }
      return;
    }
    let packet: Packet;
    try {
      packet = this.init.codec.decode(datagram, formatHostPort(address, port));
    } catch (error) {
      this.counters.refused++;
      if (this.init.logger.isEnabled('debug')) {
        this.init.logger.debug('refused datagram', { from: label, error: error instanceof ProtocolError ? `${error.code} ${error.message}` : String(error) });
      }
      return;
    }
    this.init.onPacket(packet, address, port, datagram.length);
  }
}
