/** One chunk's requests in flight. */
export interface Outstanding {
  /** Request id → server key, for each copy of this chunk's request in flight. */
  requests: Map<number, string>;
  /** When the oldest and the newest copy in flight were sent. */
  sentAt: number;
  lastSentAt: number;
}

/** Copies of the request for the chunk the client waits for, in flight at once, each to another server. */
export const MAX_COPIES = 3;

export interface HedgeInput {
  now: number;
  /** The best smoothed round trip among the transfer's servers. */
  bestRttMs: number;
  /** Chunk → its requests in flight. */
  outstanding: ReadonlyMap<number, Readonly<Outstanding>>;
  /** The chunk the client waits for. */
  next: number;
  /** Every chunk asked for at least once and no retry queued ("stuck at 99.9%"). */
  endgame: boolean;
}

export interface HedgePlan {
  /** `next`, when it is late enough for one more copy; undefined otherwise. */
  critical: number | undefined;
  /** In the endgame, the other late chunks with a single copy in flight, in the order of `outstanding`. */
  late: number[];
}

/**
 * Which chunks to hedge now. A chunk still missing after twice the best round trip is asked of
 * another server too, so one slow or dead server cannot hold the stream. For the chunk the client
 * waits for, at any time: once more each time every copy in flight is that late again, up to
 * MAX_COPIES, each copy to another server and, like QUIC's probes, past a full congestion window.
 * For every other chunk in the endgame, once all are asked for: one second copy, window permitting.
 * Pure: which server takes each copy is the caller's (see SourceChoice).
 */
export function planHedges({ now, bestRttMs, outstanding, next, endgame }: HedgeInput): HedgePlan {
  const delay = 2 * bestRttMs + 2;
  const waitedFor = outstanding.get(next);
  const copies = waitedFor?.requests.size ?? 0;
  const critical = waitedFor && copies < MAX_COPIES && now - waitedFor.lastSentAt >= delay * copies ? next : undefined;
  const late: number[] = [];
  if (!endgame) return { critical, late };
  for (const [chunk, { requests, sentAt }] of outstanding) {
    if (chunk !== next && requests.size === 1 && now - sentAt >= delay) late.push(chunk);
  }
  return { critical, late };
}
