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
 * than the last when called faster than that.
 */
export function createNonceCounter(nowMs: () => number): () => bigint {
  let last = 0n;
  return () => {
    const candidate = BigInt(Math.floor(nowMs() * 1000));
    last = candidate > last ? candidate : last + 1n;
    return last;
  };
}
