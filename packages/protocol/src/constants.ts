/** Wire constants shared by every httpgw peer. Changing any of these is a protocol change. */

/** First two bytes of every datagram: "HG". Lets a peer drop stray traffic before decoding. */
export const MAGIC = 0x4847;
export const PROTOCOL_VERSION = 1;

/** Largest UDP payload over IPv4. */
export const MAX_DATAGRAM_BYTES = 65_507;
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
export const MD5_BYTES = 16;
export const COOKIE_BYTES = 16;
export const NONCE_BYTES = 8;
export const HMAC_BYTES = 32;

/** Request ids and chunk numbers are unsigned integers below 2^53: 64-bit on the wire, exact in JS. */
export const MAX_SAFE_UINT = Number.MAX_SAFE_INTEGER;
