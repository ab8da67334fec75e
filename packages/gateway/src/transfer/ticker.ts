/** How often the transfers' time-driven work runs: stall deadlines, hedges, room freed by others. */
export const TICK_MS = 10;

/**
 * One interval for many callbacks, as undici's timers serve every connection's deadlines from a
 * single tick: a thousand transfers cost one timer that fires every `intervalMs`, not a thousand.
 * The interval runs only while some callback is registered, and is unref'd: it never keeps the
 * process alive by itself (the transfers' sockets do, while there are any).
 */
export class Ticker {
  private readonly callbacks = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  readonly intervalMs: number;

  constructor(intervalMs = TICK_MS) {
    if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) throw new RangeError(`intervalMs must be a positive number (got ${intervalMs})`);
    this.intervalMs = intervalMs;
  }

  /** Callbacks registered now. */
  get size(): number {
    return this.callbacks.size;
  }

  /** Runs `callback` every tick from now until `delete`; the first one starts the interval. */
  add(callback: () => void): void {
    this.callbacks.add(callback);
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops running `callback`; the last one gone stops the interval. */
  delete(callback: () => void): void {
    this.callbacks.delete(callback);
    if (this.callbacks.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    // A callback may delete itself or another one: a Set's iteration allows it.
    for (const callback of this.callbacks) callback();
  }
}
