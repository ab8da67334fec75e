import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError, ReplayWindow, createFrameCodec, createNonceCounter, encode, keyFromSecret, type Packet } from '@httpgw/protocol';

const NOW = 1_700_000_000_000;
const key = keyFromSecret(Buffer.from('replay test secret, long enough'));

function codeOf(run: () => unknown): string {
  try {
    run();
    return 'accepted';
  } catch (error) {
    if (error instanceof ProtocolError) return error.code;
    throw error;
  }
}

describe('ReplayWindow', () => {
  it('accepts each nonce once, in any order within the window', () => {
    const window = new ReplayWindow({ windowSize: 64 });
    for (const nonce of [10n, 12n, 11n, 20n, 15n]) expect(codeOf(() => window.check('s', NOW, nonce, NOW))).toBe('accepted');
    for (const nonce of [10n, 12n, 11n, 20n, 15n]) expect(codeOf(() => window.check('s', NOW, nonce, NOW))).toBe('PROTO_ERR_REPLAY');
  });

  it('refuses nonces older than the window', () => {
    const window = new ReplayWindow({ windowSize: 64 });
    window.check('s', NOW, 1_000n, NOW);
    expect(codeOf(() => window.check('s', NOW, 1_000n - 63n, NOW))).toBe('accepted');
    expect(codeOf(() => window.check('s', NOW, 1_000n - 64n, NOW))).toBe('PROTO_ERR_REPLAY');
  });

  it('keeps one window per sender', () => {
    const window = new ReplayWindow();
    window.check('a', NOW, 5n, NOW);
    expect(codeOf(() => window.check('b', NOW, 5n, NOW))).toBe('accepted');
    expect(codeOf(() => window.check('a', NOW, 5n, NOW))).toBe('PROTO_ERR_REPLAY');
  });

  it('refuses timestamps beyond the clock-skew bound either way', () => {
    const window = new ReplayWindow({ maxClockSkewMs: 30_000 });
    expect(codeOf(() => window.check('s', NOW - 30_000, 1n, NOW))).toBe('accepted');
    expect(codeOf(() => window.check('s', NOW + 30_000, 2n, NOW))).toBe('accepted');
    expect(codeOf(() => window.check('s', NOW - 30_001, 3n, NOW))).toBe('PROTO_ERR_CLOCK_SKEW');
    expect(codeOf(() => window.check('s', NOW + 30_001, 4n, NOW))).toBe('PROTO_ERR_CLOCK_SKEW');
    expect(codeOf(() => window.check('s', 0, 5n, NOW))).toBe('PROTO_ERR_CLOCK_SKEW');
  });

  it('remembers a bounded number of senders', () => {
    const window = new ReplayWindow({ maxSenders: 2 });
    window.check('a', NOW, 1n, NOW);
    window.check('b', NOW, 1n, NOW);
    window.check('c', NOW, 1n, NOW);
    // 'a' was forgotten: only the clock-skew bound protects it now (see docs/SECURITY.md).
    expect(codeOf(() => window.check('a', NOW, 1n, NOW))).toBe('accepted');
    expect(codeOf(() => window.check('c', NOW, 1n, NOW))).toBe('PROTO_ERR_REPLAY');
  });

  it('never accepts a nonce twice, whatever the order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 0n, max: 3_000n }), { maxLength: 300 }), (nonces) => {
        const window = new ReplayWindow({ windowSize: 128 });
        const accepted = new Set<bigint>();
        for (const nonce of nonces) {
          if (codeOf(() => window.check('s', NOW, nonce, NOW)) === 'accepted') {
            expect(accepted.has(nonce)).toBe(false);
            accepted.add(nonce);
          }
        }
      }),
    );
  });

  it('gives two senders reading the same millisecond different nonces (almost always)', () => {
    let same = 0;
    for (let i = 0; i < 1_000; i++) if (createNonceCounter(() => NOW)() === createNonceCounter(() => NOW)()) same++;
    // One in a thousand by design; twenty would mean the sub-millisecond part is not random.
    expect(same).toBeLessThan(20);
  });

  it('gets nonces that keep growing from createNonceCounter, even when the clock stalls or steps back', () => {
    let now = NOW;
    const next = createNonceCounter(() => now);
    const first = next();
    const second = next();
    now -= 5_000;
    const third = next();
    expect(second > first && third > second).toBe(true);
  });
});

