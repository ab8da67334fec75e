import { afterEach, describe, expect, it, vi } from 'vitest';
import { TICK_MS, Ticker } from '../src/transfer/ticker.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('Ticker', () => {
  it('runs every callback each tick from one interval, which runs only while there are callbacks', async () => {
    vi.useFakeTimers();
    const ticker = new Ticker();
    const calls: string[] = [];
    const a = () => calls.push('a');
    const b = () => calls.push('b');
    expect(vi.getTimerCount()).toBe(0);
    ticker.add(a);
    ticker.add(b);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(TICK_MS - 1);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual(['a', 'b']);
    await vi.advanceTimersByTimeAsync(2 * TICK_MS);
    expect(calls).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
    ticker.delete(a);
    expect(vi.getTimerCount()).toBe(1);
    ticker.delete(b);
    expect([vi.getTimerCount(), ticker.size]).toEqual([0, 0]);
    ticker.add(a);
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(calls.at(-1)).toBe('a');
    ticker.delete(a);
    ticker.delete(a); // twice: harmless
    expect(vi.getTimerCount()).toBe(0);
  });

  it('runs the others when a callback deletes itself or another during a tick', async () => {
    vi.useFakeTimers();
    const ticker = new Ticker();
    const calls: string[] = [];
    const once = () => {
      calls.push('once');
      ticker.delete(once);
      ticker.delete(gone);
    };
    const gone = () => calls.push('gone');
    const always = () => calls.push('always');
    ticker.add(once);
    ticker.add(gone);
    ticker.add(always);
    await vi.advanceTimersByTimeAsync(2 * TICK_MS);
    expect(calls).toEqual(['once', 'always', 'always']);
  });

  it('never keeps the process alive by itself: its interval is unref\'d', () => {
    const intervals: NodeJS.Timeout[] = [];
    const real = globalThis.setInterval;
    vi.spyOn(globalThis, 'setInterval').mockImplementation(((callback: () => void, ms: number) => {
      const timer = real(callback, ms);
      intervals.push(timer);
      return timer;
    }) as typeof setInterval);
    const ticker = new Ticker(5);
    const callback = () => {};
    ticker.add(callback);
    expect(intervals).toHaveLength(1);
    expect(intervals[0]!.hasRef()).toBe(false);
    ticker.delete(callback);
  });

  it('refuses an interval that is not a positive number, naming it', () => {
    expect(() => new Ticker(0)).toThrow(new RangeError('intervalMs must be a positive number (got 0)'));
    expect(() => new Ticker(Number.NaN)).toThrow(RangeError);
  });
});
