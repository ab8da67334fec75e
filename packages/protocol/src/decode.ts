import { packr } from './codec.js';
import {
  COOKIE_BYTES,
  MAX_CHUNKS_PER_REQUEST,
  MAX_CHUNK_SIZE,
  MAX_CATALOG_ENTRIES,
  MAX_LIST_ENTRIES,
  MAX_MESSAGE_LENGTH,
  MAX_PATH_BYTES,
  MAX_PATH_SEGMENT_BYTES,
  MAX_SERVER_NAME_LENGTH,
  MAX_VERSION_LENGTH,
  MD5_BYTES,
  MAX_SAFE_UINT,
  MIN_CHUNK_SIZE,
  MAX_DATAGRAM_BYTES,
  MIN_DATAGRAM_BYTES,
} from './constants.js';
import { ProtocolError } from './errors.js';
import { asFields, bool, bytes, finite, int, list, oneOf, str, uint, type Fields } from './fields.js';
import { openFrame, type FrameAuth, type FrameKey } from './frame.js';
import type { CatalogEntry, ErrorCode, ListEntry, Packet, PacketType } from './packets.js';

const ERROR_CODES: readonly ErrorCode[] = ['not-found', 'stale', 'unreadable', 'bad-request', 'io', 'busy'];

/** One validator per packet kind: reads every field the kind has, and nothing else. */
const validators: { [T in PacketType]: (fields: Fields) => Extract<Packet, { type: T }> } = {
  hello: (f) => ({ type: 'hello', name: str(f, 'name', MAX_SERVER_NAME_LENGTH) }),
  challenge: (f) => ({ type: 'challenge', cookie: bytes(f, 'cookie', COOKIE_BYTES, COOKIE_BYTES) }),
  register: (f) => ({
    type: 'register',
    name: str(f, 'name', MAX_SERVER_NAME_LENGTH),
    cookie: bytes(f, 'cookie', COOKIE_BYTES, COOKIE_BYTES),
    ...catalogGeneration(f),
  }),
  registered: (f) => ({ type: 'registered', heartbeatMs: int(f, 'heartbeatMs', 10, 3_600_000) }),
  heartbeat: (f) => ({ type: 'heartbeat', ...catalogGeneration(f) }),
  refused: (f) => ({ type: 'refused', reason: oneOf(f, 'reason', ['pool-full'] as const), retryAfterMs: int(f, 'retryAfterMs', 0, 3_600_000) }),
  'heartbeat-ack': (f) => ({
    type: 'heartbeat-ack',
    known: bool(f, 'known'),
    ...(Object.hasOwn(f, 'heartbeatMs') ? { heartbeatMs: int(f, 'heartbeatMs', 10, 3_600_000) } : {}),
  }),
  leave: () => ({ type: 'leave' }),
  'meta-request': (f) => ({
    type: 'meta-request',
    requestId: uint(f, 'requestId'),
    path: str(f, 'path', MAX_PATH_BYTES),
    ...(Object.hasOwn(f, 'chunkSize') ? { chunkSize: int(f, 'chunkSize', MIN_CHUNK_SIZE, MAX_CHUNK_SIZE) } : {}),
  }),
  meta: (f) => ({
    type: 'meta',
    requestId: uint(f, 'requestId'),
    kind: oneOf(f, 'kind', ['file', 'directory', 'none'] as const),
    size: uint(f, 'size'),
    mtimeMs: finite(f, 'mtimeMs'),
    version: str(f, 'version', MAX_VERSION_LENGTH),
  }),
  'chunk-request': (f) => ({
    type: 'chunk-request',
    requestId: uint(f, 'requestId'),
    path: str(f, 'path', MAX_PATH_BYTES),
    version: str(f, 'version', MAX_VERSION_LENGTH),
    chunk: uint(f, 'chunk'),
    chunkSize: int(f, 'chunkSize', MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
    ...chunkRange(f),
  }),
  chunk: (f) => ({
    type: 'chunk',
    requestId: uint(f, 'requestId'),
    chunk: uint(f, 'chunk'),
    hasNext: bool(f, 'hasNext'),
    md5: bytes(f, 'md5', MD5_BYTES, MD5_BYTES),
    data: bytes(f, 'data', 0, MAX_CHUNK_SIZE),
  }),
  'list-request': (f) => ({
    type: 'list-request',
    requestId: uint(f, 'requestId'),
    path: str(f, 'path', MAX_PATH_BYTES),
    cursor: uint(f, 'cursor'),
    ...(Object.hasOwn(f, 'maxDatagramSize') ? { maxDatagramSize: int(f, 'maxDatagramSize', MIN_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES) } : {}),
  }),
  list: (f) => ({
    type: 'list',
    requestId: uint(f, 'requestId'),
    entries: list(f, 'entries', MAX_LIST_ENTRIES).map(listEntry),
    next: int(f, 'next', -1, Number.MAX_SAFE_INTEGER),
  }),
  'catalog-request': (f) => ({
    type: 'catalog-request',
    requestId: uint(f, 'requestId'),
    cursor: uint(f, 'cursor'),
    ...(Object.hasOwn(f, 'maxDatagramSize') ? { maxDatagramSize: int(f, 'maxDatagramSize', MIN_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES) } : {}),
  }),
  catalog: (f) => ({
    type: 'catalog',
    requestId: uint(f, 'requestId'),
    generation: uint(f, 'generation'),
    entries: list(f, 'entries', MAX_CATALOG_ENTRIES).map(catalogEntry),
    next: int(f, 'next', -1, Number.MAX_SAFE_INTEGER),
    complete: bool(f, 'complete'),
  }),
  error: (f) => ({
    type: 'error',
    requestId: uint(f, 'requestId'),
    code: oneOf(f, 'code', ERROR_CODES),
    message: str(f, 'message', MAX_MESSAGE_LENGTH),
  }),
};

/** `count` is optional (1 when absent); the ids and chunk numbers it spans must stay exact integers. */
function chunkRange(f: Fields): { count?: number } {
  if (!Object.hasOwn(f, 'count')) return {};
  const count = int(f, 'count', 1, MAX_CHUNKS_PER_REQUEST);
  if (uint(f, 'requestId') > MAX_SAFE_UINT - count || uint(f, 'chunk') > MAX_SAFE_UINT - count) {
    throw new ProtocolError('PROTO_ERR_BAD_FIELD', 'field "count" runs past the largest request id or chunk number');
  }
  return { count };
}

/** `catalog` is optional on `register` and `heartbeat` (servers from before catalogues send none). */
function catalogGeneration(f: Fields): { catalog?: number } {
  return Object.hasOwn(f, 'catalog') ? { catalog: uint(f, 'catalog') } : {};
}

/** [path, 'f' | 'd', size, mtimeMs]; the gateway checks each path's canonical form (normalizePath) itself. */
function catalogEntry(value: unknown, index: number): CatalogEntry {
  if (!Array.isArray(value) || value.length !== 4) throw new ProtocolError('PROTO_ERR_BAD_FIELD', `catalog entry ${index} must be [path, kind, size, mtimeMs]`);
  const f: Fields = { path: value[0], kind: value[1], size: value[2], mtimeMs: value[3] };
  return [str(f, 'path', MAX_PATH_BYTES), oneOf(f, 'kind', ['f', 'd'] as const), uint(f, 'size'), finite(f, 'mtimeMs')];
}

function listEntry(value: unknown): ListEntry {
  const f = asFields(value);
  return {
    name: str(f, 'name', MAX_PATH_SEGMENT_BYTES),
    kind: oneOf(f, 'kind', ['file', 'directory'] as const),
    size: uint(f, 'size'),
    mtimeMs: finite(f, 'mtimeMs'),
  };
}

function isPacketType(value: unknown): value is PacketType {
  return typeof value === 'string' && Object.hasOwn(validators, value);
}

/** Decodes a frame body (msgpack) into a validated packet. Throws only ProtocolError. */
export function decodeBody(body: Uint8Array): Packet {
  let value: unknown;
  try {
    value = packr.unpack(body);
  } catch (error) {
    throw new ProtocolError('PROTO_ERR_MALFORMED', `not valid msgpack: ${error instanceof Error ? error.message : String(error)}`);
  }
  const fields = asFields(value);
  const type = Object.hasOwn(fields, 'type') ? fields.type : undefined;
  if (!isPacketType(type)) {
    // Never String(type): a map such as {toString: 0} makes that throw a TypeError.
    throw new ProtocolError('PROTO_ERR_UNKNOWN_TYPE', `unknown packet type ${typeof type === 'string' ? JSON.stringify(type).slice(0, 40) : `of kind ${typeof type}`}`);
  }
  return validators[type](fields);
}

export interface DecodedFrame {
  packet: Packet;
  auth: FrameAuth | undefined;
}

/** Opens and decodes one datagram. With `keys`, only frames carrying a valid HMAC are accepted. */
export function decodeFrame(datagram: Uint8Array, keys?: ReadonlyMap<string, FrameKey>): DecodedFrame {
  const { body, auth } = openFrame(datagram, keys);
  return { packet: decodeBody(body), auth };
}

/** Decodes one unauthenticated datagram into a validated packet. Throws only ProtocolError. */
export function decode(datagram: Uint8Array): Packet {
  return decodeFrame(datagram).packet;
}
