/** Wire constants shared by every httpgw peer. Changing any of these is a protocol change. */

/** First two bytes of every datagram: "HG". Lets a peer drop stray traffic before decoding. */
export const MAGIC = 0x4847;
export const PROTOCOL_VERSION = 1;

/** Largest UDP payload over IPv4. */
export const MAX_DATAGRAM_BYTES = 65_507;
/**
 * Largest datagram that crosses a 1,500-byte Ethernet MTU unfragmented over IPv6 (1,500 − 40 − 8);
 * over IPv4 (20-byte header) 1,472 would fit. A network that drops IP fragments needs every datagram
 * at or below its path MTU's payload.
 */
export const MTU_SAFE_DATAGRAM_BYTES = 1_452;
/** Smallest datagram size limit a peer may name: IPv4's minimum reassembly size (RFC 791). */
export const MIN_DATAGRAM_BYTES = 576;
/**
 * Bytes of a `chunk` datagram beside its data, at most: frame header (4), auth header with the longest
 * key id (49), HMAC (32), and the msgpack map with 64-bit ids and a 3-byte bin header (87).
 */
export const CHUNK_DATAGRAM_OVERHEAD = 172;
/**
 * Bytes of a `list` datagram beside its entries, at most: frame and auth (85), the map with 64-bit
 * request id and cursor and a 3-byte array header (55).
 */
export const LIST_DATAGRAM_OVERHEAD = 140;
/** Bytes of one `list` entry beside its name's UTF-8 bytes, at most (map, keys, a 2-byte string header, 64-bit numbers). */
export const LIST_ENTRY_OVERHEAD = 56;
/** Room left in a datagram for the header, the msgpack framing of a chunk and the auth trailer. */
export const MAX_CHUNK_SIZE = 65_000;
/** Chunk size when a gateway names none: 60 KiB, one datagram below the IPv4 limit. */
export const DEFAULT_CHUNK_SIZE = 60 * 1024;
/** Smallest chunk a gateway may ask for; keeps the per-chunk overhead sane. */
export const MIN_CHUNK_SIZE = 512;
/** A chunk size whose datagram fits a 1,500-byte Ethernet MTU with IPv4/UDP headers and auth trailer. */
export const MTU_SAFE_CHUNK_SIZE = 1_200;
/** Most chunks one `chunk-request` may ask for (its `count`): one datagram instead of one per chunk. */
export const MAX_CHUNKS_PER_REQUEST = 32;

export const MAX_PATH_BYTES = 1_024;
export const MAX_PATH_SEGMENT_BYTES = 255;
export const MAX_VERSION_LENGTH = 128;
export const MAX_MESSAGE_LENGTH = 256;
export const MAX_SERVER_NAME_LENGTH = 128;
export const MAX_KEY_ID_LENGTH = 32;
export const MAX_LIST_ENTRIES = 512;
/** Entries in one `catalog` page at most. */
export const MAX_CATALOG_ENTRIES = 1_024;
/**
 * Bytes of a `catalog` datagram beside its entries, at most: frame and auth (85), the map with
 * 64-bit request id, generation and cursor, a 3-byte array header and `complete` (90).
 */
export const CATALOG_DATAGRAM_OVERHEAD = 175;
/** Bytes of one catalogue entry beside its path's UTF-8 bytes, at most (array, 2-byte string header, kind, 64-bit numbers). */
export const CATALOG_ENTRY_OVERHEAD = 24;
export const MD5_BYTES = 16;
export const COOKIE_BYTES = 16;
export const NONCE_BYTES = 8;
export const HMAC_BYTES = 32;

/** Request ids and chunk numbers are unsigned integers below 2^53: 64-bit on the wire, exact in JS. */
export const MAX_SAFE_UINT = Number.MAX_SAFE_INTEGER;
