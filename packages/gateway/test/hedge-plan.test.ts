import { describe, expect, it } from 'vitest';
import { MAX_COPIES, planHedges, type HedgeInput, type Outstanding } from '../src/transfer/hedge-plan.js';

// planHedges is pure: chunks in flight, a clock and a round trip in, the chunks to hedge out.
// With a best RTT of 10 ms a chunk is late after 2 × 10 + 2 = 22 ms.

const RTT = 10;
const LATE = 2 * RTT + 2;

/** A chunk asked of `servers` (one copy each), the first copy at `sentAt`, the last at `lastSentAt`. */
function inFlight(sentAt: number, servers: string[] = ['a'], lastSentAt = sentAt): Outstanding {
  return { requests: new Map(servers.map((server, i) => [100 + i, server])), sentAt, lastSentAt };
}

function plan(outstanding: Record<number, Outstanding>, input: Partial<HedgeInput> = {}) {
  return planHedges({ now: 1_000, bestRttMs: RTT, next: 0, endgame: false, outstanding: new Map(Object.entries(outstanding).map(([chunk, o]) => [Number(chunk), o])), ...input });
}

describe('planHedges', () => {
  it('hedges nothing that is not late', () => {
    expect(plan({ 0: inFlight(1_000 - LATE + 1), 1: inFlight(0) })).toEqual({ critical: undefined, late: [] });
    expect(plan({})).toEqual({ critical: undefined, late: [] });
  });

  it('hedges the chunk the client waits for once its copies are late, again as each round is late, up to MAX_COPIES', () => {
    expect(plan({ 0: inFlight(1_000 - LATE) }).critical).toBe(0);
    // Two copies in flight: the next one waits twice as long since the last was sent.
    expect(plan({ 0: inFlight(0, ['a', 'b'], 1_000 - 2 * LATE + 1) }).critical).toBeUndefined();
    expect(plan({ 0: inFlight(0, ['a', 'b'], 1_000 - 2 * LATE) }).critical).toBe(0);
    const most = Array.from({ length: MAX_COPIES }, (_, i) => `s${i}`);
    expect(plan({ 0: inFlight(0, most, 0) }).critical).toBeUndefined();
    // Not in flight (arrived, or queued for a retry): nothing to hedge.
    expect(plan({ 1: inFlight(0) }).critical).toBeUndefined();
  });

  it('waits for the round trip it is given', () => {
    expect(plan({ 0: inFlight(1_000 - LATE) }, { bestRttMs: 50 }).critical).toBeUndefined();
    expect(plan({ 0: inFlight(1_000 - 102) }, { bestRttMs: 50 }).critical).toBe(0);
  });

  it('in the endgame, hedges every other late chunk with a single copy in flight, once', () => {
    const outstanding = { 0: inFlight(0), 3: inFlight(1_000 - LATE), 5: inFlight(1_000 - LATE + 1), 7: inFlight(0, ['a', 'b']), 9: inFlight(0) };
    expect(plan(outstanding, { endgame: true })).toEqual({ critical: 0, late: [3, 9] });
    // Before the endgame only the chunk the client waits for is hedged.
    expect(plan(outstanding, { endgame: false })).toEqual({ critical: 0, late: [] });
  });
});
