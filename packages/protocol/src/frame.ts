import { createHmac, timingSafeEqual } from 'node:crypto';
import { HMAC_BYTES, MAGIC, MAX_DATAGRAM_BYTES, MAX_KEY_ID_LENGTH, NONCE_BYTES, PROTOCOL_VERSION } from './constants.js';
import { ProtocolError } from './errors.js';

/**
 * Frame layout (all integers big-endian):
 *
 *   magic u16 | version u8 | flags u8 | [auth header] | body (msgpack) | [hmac 32 B]
 *   auth header = keyIdLength u8 | keyId | timestampMs u64 | nonce 8 B
 *
 * With flag AUTH set, the HMAC-SHA256 covers every byte before it, header included.
 */
export const FLAG_AUTH = 0x01;
const HEADER_BYTES = 4;

export interface FrameKey {
  /** Names the secret, so secrets can be rotated; sent in clear. */
  id: string;
  secret: Uint8Array;
}

export interface FrameAuth {
  keyId: string;
  timestampMs: number;
  /** 8 bytes: a per-sender counter that only grows, so the receiver can refuse replays (see ReplayWindow). */
  nonce: bigint;
}

export interface OpenedFrame {
  body: Uint8Array;
  auth: FrameAuth | undefined;
}

export interface SealOptions {
  key: FrameKey;
  timestampMs: number;
  nonce: bigint;
}

/**
 * The frame of a body given in parts, as parts: the header (and auth header), the body's parts as
 * they are, then the MAC when authenticated. Sent as one datagram with scatter/gather, a large part
 * (a chunk's data) is never copied in user space; `sealFrame` is its concatenation.
 */
export function sealFrameParts(body: readonly Uint8Array[], options?: SealOptions): Uint8Array[] {
  const start = frameStart(options);
  if (!options) return [start, ...body];
  const hmac = createHmac('sha256', options.key.secret).update(start);
  for (const part of body) hmac.update(part);
  return [start, ...body, hmac.digest()];
}

/** Wraps an encoded body into a frame, authenticated when `options` is given. */
export function sealFrame(body: Uint8Array, options?: SealOptions): Buffer {
  return Buffer.concat(sealFrameParts([body], options));
}

/** Everything before the body: the header, and the auth header when authenticated. */
function frameStart(options: SealOptions | undefined): Buffer {
  if (!options) {
    const start = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(start, 0);
    return start;
  }
  const keyId = Buffer.from(options.key.id, 'utf8');
  if (keyId.length === 0 || keyId.length > MAX_KEY_ID_LENGTH) throw new RangeError('key id must be 1..32 bytes');
  const start = Buffer.allocUnsafe(HEADER_BYTES + 1 + keyId.length + 8 + NONCE_BYTES);
  writeHeader(start, FLAG_AUTH);
  let at = HEADER_BYTES;
  start[at++] = keyId.length;
  at += keyId.copy(start, at);
  start.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(options.timestampMs))), at);
  at += 8;
  start.writeBigUInt64BE(BigInt.asUintN(64, options.nonce), at);
  return start;
}

/**
 * Checks the frame header and, when `keys` is given, the HMAC. Returns the body to decode.
 * A receiver configured with keys refuses unauthenticated frames, and one without keys refuses
 * authenticated ones (a mismatch in configuration must be loud, not silently half-secure).
 */
export function openFrame(frame: Uint8Array, keys?: ReadonlyMap<string, FrameKey>): OpenedFrame {
  if (frame.length < HEADER_BYTES) throw new ProtocolError('PROTO_ERR_TOO_SHORT', 'datagram shorter than the frame header');
  if (frame.length > MAX_DATAGRAM_BYTES) throw new ProtocolError('PROTO_ERR_TOO_LONG', 'datagram longer than a UDP payload');
  if (((frame[0]! << 8) | frame[1]!) !== MAGIC) throw new ProtocolError('PROTO_ERR_BAD_MAGIC', 'not an httpgw datagram');
  if (frame[2] !== PROTOCOL_VERSION) {
    throw new ProtocolError('PROTO_ERR_BAD_VERSION', `protocol version ${frame[2]} is not supported (want ${PROTOCOL_VERSION})`);
  }
  const flags = frame[3]!;
  if ((flags & ~FLAG_AUTH) !== 0) throw new ProtocolError('PROTO_ERR_BAD_FLAGS', 'unknown frame flags');
  const authenticated = (flags & FLAG_AUTH) !== 0;
  if (!keys) {
    if (authenticated) throw new ProtocolError('PROTO_ERR_AUTH_UNEXPECTED', 'authenticated datagram but no secret is configured');
    return { body: frame.subarray(HEADER_BYTES), auth: undefined };
  }
  if (!authenticated) throw new ProtocolError('PROTO_ERR_AUTH_REQUIRED', 'datagram is not authenticated');
  let at = HEADER_BYTES;
  const keyIdLength = frame[at++] ?? 0;
  const bodyStart = at + keyIdLength + 8 + NONCE_BYTES;
  if (keyIdLength === 0 || keyIdLength > MAX_KEY_ID_LENGTH || bodyStart + HMAC_BYTES > frame.length) {
    throw new ProtocolError('PROTO_ERR_TOO_SHORT', 'authenticated datagram too short');
  }
  const view = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  const keyId = view.toString('utf8', at, at + keyIdLength);
  at += keyIdLength;
  const key = keys.get(keyId);
  if (!key) throw new ProtocolError('PROTO_ERR_BAD_KEY', `unknown key id ${JSON.stringify(keyId)}`);
  const macStart = frame.length - HMAC_BYTES;
  const expected = createHmac('sha256', key.secret).update(view.subarray(0, macStart)).digest();
  if (!timingSafeEqual(expected, view.subarray(macStart))) throw new ProtocolError('PROTO_ERR_BAD_MAC', 'bad message authentication code');
  const timestampMs = Number(view.readBigUInt64BE(at));
  const nonce = view.readBigUInt64BE(at + 8);
  return { body: view.subarray(bodyStart, macStart), auth: { keyId, timestampMs, nonce } };
}

function writeHeader(frame: Buffer, flags: number): void {
  frame.writeUInt16BE(MAGIC, 0);
  frame[2] = PROTOCOL_VERSION;
  frame[3] = flags;
}

/**
 * Turns a shared secret into a frame key. The key id is a short fingerprint of the secret, so peers
 * with different secrets say "unknown key id" instead of failing MAC checks one datagram at a time.
 */
export function keyFromSecret(secret: Uint8Array): FrameKey {
  if (secret.length < 16) throw new RangeError('a secret must be at least 16 bytes');
  return { id: createHmac('sha256', secret).update('httpgw key id').digest('hex').slice(0, 8), secret };
}
