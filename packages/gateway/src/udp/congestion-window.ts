export interface CongestionWindowInit {
  initial?: number;
  min?: number;
  max?: number;
}

/**
 * AIMD on the number of requests in flight to one server (RFC 8085 asks UDP bulk transfer for
 * TCP-like control): slow start to the first loss, then +1 per window of answers, halved at most
 * once per round trip on loss, so a burst of losses from one event counts once.
 */
export class CongestionWindow {
  private cwnd: number;
  private ssthresh = Number.POSITIVE_INFINITY;
  private recoveryStartedAt = Number.NEGATIVE_INFINITY;
  readonly min: number;
  readonly max: number;

  constructor(init: CongestionWindowInit = {}) {
    this.min = init.min ?? 2;
    this.max = init.max ?? 64;
    this.cwnd = Math.min(this.max, Math.max(this.min, init.initial ?? 8));
  }

  /** Requests that may be in flight now. */
  get size(): number {
    return Math.floor(this.cwnd);
  }

  /** An answer came for a request sent at `sentAt`. */
  onAnswer(sentAt: number): void {
    if (sentAt <= this.recoveryStartedAt) return;
    this.cwnd = Math.min(this.max, this.cwnd < this.ssthresh ? this.cwnd + 1 : this.cwnd + 1 / this.cwnd);
  }

  /** A request sent at `sentAt` was lost; reacts once per loss event. */
  onLoss(sentAt: number, now: number): void {
    if (sentAt <= this.recoveryStartedAt) return;
    this.recoveryStartedAt = now;
    this.ssthresh = Math.max(this.min, this.cwnd / 2);
    this.cwnd = this.ssthresh;
  }
}
