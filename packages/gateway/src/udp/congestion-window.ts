export interface CongestionWindowInit {
  initial?: number;
  min?: number;
  max?: number;
}

/** Queueing delay beyond which the window stops growing. */
export const QUEUE_TARGET_MS = 25;

/**
 * AIMD on the number of requests in flight to one server (RFC 8085 asks UDP bulk transfer for
 * TCP-like control): slow start to the first loss, then +1 per window of answers, halved at most
 * once per round trip on loss, so a burst of losses from one event counts once; no growth while the
 * server's queue holds more than QUEUE_TARGET_MS.
 */
export class CongestionWindow {
  private cwnd: number;
  private ssthresh = Number.POSITIVE_INFINITY;
  private recoveryStartedAt = Number.NEGATIVE_INFINITY;
  readonly min: number;
  readonly max: number;

  /** What the last loss event changed, and the send time of the request that started it (see undoLoss). */
  private beforeLoss: { cwnd: number; ssthresh: number } | undefined;
  private lossEventSentAt = Number.NEGATIVE_INFINITY;

  constructor(init: CongestionWindowInit = {}) {
    this.min = init.min ?? 2;
    this.max = init.max ?? 64;
    this.cwnd = Math.min(this.max, Math.max(this.min, init.initial ?? 8));
  }

  /** Requests that may be in flight now. */
  get size(): number {
    return Math.floor(this.cwnd);
  }

  /**
   * An answer came for a request sent at `sentAt`, `queuedMs` after the path's least round trip.
   * Past QUEUE_TARGET_MS the window holds (LEDBAT's idea, RFC 6817): a server that sends at a
   * capped rate loses nothing however deep its queue, so without this its window would only grow,
   * and the round trip with it, faster than the RTO follows (spurious timeouts).
   */
  onAnswer(sentAt: number, queuedMs = 0): void {
    if (sentAt <= this.recoveryStartedAt || queuedMs > QUEUE_TARGET_MS) return;
    this.cwnd = Math.min(this.max, this.cwnd < this.ssthresh ? this.cwnd + 1 : this.cwnd + 1 / this.cwnd);
  }

  /** A request sent at `sentAt` was lost; reacts once per loss event. */
  onLoss(sentAt: number, now: number): void {
    if (sentAt <= this.recoveryStartedAt) return;
    this.recoveryStartedAt = now;
    this.beforeLoss = { cwnd: this.cwnd, ssthresh: this.ssthresh };
    this.lossEventSentAt = sentAt;
    this.ssthresh = Math.max(this.min, this.cwnd / 2);
    this.cwnd = this.ssthresh;
  }

  /**
   * The request sent at `sentAt` was not lost after all (its answer came after the timeout): when
   * it started the last loss event, the reduction is undone (Eifel response, RFC 4015).
   */
  undoLoss(sentAt: number): void {
    if (!this.beforeLoss || sentAt !== this.lossEventSentAt) return;
    this.cwnd = Math.max(this.cwnd, this.beforeLoss.cwnd);
    this.ssthresh = Math.max(this.ssthresh, this.beforeLoss.ssthresh);
    this.beforeLoss = undefined;
  }
}
