import { describe, expect, it } from 'vitest';
import { DeliveryRate } from '../src/udp/delivery-rate.js';
import { RttEstimator } from '../src/udp/rtt-estimator.js';

describe('DeliveryRate', () => {
  it('measures a server that answers a chunk every 6 ms as 10 bytes per µs, whatever the requests in flight', () => {
    const rate = new DeliveryRate();
    expect(rate.bytesPerMs).toBeUndefined();
    // 16 requests sent at once at t=0 to an idle server; answers every 6 ms from t=6.
    const sent = Array.from({ length: 16 }, (_, i) => rate.onSend(0, i === 0));
    sent.forEach((snapshot, i) => rate.onDelivered(snapshot, 60_000, 6 * (i + 1)));
    expect(rate.bytesPerMs).toBeCloseTo(10_000, -2);
  });

  it('is not fooled by a burst of answers after a pause: the send interval bounds the sample', () => {
    const rate = new DeliveryRate();
    // One request every 6 ms, all answered together at t=100: the server delivered at the send pace.
    const sent = Array.from({ length: 10 }, (_, i) => rate.onSend(i * 6, i === 0));
    for (const snapshot of sent) rate.onDelivered(snapshot, 60_000, 100);
    expect(rate.bytesPerMs).toBeLessThan(12_000);
  });

  it('takes an app-limited sample (the gateway left the server idle) only when it is higher, and covers more than one answer', () => {
    const rate = new DeliveryRate();
    const first = rate.onSend(0, true);
    rate.onDelivered(first, 60_000, 6); // 10 bytes per µs
    // One chunk from idle in 1 ms: a token bucket's burst, not a rate.
    rate.onDelivered(rate.onSend(100, true, true), 60_000, 101);
    expect(rate.bytesPerMs).toBeCloseTo(10_000, -2);
    // Lower, app-limited: ignored.
    rate.onDelivered(rate.onSend(200, true, true), 60_000, 230);
    expect(rate.bytesPerMs).toBeCloseTo(10_000, -2);
    // Two chunks in 6 ms, app-limited: higher, and more than one answer: taken.
    const a = rate.onSend(300, true, true);
    const b = rate.onSend(300, false, true);
    rate.onDelivered(a, 60_000, 303);
    rate.onDelivered(b, 60_000, 306);
    expect(rate.bytesPerMs).toBeGreaterThan(10_500);
  });

  it('follows a server that slows down', () => {
    const rate = new DeliveryRate();
    let now = 0;
    const deliver = (gapMs: number, count: number) => {
      for (let i = 0; i < count; i++) {
        const snapshot = rate.onSend(now, true);
        now += gapMs;
        rate.onDelivered(snapshot, 60_000, now);
      }
    };
    deliver(1, 20);
    expect(rate.bytesPerMs).toBeCloseTo(60_000, -3);
    deliver(6, 30);
    expect(rate.bytesPerMs).toBeLessThan(12_000);
  });
});

describe('RttEstimator.minMs', () => {
  it('is the least round trip of unqueued requests, or of any while there is none; forgotten after two periods', () => {
    const rtt = new RttEstimator();
    expect(rtt.minMs).toBeUndefined();
    rtt.sample(30, 0);
    expect(rtt.minMs).toBe(30); // queued, but all there is
    rtt.sample(5, 1, true);
    rtt.sample(2, 2); // queued samples no longer count
    expect(rtt.minMs).toBe(5);
    rtt.sample(8, 10_001, true);
    expect(rtt.minMs).toBe(5);
    rtt.sample(9, 20_002, true);
    expect(rtt.minMs).toBe(8);
  });
});
