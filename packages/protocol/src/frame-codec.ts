import { HMAC_BYTES } from './constants.js';
import { decodeFrame } from './decode.js';
import { encode, encodeParts } from './encode.js';
import type { FrameKey } from './frame.js';
import type { Packet } from './packets.js';
import { RecentFrames, ReplayWindow, createNonceCounter, type ReplayWindowInit } from './replay-window.js';

/** Registration traffic: answered to any address that asks, so a capture resent from anywhere must be refused. */
const CONTROL_TYPES: ReadonlySet<Packet['type']> = new Set(['hello', 'challenge', 'register', 'registered', 'heartbeat', 'heartbeat-ack', 'leave']);

export interface FrameCodecInit {
  /** Shared secret; without one, frames are neither signed nor checked. */
  key?: FrameKey | undefined;
  now?: () => number;
  replay?: ReplayWindowInit;
}

/**
 * What one peer needs to speak the protocol: encode packets (signed when a key is set) and decode
 * datagrams (MAC, clock skew and replay checked when a key is set). Throws ProtocolError on any refusal.
 */
export interface FrameCodec {
  readonly authenticated: boolean;
  encode(packet: Packet): Buffer;
  /** The same datagram as `encode`, in parts for scatter/gather sends (see `encodeParts`). */
  encodeParts(packet: Packet): Uint8Array[];
  /** `sender` identifies the source (address:port) for the replay window. */
  decode(datagram: Uint8Array, sender: string): Packet;
}

export function createFrameCodec(init: FrameCodecInit = {}): FrameCodec {
  const now = init.now ?? Date.now;
  const key = init.key;
  if (!key) {
    return { authenticated: false, encode: (packet) => encode(packet), encodeParts: (packet) => encodeParts(packet), decode: (datagram) => decodeFrame(datagram).packet };
  }
  const keys = new Map([[key.id, key]]);
  const nextNonce = createNonceCounter(now);
  const replay = new ReplayWindow(init.replay);
  const recent = new RecentFrames({ maxClockSkewMs: init.replay?.maxClockSkewMs });
  return {
    authenticated: true,
    encode: (packet) => encode(packet, { key, timestampMs: now(), nonce: nextNonce() }),
    encodeParts: (packet) => encodeParts(packet, { key, timestampMs: now(), nonce: nextNonce() }),
    decode(datagram, sender) {
      const { packet, auth } = decodeFrame(datagram, keys);
      // decodeFrame with keys only returns after the MAC verified, so auth is always present here.
      if (auth) replay.check(`${auth.keyId}@${sender}`, auth.timestampMs, auth.nonce, now());
      // The MAC closes the datagram: identical tags mean the same frame, resent.
      if (auth && CONTROL_TYPES.has(packet.type)) recent.check(Buffer.from(datagram.subarray(datagram.length - HMAC_BYTES)).toString('base64'), auth.timestampMs, now());
      return packet;
    },
  };
}
