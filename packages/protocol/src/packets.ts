/**
 * Every packet kind, as a discriminated union on `type`.
 * Directions: S→G file server to gateway, G→S gateway to file server.
 */

/** S→G: first step of registration. The gateway answers with a cookie bound to the sender's address. */
export interface HelloPacket {
  type: 'hello';
  /** Human-readable server name for logs. */
  name: string;
}

/** G→S: proves the server receives at the address it claims; no bigger than the hello it answers. */
export interface ChallengePacket {
  type: 'challenge';
  cookie: Uint8Array;
}

/** S→G: the echoed cookie; admits the server. */
export interface RegisterPacket {
  type: 'register';
  name: string;
  cookie: Uint8Array;
  /** The generation of the server's catalogue (see CatalogPacket); absent: the server keeps none. */
  catalog?: number;
}

/** G→S: the server is in the pool and should heartbeat at this interval. */
export interface RegisteredPacket {
  type: 'registered';
  heartbeatMs: number;
}

/** S→G: liveness. */
export interface HeartbeatPacket {
  type: 'heartbeat';
  /** The generation of the server's catalogue now: a new one tells the gateway to fetch it again. */
  catalog?: number;
}

export type RefusalReason = 'pool-full';

/**
 * G→S: the answer to a `register` the gateway will not admit (the address is validated by then: the
 * cookie came back). The server backs off at least `retryAfterMs` (with jitter) and tries again.
 */
export interface RefusedPacket {
  type: 'refused';
  reason: RefusalReason;
  retryAfterMs: number;
}

/** G→S: answer to a heartbeat; `known: false` tells a server the gateway has forgotten it (restart, eviction): register again. */
export interface HeartbeatAckPacket {
  type: 'heartbeat-ack';
  known: boolean;
  /** The interval to heartbeat at from now on (a growing pool is told a longer one); absent: keep the one you have. */
  heartbeatMs?: number;
}

/** S→G: the server is shutting down. */
export interface LeavePacket {
  type: 'leave';
}

export interface MetaRequestPacket {
  type: 'meta-request';
  requestId: number;
  path: string;
  /**
   * The chunk size the gateway will ask for (default DEFAULT_CHUNK_SIZE): a file's version is the
   * digest of its chunks' MD5s at this size, and those MD5s are what the chunks are later sent with.
   */
  chunkSize?: number;
}

export type EntryKind = 'file' | 'directory' | 'none';

/**
 * S→G: what the server holds at `path`. `version` identifies the content: the file's size and a
 * digest of its chunks' MD5s, so two servers report the same version only for the same bytes.
 */
export interface MetaPacket {
  type: 'meta';
  requestId: number;
  kind: EntryKind;
  size: number;
  mtimeMs: number;
  version: string;
}

export interface ChunkRequestPacket {
  type: 'chunk-request';
  requestId: number;
  path: string;
  /** The version the gateway saw in `meta`; the server refuses with `stale` if the file changed since. */
  version: string;
  chunk: number;
  chunkSize: number;
  /**
   * Chunks `chunk..chunk+count-1` (default 1), answered as `count` separate `chunk` packets (or
   * errors) with request ids `requestId..requestId+count-1`, in that order.
   */
  count?: number;
}

export interface ChunkPacket {
  type: 'chunk';
  requestId: number;
  chunk: number;
  hasNext: boolean;
  /** MD5 of `data`: catches accidents, not attackers (authentication does that). */
  md5: Uint8Array;
  data: Uint8Array;
}

export interface ListRequestPacket {
  type: 'list-request';
  requestId: number;
  /** Directory path, '' for the root. */
  path: string;
  /** Index of the first entry wanted; pages keep every answer inside one datagram. */
  cursor: number;
  /**
   * The largest datagram the gateway can receive (MIN_DATAGRAM_BYTES..MAX_DATAGRAM_BYTES, default
   * MAX_DATAGRAM_BYTES): the server cuts its page to fit (see listPageFits).
   */
  maxDatagramSize?: number;
}

/** G→S: a page of the server's catalogue (every file and directory it serves), from `cursor`. */
export interface CatalogRequestPacket {
  type: 'catalog-request';
  requestId: number;
  cursor: number;
  /** As in `list-request`: the server cuts its page to fit (see catalogEntriesBudget). */
  maxDatagramSize?: number;
}

/** One catalogue entry: a path from the root, its kind, and (files) size and modification time. */
export type CatalogEntry = [path: string, kind: 'f' | 'd', size: number, mtimeMs: number];

/**
 * S→G: one page of the catalogue of `generation`, sorted by path. `complete: false` says the catalogue
 * leaves out something the server serves (too many entries, a path too long for a page, a directory
 * that could not be read): the gateway then asks this server about every path it does not list.
 */
export interface CatalogPacket {
  type: 'catalog';
  requestId: number;
  generation: number;
  entries: CatalogEntry[];
  /** Cursor of the next page, or -1 when this was the last. */
  next: number;
  complete: boolean;
}

export interface ListEntry {
  name: string;
  kind: 'file' | 'directory';
  size: number;
  mtimeMs: number;
}

export interface ListPacket {
  type: 'list';
  requestId: number;
  entries: ListEntry[];
  /** Cursor of the next page, or -1 when this was the last. */
  next: number;
}

/**
 * `stale`: the file changed (it no longer has the version asked for, or changed while being read).
 * `unreadable`: the file exists but the server may not read it (permissions). `busy`: too many reads
 * in progress, or the file's digest is still being computed: ask again shortly. `io`: any other read error.
 */
export type ErrorCode = 'not-found' | 'stale' | 'unreadable' | 'bad-request' | 'io' | 'busy';

export interface ErrorPacket {
  type: 'error';
  requestId: number;
  code: ErrorCode;
  message: string;
}

export type Packet =
  | HelloPacket
  | ChallengePacket
  | RegisterPacket
  | RegisteredPacket
  | HeartbeatPacket
  | RefusedPacket
  | HeartbeatAckPacket
  | LeavePacket
  | MetaRequestPacket
  | MetaPacket
  | ChunkRequestPacket
  | ChunkPacket
  | ListRequestPacket
  | ListPacket
  | CatalogRequestPacket
  | CatalogPacket
  | ErrorPacket;

export type PacketType = Packet['type'];
export type PacketOf<T extends PacketType> = Extract<Packet, { type: T }>;
