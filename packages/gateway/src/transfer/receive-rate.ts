/** Windows shorter than this say more about timer grain than about rate. */
const WINDOW_MS = 20;

/**
 * The rate one transfer receives chunks at, in bytes per ms (an EWMA over 20 ms windows): with it
 * the scheduler knows when the client will need a chunk that is N places ahead.
 */
export class ReceiveRate {
  private windowStart: number | undefined;
  private bytes = 0;
  private smoothed: number | undefined;

  get bytesPerMs(): number | undefined {
    return this.smoothed;
  }

  add(bytes: number, now: number): void {
    if (this.windowStart === undefined) {
      this.windowStart = now;
      return;
    }
    this.bytes += bytes;
    const elapsed = now - this.windowStart;
    if (elapsed < WINDOW_MS) return;
    const sample = this.bytes / elapsed;
    this.smoothed = this.smoothed === undefined ? sample : this.smoothed + (sample - this.smoothed) / 4;
    this.windowStart = now;
    this.bytes = 0;
  }
}
