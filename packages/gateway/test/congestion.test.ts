import { describe, expect, it } from 'vitest';
import { CongestionWindow, QUEUE_TARGET_MS } from '../src/udp/congestion-window.js';

// Times are plain numbers: the window only compares when a request was sent with when a loss was seen.

describe('CongestionWindow', () => {
  it('starts at the initial window, within its bounds', () => {
    expect(new CongestionWindow().size).toBe(8);
    expect(new CongestionWindow({ initial: 100, max: 32 }).size).toBe(32);
    expect(new CongestionWindow({ initial: 1, min: 2 }).size).toBe(2);
  });

  it('grows by one per answer in slow start: doubles per round trip', () => {
    const window = new CongestionWindow({ initial: 4, max: 64 });
    for (let i = 0; i < 4; i++) window.onAnswer(0);
    expect(window.size).toBe(8);
    for (let i = 0; i < 8; i++) window.onAnswer(0);
    expect(window.size).toBe(16);
  });

  it('stops at the largest window', () => {
    const window = new CongestionWindow({ initial: 8, max: 10 });
    for (let i = 0; i < 100; i++) window.onAnswer(0);
    expect(window.size).toBe(10);
  });

  it('halves on loss, then grows by one per window of answers (AIMD)', () => {
    const window = new CongestionWindow({ initial: 32 });
    window.onLoss(10, 20);
    expect(window.size).toBe(16);
    // Congestion avoidance: +1/cwnd per answer, so about a window of answers adds one.
    for (let i = 0; i < 15; i++) window.onAnswer(30);
    expect(window.size).toBe(16);
    for (let i = 0; i < 2; i++) window.onAnswer(30);
    expect(window.size).toBe(17);
    for (let i = 0; i < 18; i++) window.onAnswer(30);
    expect(window.size).toBe(18);
  });

  it('reduces once per loss event: losses of requests sent before the reduction do not count again', () => {
    const window = new CongestionWindow({ initial: 32 });
    window.onLoss(10, 100); // the event: noticed at 100
    window.onLoss(50, 101); // sent before 100: same event
    window.onLoss(99, 150);
    expect(window.size).toBe(16);
    window.onLoss(120, 200); // sent after the reduction: a new event
    expect(window.size).toBe(8);
  });

  it('does not grow on answers to requests sent before the last reduction', () => {
    const window = new CongestionWindow({ initial: 16 });
    window.onLoss(0, 100);
    for (let i = 0; i < 20; i++) window.onAnswer(50);
    expect(window.size).toBe(8);
  });

  it('never falls below the smallest window', () => {
    const window = new CongestionWindow({ initial: 8, min: 2 });
    for (let t = 1; t <= 10; t++) window.onLoss(t * 10, t * 10 + 5);
    expect(window.size).toBe(2);
  });

  it('holds while the queue at the server is over its target: a rate-capped server loses nothing, so only delay says stop', () => {
    const window = new CongestionWindow({ initial: 8, max: 64 });
    for (let i = 0; i < 8; i++) window.onAnswer(0, QUEUE_TARGET_MS + 1);
    expect(window.size).toBe(8);
    for (let i = 0; i < 8; i++) window.onAnswer(0, QUEUE_TARGET_MS - 1);
    expect(window.size).toBe(16);
  });

  it('undoes the reduction when the request that started the loss event was answered after all (Eifel)', () => {
    const window = new CongestionWindow({ initial: 32 });
    window.onLoss(10, 20);
    expect(window.size).toBe(16);
    window.undoLoss(11); // not the request that started the event
    expect(window.size).toBe(16);
    window.undoLoss(10);
    expect(window.size).toBe(32);
    window.undoLoss(10); // once
    expect(window.size).toBe(32);
  });
});

