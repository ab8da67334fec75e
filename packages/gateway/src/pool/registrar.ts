import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { COOKIE_BYTES, type Packet } from '@httpgw/protocol';
import { formatHostPort, type Logger } from '@httpgw/runtime';
import { serverKey, type ServerPool } from './server-pool.js';

export interface RegistrarInit {
  pool: ServerPool;
  logger: Logger;
  /** Sends a packet to an address; returns the datagram's size. */
  reply: (packet: Packet, address: string, port: number) => number;
  /** Encoded size of a packet, to keep answers to unvalidated addresses small. */
  sizeOf: (packet: Packet) => number;
  now?: () => number;
}

/** A cookie stays valid for one to two periods. */
const COOKIE_PERIOD_MS = 30_000;
/** QUIC's rule (RFC 9000 §8): before an address is validated, answer it with at most 3× what it sent. */
const AMPLIFICATION_LIMIT = 3;

/**
 * Admission of file servers. A server first says hello; the gateway answers with a cookie bound to
 * the address the hello came from (an HMAC under a per-process secret, so the gateway keeps no state
 * for strangers); only a server that echoes it from the same address is admitted. A spoofed source
 * address never sees the cookie, so it cannot register someone else's address.
 */
export class Registrar {
  private readonly cookieSecret = randomBytes(32);
  private readonly init: RegistrarInit;
  private readonly now: () => number;

  constructor(init: RegistrarInit) {
    this.init = init;
    this.now = init.now ?? Date.now;
  }

  /** Handles registration traffic; returns false for packets that are not about registration. */
  handle(packet: Packet, address: string, port: number, datagramBytes: number): boolean {
    const { pool, logger } = this.init;
    switch (packet.type) {
      case 'hello': {
        if (pool.isBanned(address, port)) return true;
        const challenge: Packet = { type: 'challenge', cookie: this.cookie(address, port, this.period()) };
        if (this.init.sizeOf(challenge) > AMPLIFICATION_LIMIT * datagramBytes) {
          logger.debug('hello too small to answer', { from: formatHostPort(address, port), bytes: datagramBytes });
          return true;
        }
        this.init.reply(challenge, address, port);
        return true;
      }
      case 'register': {
        if (pool.isBanned(address, port) || !this.validCookie(packet.cookie, address, port)) {
          logger.debug('registration with a bad cookie ignored', { from: formatHostPort(address, port) });
          return true;
        }
        if (pool.admit(address, port, packet.name)) this.init.reply({ type: 'registered', heartbeatMs: pool.heartbeatMs }, address, port);
        return true;
      }
      case 'heartbeat': {
        const server = pool.get(serverKey(address, port));
        if (server) pool.touch(server);
        // The answer is under twice the heartbeat's size: a spoofed heartbeat amplifies little.
        this.init.reply({ type: 'heartbeat-ack', known: server !== undefined }, address, port);
        return true;
      }
      case 'leave': {
        const server = pool.get(serverKey(address, port));
        if (server) pool.remove(server, 'left', 'server said goodbye');
        return true;
      }
      default:
        return false;
    }
  }

  private period(): number {
    return Math.floor(this.now() / COOKIE_PERIOD_MS);
  }

  private cookie(address: string, port: number, period: number): Buffer {
    return createHmac('sha256', this.cookieSecret).update(`${address}|${port}|${period}`).digest().subarray(0, COOKIE_BYTES);
  }

  private validCookie(cookie: Uint8Array, address: string, port: number): boolean {
    const period = this.period();
    return [period, period - 1].some((candidate) => timingSafeEqual(this.cookie(address, port, candidate), cookie));
  }
}