describe('createFrameCodec with a secret', () => {
  const pair = (nowA = () => NOW, nowB = () => NOW) => ({ a: createFrameCodec({ key, now: nowA }), b: createFrameCodec({ key, now: nowB }) });

  it('accepts a frame once; the same datagram again from the same sender is a replay', () => {
    const { a, b } = pair();
    const datagram = a.encode({ type: 'heartbeat' });
    expect(b.decode(datagram, '10.0.0.1:1000')).toEqual({ type: 'heartbeat' });
    expect(codeOf(() => b.decode(datagram, '10.0.0.1:1000'))).toBe('PROTO_ERR_REPLAY');
  });

  it.each<Packet>([
    { type: 'hello', name: 'srv' },
    { type: 'register', name: 'srv', cookie: Buffer.alloc(16, 7) },
    { type: 'heartbeat' },
    { type: 'leave' },
  ])('refuses a captured $type resent from another address too', (packet) => {
    const { a, b } = pair();
    const datagram = a.encode(packet);
    b.decode(datagram, '10.0.0.1:1000');
    expect(codeOf(() => b.decode(datagram, '10.6.6.6:6666'))).toBe('PROTO_ERR_REPLAY');
  });

  it('refuses frames from a clock too far off, and accepts them within the bound', () => {
    const { a: late } = pair(() => NOW - 31_000);
    const { a: close } = pair(() => NOW - 29_000);
    const receiver = createFrameCodec({ key, now: () => NOW, replay: { maxClockSkewMs: 30_000 } });
    expect(codeOf(() => receiver.decode(late.encode({ type: 'heartbeat' }), 's:1'))).toBe('PROTO_ERR_CLOCK_SKEW');
    expect(codeOf(() => receiver.decode(close.encode({ type: 'heartbeat' }), 's:1'))).toBe('accepted');
  });

  it('refuses frames signed with another secret, and unsigned ones', () => {
    const receiver = createFrameCodec({ key, now: () => NOW });
    const stranger = createFrameCodec({ key: keyFromSecret(Buffer.from('not the same secret at all!!')), now: () => NOW });
    expect(codeOf(() => receiver.decode(stranger.encode({ type: 'hello', name: 'x' }), 's:1'))).toBe('PROTO_ERR_BAD_KEY');
    expect(codeOf(() => receiver.decode(encode({ type: 'hello', name: 'x' }), 's:1'))).toBe('PROTO_ERR_AUTH_REQUIRED');
    expect(codeOf(() => createFrameCodec().decode(receiver.encode({ type: 'hello', name: 'x' }), 's:1'))).toBe('PROTO_ERR_AUTH_UNEXPECTED');
  });

  it('keeps the cross-address memory bounded in time: a tag is forgotten once its frame is too old anyway', () => {
    let now = NOW;
    const sender = createFrameCodec({ key, now: () => NOW });
    const receiver = createFrameCodec({ key, now: () => now, replay: { maxClockSkewMs: 1_000 } });
    const datagram = sender.encode({ type: 'heartbeat' });
    receiver.decode(datagram, 'a:1');
    now += 1_001;
    expect(codeOf(() => receiver.decode(datagram, 'b:2'))).toBe('PROTO_ERR_CLOCK_SKEW');
  });

  it('signs many frames per millisecond with distinct nonces', () => {
    const { a, b } = pair();
    for (let i = 0; i < 5_000; i++) b.decode(a.encode({ type: 'meta-request', requestId: i, path: 'x' }), 'a:1');
  });
});
