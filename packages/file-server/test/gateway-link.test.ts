import { type Packet } from '@httpgw/protocol';
import { silentLogger } from '@httpgw/runtime';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewayLink, type GatewayLinkInit } from '../src/link/gateway-link.js';

const COOKIE = new Uint8Array(16).fill(7);

/** A link whose datagrams are recorded with the (fake) time they left, from its start. */
function startLink(init: Partial<GatewayLinkInit> = {}) {
  const sent: Array<{ at: number; packet: Packet }> = [];
  const started = Date.now();
  const link = new GatewayLink({
    address: '127.0.0.1',
    port: 9,
    label: 'gw:9',
    name: 'srv',
    logger: silentLogger,
    send: (packet) => sent.push({ at: Date.now() - started, packet }),
    retryMs: 100,
    maxRetryMs: 1_000,
    ...init,
  });
  link.start();
  const types = () => sent.map((entry) => entry.packet.type);
  const times = (type: Packet['type']) => sent.filter((entry) => entry.packet.type === type).map((entry) => entry.at);
  /** Clears what was sent so far. */
  const drain = () => sent.splice(0).map((entry) => entry.packet);
  return { link, sent, types, times, drain };
}

/** Runs hello → challenge → register → registered. */
function register(link: GatewayLink, heartbeatMs = 500) {
  link.handle({ type: 'challenge', cookie: COOKIE });
  link.handle({ type: 'registered', heartbeatMs });
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('GatewayLink registration', () => {
  it('sends hello at once, then retries it with a doubling delay capped at maxRetryMs', () => {
    const { times } = startLink();
    vi.advanceTimersByTime(5_000);
    // Delays 100, 200, 400, 800, then 1000 (the cap) for good.
    expect(times('hello')).toEqual([0, 100, 300, 700, 1_500, 2_500, 3_500, 4_500]);
  });

  it('defaults: first retry after 200 ms, capped at 2 s', () => {
    const { times } = startLink({ retryMs: undefined, maxRetryMs: undefined });
    vi.advanceTimersByTime(7_000);
    expect(times('hello')).toEqual([0, 200, 600, 1_400, 3_000, 5_000, 7_000]);
  });

  it('answers a challenge with register carrying its cookie, retried from the first delay again', () => {
    const { link, sent, drain } = startLink();
    vi.advanceTimersByTime(700); // hellos at 0, 100, 300, 700: the backoff has grown
    drain();
    link.handle({ type: 'challenge', cookie: COOKIE });
    expect(sent.map((entry) => entry.packet)).toEqual([{ type: 'register', name: 'srv', cookie: COOKIE }]);
    vi.advanceTimersByTime(100);
    expect(sent.map((entry) => entry.packet.type)).toEqual(['register', 'register']);
    expect(link.registered).toBe(false);
  });

  it('a register never answered starts over with hello once the backoff reaches its cap (the cookie may have expired)', () => {
    const { link, sent, drain } = startLink();
    drain();
    // The challenge comes at once (time 0).
    link.handle({ type: 'challenge', cookie: COOKIE });
    vi.advanceTimersByTime(2_500);
    const seen = sent.map((entry) => [entry.packet.type, entry.at]);
    expect(seen).toEqual([
      ['register', 0],
      ['register', 100],
      ['register', 300],
      ['register', 700],
      ['hello', 1_500],
      ['hello', 2_500],
    ]);
  });

  it('ignores a challenge after hello and a registered before register', () => {
    const { link, types, drain } = startLink();
    link.handle({ type: 'registered', heartbeatMs: 500 });
    expect(link.registered).toBe(false);
    link.handle({ type: 'challenge', cookie: COOKIE });
    drain();
    link.handle({ type: 'challenge', cookie: new Uint8Array(16) });
    expect(types()).toEqual([]);
  });

  it('once registered: no more hellos, a heartbeat every heartbeatMs', () => {
    const { link, times, drain } = startLink();
    register(link, 500);
    expect(link.registered).toBe(true);
    drain();
    for (let i = 0; i < 4; i++) {
      vi.advanceTimersByTime(500);
      link.handle({ type: 'heartbeat-ack', known: true });
    }
    // Registered at time 0.
    expect(times('heartbeat')).toEqual([500, 1_000, 1_500, 2_000]);
    expect(times('hello')).toEqual([]);
    expect(times('register')).toEqual([]);
  });

  it('heartbeat-ack known:false starts over with hello at once, and requests are no longer served', () => {
    const { link, types, drain } = startLink();
    register(link);
    expect(link.onRequest()).toBe(true);
    drain();
    link.handle({ type: 'heartbeat-ack', known: false });
    expect(types()).toEqual(['hello']);
    expect(link.registered).toBe(false);
    expect(link.onRequest()).toBe(false);
    // Registration runs again from the start: hello retries, no heartbeats.
    vi.advanceTimersByTime(300);
    expect(types()).toEqual(['hello', 'hello', 'hello']);
    register(link);
    expect(link.registered).toBe(true);
    expect(link.onRequest()).toBe(true);
  });

  it('missed acks: registers again after missedAcksBeforeRetry unanswered heartbeats, still serving requests', () => {
    const { link, types, drain } = startLink({ missedAcksBeforeRetry: 3 });
    register(link, 500);
    drain();
    vi.advanceTimersByTime(1_500);
    expect(types()).toEqual(['heartbeat', 'heartbeat', 'heartbeat']);
    vi.advanceTimersByTime(500);
    expect(types()).toEqual(['heartbeat', 'heartbeat', 'heartbeat', 'hello']);
    expect(link.registered).toBe(false);
    // The gateway most likely still knows us: its requests are served meanwhile.
    expect(link.onRequest()).toBe(true);
    link.handle({ type: 'challenge', cookie: COOKIE });
    link.handle({ type: 'registered', heartbeatMs: 500 });
    expect(link.registered).toBe(true);
  });

  it('requests from the gateway count as acks: no registration again while they keep coming', () => {
    const { link, types, drain } = startLink({ missedAcksBeforeRetry: 2 });
    register(link, 500);
    drain();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(500);
      expect(link.onRequest()).toBe(true);
    }
    expect(new Set(types())).toEqual(new Set(['heartbeat']));
    expect(link.registered).toBe(true);
  });

  it('an ack resets the count of missed ones', () => {
    const { link, types, drain } = startLink({ missedAcksBeforeRetry: 2 });
    register(link, 500);
    drain();
    vi.advanceTimersByTime(1_000);
    link.handle({ type: 'heartbeat-ack', known: true });
    vi.advanceTimersByTime(1_000);
    expect(types()).toEqual(['heartbeat', 'heartbeat', 'heartbeat', 'heartbeat']);
    vi.advanceTimersByTime(500);
    expect(types().at(-1)).toBe('hello');
  });

  it('close() when registered says leave, stops every timer, and refuses requests', () => {
    const { link, types, drain } = startLink();
    register(link);
    drain();
    link.close();
    expect(types()).toEqual(['leave']);
    vi.advanceTimersByTime(60_000);
    expect(types()).toEqual(['leave']);
    expect(link.onRequest()).toBe(false);
    expect(link.registered).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close() before registration sends nothing and stops the hello retries', () => {
    const { link, types, drain } = startLink();
    drain();
    link.close();
    vi.advanceTimersByTime(60_000);
    expect(types()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    // Late answers change nothing once closed.
    link.handle({ type: 'challenge', cookie: COOKIE });
    link.handle({ type: 'registered', heartbeatMs: 500 });
    expect(types()).toEqual([]);
    expect(link.registered).toBe(false);
  });

  it('whenRegistered() resolves on registration, at once when registered, and again after starting over', async () => {
    const { link } = startLink();
    let resolved = false;
    const waiting = link.whenRegistered().then(() => {
      resolved = true;
    });
    vi.advanceTimersByTime(1_000);
    await Promise.resolve();
    expect(resolved).toBe(false);
    register(link);
    await waiting;
    expect(resolved).toBe(true);
    await expect(link.whenRegistered()).resolves.toBeUndefined();

    link.handle({ type: 'heartbeat-ack', known: false });
    let again = false;
    const waitingAgain = link.whenRegistered().then(() => {
      again = true;
    });
    await Promise.resolve();
    expect(again).toBe(false);
    register(link);
    await waitingAgain;
    expect(again).toBe(true);
  });

  it('requests before the first registration are not served', () => {
    const { link } = startLink();
    expect(link.onRequest()).toBe(false);
    link.handle({ type: 'challenge', cookie: COOKIE });
    expect(link.onRequest()).toBe(false);
  });
});

describe('GatewayLink refusals', () => {
  /** A link with a recording logger, driven to `register` (hello answered by a challenge). */
  function refusedLink(init: Partial<GatewayLinkInit> = {}) {
    const logged: Array<{ level: string; message: string }> = [];
    const record = (level: string) => (message: string) => logged.push({ level, message });
    const logger = { ...silentLogger, warn: record('warn'), info: record('info'), debug: record('debug') } as typeof silentLogger;
    const started = startLink({ logger, random: () => 0, ...init });
    started.link.handle({ type: 'challenge', cookie: COOKIE });
    return { ...started, logged };
  }

  it('logs the first refusal once, waits at least retryAfterMs, and backs off further while refused', () => {
    const { link, drain, logged } = refusedLink();
    drain();
    const refuse = () => link.handle({ type: 'refused', reason: 'pool-full', retryAfterMs: 1_000 });
    refuse();
    // No retry of the register (its timer is replaced), no hello before the pause is over.
    vi.advanceTimersByTime(999);
    expect(drain()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(drain().map((packet) => packet.type)).toEqual(['hello']);
    // Refused again: 2 s, then 4 s (doubling, jitter 0 here).
    for (const pause of [2_000, 4_000]) {
      link.handle({ type: 'challenge', cookie: COOKIE });
      drain();
      refuse();
      vi.advanceTimersByTime(pause - 1);
      expect(drain()).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(drain().map((packet) => packet.type)).toEqual(['hello']);
    }
    expect(logged.filter((entry) => entry.level === 'warn')).toEqual([{ level: 'warn', message: 'gateway refused registration; retrying with backoff' }]);
    expect(link.refusedCount).toBe(3);
    // Admitted at last: the count and the backoff start over, and the next refusal is logged again.
    link.handle({ type: 'challenge', cookie: COOKIE });
    link.handle({ type: 'registered', heartbeatMs: 500 });
    expect(link.refusedCount).toBe(0);
    link.handle({ type: 'heartbeat-ack', known: false });
    link.handle({ type: 'challenge', cookie: COOKIE });
    refuse();
    expect(logged.filter((entry) => entry.level === 'warn' && entry.message.includes('refused'))).toHaveLength(2);
  });

  it('caps the backoff, honours a longer retryAfterMs, and spreads servers with jitter', () => {
    const { link, drain } = refusedLink({ maxRefusedBackoffMs: 3_000, random: () => 1 });
    const pauseAfter = (retryAfterMs: number) => {
      link.handle({ type: 'challenge', cookie: COOKIE });
      drain();
      link.handle({ type: 'refused', reason: 'pool-full', retryAfterMs });
      let waited = 0;
      while (drain().length === 0) {
        vi.advanceTimersByTime(100);
        waited += 100;
      }
      return waited;
    };
    // Jitter 1 adds half again: 1.5 × 1 s, 1.5 × 2 s, then the cap of 3 s (× 1.5), and a longer retryAfterMs wins over the cap.
    expect([pauseAfter(1_000), pauseAfter(1_000), pauseAfter(1_000), pauseAfter(1_000), pauseAfter(10_000)]).toEqual([1_500, 3_000, 4_500, 4_500, 15_000]);
  });

  it('ignores a refusal it did not ask for (registered, or saying hello)', () => {
    const { link, drain } = startLink();
    link.handle({ type: 'refused', reason: 'pool-full', retryAfterMs: 60_000 });
    vi.advanceTimersByTime(100);
    expect(drain().map((packet) => packet.type)).toEqual(['hello', 'hello']);
    register(link);
    link.handle({ type: 'refused', reason: 'pool-full', retryAfterMs: 60_000 });
    expect(link.registered).toBe(true);
  });

  it('sends its catalogue generation with register and every heartbeat, and heartbeats at the interval the gateway tells', () => {
    let generation: number | undefined;
    const { link, drain, times } = startLink({ catalog: () => generation });
    link.handle({ type: 'challenge', cookie: COOKIE });
    expect(drain().at(-1)).toEqual({ type: 'register', name: 'srv', cookie: COOKIE });
    generation = 42;
    // The walk ended after the register left: its generation goes out at once, then with every heartbeat.
    link.handle({ type: 'registered', heartbeatMs: 500 });
    expect(drain()).toEqual([{ type: 'heartbeat', catalog: 42 }]);
    vi.advanceTimersByTime(500);
    expect(drain()).toEqual([{ type: 'heartbeat', catalog: 42 }]);
    link.handle({ type: 'heartbeat-ack', known: true, heartbeatMs: 2_000 });
    vi.advanceTimersByTime(500); // the heartbeat already scheduled goes at the old interval
    vi.advanceTimersByTime(4_000);
    link.handle({ type: 'heartbeat-ack', known: true, heartbeatMs: 2_000 });
    expect(times('heartbeat')).toEqual([1_000, 3_000, 5_000]);
    // A new generation is told at once.
    generation = 43;
    link.catalogChanged();
    expect(drain().at(-1)).toEqual({ type: 'heartbeat', catalog: 43 });
  });
});

