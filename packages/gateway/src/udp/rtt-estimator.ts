export interface RttEstimatorInit {
  /** RTO before any sample (RFC 6298 says 1 s; loopback and LANs want far less). */
  initialRtoMs?: number;
  minRtoMs?: number;
  maxRtoMs?: number;
  /** Clock granularity G of RFC 6298: the timer tick that checks for timeouts. */
  granularityMs?: number;
}

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

  constructor(init: RttEstimatorInit = {}) {
    this.initialRtoMs = init.initialRtoMs ?? 200;
    this.minRtoMs = init.minRtoMs ?? 20;
    this.maxRtoMs = init.maxRtoMs ?? 4_000;
    this.granularityMs = init.granularityMs ?? 5;
  }

  get smoothedMs(): number | undefined {
    return this.srttMs;
  }

  get rtoMs(): number {
    const base = this.srttMs === undefined ? this.initialRtoMs : this.srttMs + Math.max(this.granularityMs, 4 * this.rttvarMs);
    return Math.min(this.maxRtoMs, Math.max(this.minRtoMs, base) * this.backoff);
  }

  sample(rttMs: number): void {
    if (this.srttMs === undefined) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
    } else {
      this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - rttMs);
      this.srttMs = 0.875 * this.srttMs + 0.125 * rttMs;
    }
    this.backoff = 1;
  }

  /** Exponential backoff after a timeout, until the next sample. */
  onTimeout(): void {
    if (this.rtoMs < this.maxRtoMs) this.backoff *= 2;
  }
}
