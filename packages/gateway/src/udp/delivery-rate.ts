/** What a request remembers of its server's deliveries when it is sent (BBR's per-packet state). */
export interface DeliverySnapshot {
  delivered: number;
  deliveredAt: number;
  firstSentAt: number;
  sentAt: number;
  /**
   * Sent while the server had less than half its window in flight: the gateway, not the server, set
   * the pace, so the sample may only raise the estimate (BBR's app-limited rule).
   */
  appLimited: boolean;
}

/** Samples shorter than this are noise (timer grain, a burst the server's token bucket let through). */
const MIN_INTERVAL_MS = 1;
/** EWMA gain: a server that slows down (a busy disk, a shared link) is believed within ~8 samples. */
const GAIN = 1 / 8;

/**
 * A server's delivery rate, sampled as BBR does (draft-cheng-iccrg-delivery-rate-estimation): each
 * answered request yields the bytes delivered between its send and its answer over the longer of
 * the send and answer intervals, which neither a burst of answers nor a burst of sends inflates.
 * Smoothed with an EWMA, not BBR's max filter: the gateway schedules by what a server will deliver
 * next, and a token-bucket burst from idle must not pass for its rate.
 */
export class DeliveryRate {
  private delivered = 0;
  private deliveredAt = 0;
  private firstSentAt = 0;
  private smoothed: number | undefined;
  private measuredBusy = false;

  /**
   * Bytes per ms, once measured while the server was busy: samples taken while the gateway left it
   * idle measure the round trip more than the rate, and a server judged slow on those alone would
   * get too little work to be measured again (among equal servers, one would take everything).
   */
  get bytesPerMs(): number | undefined {
    return this.measuredBusy ? this.smoothed : undefined;
  }

  /** Taken when a request is sent; `idle`: nothing else is in flight to this server (a new flight starts). */
  onSend(now: number, idle: boolean, appLimited = false): DeliverySnapshot {
    if (idle) {
      this.firstSentAt = now;
      this.deliveredAt = now;
    }
    return { delivered: this.delivered, deliveredAt: this.deliveredAt, firstSentAt: this.firstSentAt, sentAt: now, appLimited };
  }

  /** An answer of `bytes` to a request sent with `at`. */
  onDelivered(at: DeliverySnapshot, bytes: number, now: number): void {
    this.delivered += bytes;
    this.deliveredAt = now;
    this.firstSentAt = at.sentAt;
    const intervalMs = Math.max(at.sentAt - at.firstSentAt, now - at.deliveredAt);
    if (intervalMs < MIN_INTERVAL_MS) return;
    const sample = (this.delivered - at.delivered) / intervalMs;
    if (!at.appLimited) this.measuredBusy = true;
    // An app-limited sample may raise the estimate only over more than one answer: a single chunk from
    // idle may be all a token bucket's burst (--max-rate lets ~10 ms of its rate through at once).
    if (at.appLimited && this.smoothed !== undefined && (sample < this.smoothed || this.delivered - at.delivered < 2 * bytes)) return;
    this.smoothed = this.smoothed === undefined ? sample : this.smoothed + GAIN * (sample - this.smoothed);
  }
}
