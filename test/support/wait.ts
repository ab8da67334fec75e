import { vi } from 'vitest';

/**
 * Resolves once `condition` holds: vitest's `vi.waitFor`, polling every `intervalMs`. Fails after
 * `timeoutMs` with `what` in the message instead of hanging. For conditions driven by socket events,
 * counters and log lines; where one value is compared, `expect.poll` says more on failure.
 */
export function until(condition: () => boolean, timeoutMs = 5_000, what = 'condition', intervalMs = 5): Promise<void> {
  return vi.waitFor(
    () => {
      if (!condition()) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: intervalMs },
  );
}
