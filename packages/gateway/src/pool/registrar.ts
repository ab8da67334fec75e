import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { COOKIE_BYTES, type Packet } from '@httpgw/protocol';
import { formatHostPort, type Logger } from '@httpgw/runtime';
import { serverKey, type PoolServer, type ServerPool } from './server-pool.js';

export interface RegistrarInit {
  pool: ServerPool;
  logger: Logger;
  /** Sends a packet to an address; returns the datagram's size. */
  reply: (packet: Packet, address: string, port: number) => number;
  /** Encoded size of a packet, to keep answers to unvalidated addresses small. */
  sizeOf: (packet: Packet) => number;
  /** A server named the generation of its catalogue (at registration, in a heartbeat): the holder index's hook. */
  onCatalog?: (server: PoolServer, generation: number) => void;
  /** How long a refused server is told to wait before it tries again (default 15 s; it backs off further). */
  refusedRetryMs?: number;
  /** Refusals are logged as one line per interval at most (default 10 s). */
  refusalLogMs?: number;
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
  /** Refusals not logged yet, and when the last line was written. */
  private unloggedRefusals = 0;
  private refusalLoggedAt = Number.NEGATIVE_INFINITY;

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
        const server = pool.admit(address, port, packet.name);
        if (!server) {
          // The cookie came back, so the address is real: a refusal (as small as the hello) goes to it.
          this.init.reply({ type: 'refused', reason: 'pool-full', retryAfterMs: this.init.refusedRetryMs ?? 15_000 }, address, port);
          this.noteRefusal();
          return true;
        }
        server.heartbeatMs = pool.currentHeartbeatMs;
        this.init.reply({ type: 'registered', heartbeatMs: server.heartbeatMs }, address, port);
        if (packet.catalog !== undefined) this.init.onCatalog?.(server, packet.catalog);
        return true;
      }
      case 'heartbeat': {
        const server = pool.get(serverKey(address, port));
        if (!server) {
          // The answer is under twice the heartbeat's size: a spoofed heartbeat amplifies little.
          this.init.reply({ type: 'heartbeat-ack', known: false }, address, port);
          return true;
        }
        pool.touch(server);
        // A pool that grew tells its servers a longer interval, one heartbeat at a time.
        server.heartbeatMs = pool.currentHeartbeatMs;
        this.init.reply({ type: 'heartbeat-ack', known: true, heartbeatMs: server.heartbeatMs }, address, port);
        if (packet.catalog !== undefined) this.init.onCatalog?.(server, packet.catalog);
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

  /** One log line per interval, however many servers knock: "refused N registrations: pool full". */
  private noteRefusal(): void {
    this.unloggedRefusals++;
    const now = this.now();
    if (now - this.refusalLoggedAt < (this.init.refusalLogMs ?? 10_000)) return;
    this.init.logger.warn(`refused ${this.unloggedRefusals} registration${this.unloggedRefusals === 1 ? '' : 's'}: pool full (max-servers ${this.init.pool.maxServers})`, {
      refused: this.unloggedRefusals,
      maxServers: this.init.pool.maxServers,
      retryAfterMs: this.init.refusedRetryMs ?? 15_000,
    });
    this.unloggedRefusals = 0;
    this.refusalLoggedAt = now;
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
