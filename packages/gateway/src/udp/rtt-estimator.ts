export interface RttEstimatorInit {
  /** RTO before any sample (RFC 6298 says 1 s; loopback and LANs want far less). */
  initialRtoMs?: number;
  minRtoMs?: number;
  maxRtoMs?: number;
  /** Clock granularity G of RFC 6298: the timer tick that checks for timeouts. */
  granularityMs?: number;
}

const MIN_RTT_PERIOD_MS = 10_000;

/**
 * Retransmission timeout per RFC 6298: SRTT and RTTVAR with α = 1/8 and β = 1/4,
 * RTO = SRTT + max(G, 4·RTTVAR), doubled on timeout and recomputed on the next sample.
 * Karn's rule holds by construction: every retransmission carries a fresh request id, so each
 * sample matches exactly one transmission.
 */
export class RttEstimator {
  private srttMs: number | undefined;
  private rttvarMs = 0;
  private backoff = 1;
  private readonly initialRtoMs: number;
  private readonly minRtoMs: number;
  private readonly maxRtoMs: number;
  private readonly granularityMs: number;
  /** The least sample of this period and of the one before (a windowed minimum: the path without queues). */
  private minThisPeriod = Number.POSITIVE_INFINITY;
  private minLastPeriod = Number.POSITIVE_INFINITY;
  private periodStart = 0;
  private minAnySample = Number.POSITIVE_INFINITY;

  constructor(init: RttEstimatorInit = {}) {
    this.initialRtoMs = init.initialRtoMs ?? 200;
    this.minRtoMs = init.minRtoMs ?? 20;
    this.maxRtoMs = init.maxRtoMs ?? 4_000;
    this.granularityMs = init.granularityMs ?? 5;
  }

  get smoothedMs(): number | undefined {
    return this.srttMs;
  }

  /** The least round trip of an unqueued request lately (10 to 20 s): propagation and processing, without queues. */
  get minMs(): number | undefined {
    const least = Math.min(this.minThisPeriod, this.minLastPeriod);
    if (Number.isFinite(least)) return least;
    // Never idle yet: the least of all samples, queues and all (an upper bound).
    return Number.isFinite(this.minAnySample) ? this.minAnySample : undefined;
  }

  get rtoMs(): number {
    const base = this.srttMs === undefined ? this.initialRtoMs : this.srttMs + Math.max(this.granularityMs, 4 * this.rttvarMs);
    return Math.min(this.maxRtoMs, Math.max(this.minRtoMs, base) * this.backoff);
  }

  /**
   * `unqueued`: the request went to a server with nothing else in flight, so its round trip counts
   * towards `minMs` (a server that is always busy would otherwise show its queue as its distance).
   */
  sample(rttMs: number, now = performance.now(), unqueued = false): void {
    this.minAnySample = Math.min(this.minAnySample, rttMs);
    if (unqueued) this.sampleMin(rttMs, now);
    if (this.srttMs === undefined) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
    } else {
      this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - rttMs);
      this.srttMs = 0.875 * this.srttMs + 0.125 * rttMs;
    }
    this.backoff = 1;
  }

  /** A round trip with no queue in it that says nothing of the RTO (see ServerPool.onAnswer): `minMs` only. */
  sampleMin(rttMs: number, now = performance.now()): void {
    if (now - this.periodStart >= MIN_RTT_PERIOD_MS) {
      this.minLastPeriod = this.minThisPeriod;
      this.minThisPeriod = Number.POSITIVE_INFINITY;
      this.periodStart = now;
    }
    this.minThisPeriod = Math.min(this.minThisPeriod, rttMs);
  }

  /** Exponential backoff after a timeout, until the next sample. */
  onTimeout(): void {
    if (this.rtoMs < this.maxRtoMs) this.backoff *= 2;
  }
}
