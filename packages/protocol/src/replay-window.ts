import { ProtocolError } from './errors.js';

export interface ReplayWindowInit {
  /** Largest accepted difference between a frame's timestamp and the receiver's clock. */
  maxClockSkewMs?: number;
  /** How many nonces below the highest seen are still accepted once (reordering tolerance). */
  windowSize?: number;
  /** Senders remembered at most; the least recently seen is forgotten first. */
  maxSenders?: number;
}

interface SenderWindow {
  highest: bigint;
  /** Bit i set: nonce (highest - i) was seen. */
  seen: bigint;
}

/**
 * Anti-replay check in the manner of RFC 4303 §3.4.3: every sender numbers its frames with a nonce
 * that only grows (see `createNonceCounter`); the receiver keeps, per sender, the highest nonce and a
 * bitmap of the ones just below it. Timestamps bound how old a frame may be, so a sender forgotten
 * from the table cannot be replayed from long ago. Pure: the clock is passed in.
 */
export class ReplayWindow {
  private readonly maxClockSkewMs: number;
  private readonly windowSize: bigint;
  private readonly maxSenders: number;
  private readonly senders = new Map<string, SenderWindow>();

  constructor(init: ReplayWindowInit = {}) {
    this.maxClockSkewMs = init.maxClockSkewMs ?? 30_000;
    this.windowSize = BigInt(init.windowSize ?? 1024);
    this.maxSenders = init.maxSenders ?? 4096;
  }

  /** Throws PROTO_ERR_CLOCK_SKEW or PROTO_ERR_REPLAY; records the nonce otherwise. Call only after the MAC checked out. */
  check(sender: string, timestampMs: number, nonce: bigint, nowMs: number): void {
    if (Math.abs(nowMs - timestampMs) > this.maxClockSkewMs) {
      throw new ProtocolError('PROTO_ERR_CLOCK_SKEW', `timestamp is ${Math.round((nowMs - timestampMs) / 1000)} s away from this clock`);
    }
    const window = this.senders.get(sender);
    if (!window) {
      this.remember(sender, { highest: nonce, seen: 1n });
      return;
    }
    if (nonce > window.highest) {
      const shift = nonce - window.highest;
      window.seen = shift >= this.windowSize ? 1n : ((window.seen << shift) | 1n) & ((1n << this.windowSize) - 1n);
      window.highest = nonce;
    } else {
      const offset = window.highest - nonce;
      if (offset >= this.windowSize) throw new ProtocolError('PROTO_ERR_REPLAY', 'nonce is older than the replay window');
      const bit = 1n << offset;
      if ((window.seen & bit) !== 0n) throw new ProtocolError('PROTO_ERR_REPLAY', 'nonce was already seen');
      window.seen |= bit;
    }
    this.remember(sender, window);
  }

  private remember(sender: string, window: SenderWindow): void {
    this.senders.delete(sender);
    this.senders.set(sender, window);
    if (this.senders.size > this.maxSenders) {
      const oldest = this.senders.keys().next().value;
      if (oldest !== undefined) this.senders.delete(oldest);
    }
  }
}

/**
 * Nonces that keep growing across restarts of the sender: microseconds since the epoch, or one more
 * than the last when called faster than that. The microseconds within the millisecond are drawn at
 * random (clocks read whole milliseconds): two senders signing the same body in the same millisecond,
 * such as two servers' heartbeats, still make different frames, so an identical frame is a replay
 * (RecentFrames). Math.random suffices: this avoids coincidences, it is no secret.
 */
export function createNonceCounter(nowMs: () => number): () => bigint {
  let last = 0n;
  return () => {
    const candidate = BigInt(Math.floor(nowMs()) * 1000 + Math.floor(Math.random() * 1000));
    last = candidate > last ? candidate : last + 1n;
    return last;
  };
}

/**
 * The MACs of recently accepted frames, whoever sent them. The per-sender ReplayWindow cannot see a
 * captured frame resent from another address (a new sender to it); this can. It is meant for the
 * low-rate registration traffic, whose answers go to whatever address asks: remembering every chunk
 * would cost too much, and chunks are only accepted from the one address they were asked of anyway.
 * A tag is kept until its frame's timestamp leaves the clock-skew bound, after which the skew check
 * refuses the frame by itself.
 */
export class RecentFrames {
  private readonly maxClockSkewMs: number;
  private readonly maxEntries: number;
  /** tag → time after which the skew check alone refuses the frame; insertion order ≈ expiry order. */
  private readonly expiries = new Map<string, number>();

  constructor(init: { maxClockSkewMs?: number; maxEntries?: number } = {}) {
    this.maxClockSkewMs = init.maxClockSkewMs ?? 30_000;
    this.maxEntries = init.maxEntries ?? 65_536;
  }

  /** Throws PROTO_ERR_REPLAY when `tag` was accepted before; records it otherwise. Call only after the MAC checked out. */
  check(tag: string, timestampMs: number, nowMs: number): void {
    for (const [oldest, expiresAt] of this.expiries) {
      if (expiresAt >= nowMs && this.expiries.size < this.maxEntries) break;
      this.expiries.delete(oldest);
    }
    if (this.expiries.has(tag)) throw new ProtocolError('PROTO_ERR_REPLAY', 'frame was already accepted (from another address)');
    this.expiries.set(tag, timestampMs + this.maxClockSkewMs);
  }
}
