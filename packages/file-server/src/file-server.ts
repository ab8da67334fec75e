import { hostname } from 'node:os';
import { MAX_DATAGRAM_BYTES, createFrameCodec, isDatagramSize, listEntriesBudget, type CatalogRequestPacket, type ChunkRequestPacket, type ErrorCode, type FrameKey, type ListRequestPacket, type MetaRequestPacket, type Packet } from '@httpgw/protocol';
import { DEFAULT_MAX_DATAGRAM_RATE, DatagramEndpoint, formatHostPort, resolveHost, silentLogger, type Logger } from '@httpgw/runtime';
import { DigestPendingError, ForbiddenPathError, NotFoundError, StaleVersionError, UnreadableError } from './store/errors.js';
import { FileStore, type ChunkRead } from './store/file-store.js';
import { Catalogue } from './store/catalogue.js';
import { GatewayLink, type GatewayAddress } from './link/gateway-link.js';
import { TokenBucket, defaultBurst } from './pacing/token-bucket.js';

export interface FileServerInit {
  gateways: GatewayAddress[];
  /** Directory to serve (default: the current directory). */
  root?: string;
  /** Local UDP address and port (default 0.0.0.0, or the dual-stack :: when a gateway has an IPv6 address; port 0). */
  bindAddress?: string;
  bindPort?: number;
  name?: string;
  allowDotfiles?: boolean;
  /** Shared secret: every datagram is signed and checked (see docs/SECURITY.md). */
  key?: FrameKey;
  /**
   * Largest datagram this server sends (default MAX_DATAGRAM_BYTES): listing pages are cut to fit
   * it and the limit the gateway names in its list requests, whichever is smaller.
   */
  maxDatagramSize?: number;
  /** Bytes per second of chunk data this server sends at most, over all gateways (token bucket); none: no cap. */
  maxRate?: number;
  /** Reads in progress at most; requests beyond it are answered `busy`. */
  maxConcurrentReads?: number;
  /** Datagrams per second accepted from one gateway address; the excess is dropped and counted. */
  maxDatagramRate?: number;
  socketBufferBytes?: number;
  /**
   * How often the catalogue (what this server holds, for the gateway's holder index) is walked again:
   * at least this often, and at least 20 times as long as the last walk took (default 10 s; 0: no
   * catalogue, the gateway asks this server about every path as before). A file added shows in the
   * gateway's index within about this long plus one heartbeat.
   */
  catalogRescanMs?: number;
  /** Entries in the catalogue at most (default 100,000); a larger tree gives an incomplete one. */
  catalogMaxEntries?: number;
  /** How long an open file is trusted before its path is checked again for a replacement (rename); default 1 s. */
  revalidateMs?: number;
  logger?: Logger;
}

export interface FileServerStats {
  datagramsIn: number;
  refused: number;
  fromStrangers: number;
  /** Dropped undecoded: their source was over its datagram rate. */
  rateLimited: number;
  chunksSent: number;
  bytesSent: number;
  busy: number;
  /** Chunk MD5s computed: each file version once per chunk size, when it is first asked for. */
  digestsComputed: number;
  datagramsOut: number;
  bytesOut: number;
  sendErrors: number;
  /** Error answers sent, by code. */
  errors: Record<ErrorCode, number>;
  /** Gateways this server is registered with now, of those configured. */
  gatewaysRegistered: number;
  gatewaysConfigured: number;
}

export interface FileServer {
  readonly address: { address: string; port: number };
  /** A snapshot of the counters, taken at each read. */
  readonly stats: FileServerStats;
  /** Resolves once every configured gateway has admitted this server. */
  whenRegistered(): Promise<void>;
  /**
   * Says goodbye to every gateway (they ask no more of it), answers `busy` to any request still
   * arriving, lets the reads in flight finish for up to `drainMs` (default 0), then closes.
   */
  stop(drainMs?: number): Promise<void>;
}

/** Starts a file server: binds its UDP socket, then registers with every gateway until admitted. */
export async function createFileServer(init: FileServerInit): Promise<FileServer> {
  const logger = init.logger ?? silentLogger;
  const store = new FileStore({
    root: init.root ?? process.cwd(),
    allowDotfiles: init.allowDotfiles ?? false,
    ...(init.revalidateMs !== undefined ? { revalidateMs: init.revalidateMs } : {}),
  });
  const maxDatagramSize = init.maxDatagramSize ?? MAX_DATAGRAM_BYTES;
  if (!isDatagramSize(maxDatagramSize)) throw new RangeError(`max datagram size must be an integer in 576..${MAX_DATAGRAM_BYTES}`);
  // Gateways are resolved before the socket is bound: their family decides the socket's.
  const resolved = await Promise.all(init.gateways.map(async (gateway) => ({ ...gateway, ...(await resolveHost(gateway.host)) })));
  const bindAddress = init.bindAddress ?? (resolved.some((gateway) => gateway.family === 6) ? '::' : '0.0.0.0');
  // Only the dual-stack :: reaches both families: say a mismatch at start, not as send errors later.
  const mismatch = bindAddress.includes(':') ? (bindAddress === '::' ? undefined : resolved.find((gateway) => gateway.family === 4)) : resolved.find((gateway) => gateway.family === 6);
  if (mismatch) {
    const family = (gateway: { family: 4 | 6 }) => `IPv${gateway.family}`;
    throw new Error(`gateway ${formatHostPort(mismatch.address, mismatch.port)} is ${family(mismatch)} but the local address ${bindAddress} is ${family({ family: mismatch.family === 4 ? 6 : 4 })}: bind to :: (both families) or an address of the gateway's family`);
  }
  const root = await store.init();
  const catalogRescanMs = init.catalogRescanMs ?? 10_000;
  const catalogue = catalogRescanMs > 0 ? new Catalogue(store.pathGuard, { ...(init.catalogMaxEntries !== undefined ? { maxEntries: init.catalogMaxEntries } : {}) }) : undefined;
  let catalogTimer: NodeJS.Timeout | undefined;
  const rescan = () => {
    if (!catalogue) return;
    const before = catalogue.generation;
    catalogue.rescan().then(
      (snapshot) => {
        if (closing) return;
        if (snapshot.generation !== before) for (const link of links) link.catalogChanged();
        catalogTimer = setTimeout(rescan, Math.max(catalogRescanMs, 20 * snapshot.scanMs));
        catalogTimer.unref();
      },
      (error: unknown) => {
        logger.warn('catalogue walk failed', { error: error instanceof Error ? error.message : String(error) });
        if (!closing) (catalogTimer = setTimeout(rescan, catalogRescanMs)).unref();
      },
    );
  };
  const codec = createFrameCodec({ key: init.key });
  const links: GatewayLink[] = [];
  const linkAt = (address: string, port: number) => links.find((link) => link.address === address && link.port === port);
  const endpoint = await DatagramEndpoint.open({
    address: bindAddress,
    port: init.bindPort ?? 0,
    codec,
    socketBufferBytes: init.socketBufferBytes ?? 4 * 1024 * 1024,
    maxDatagramRate: init.maxDatagramRate ?? DEFAULT_MAX_DATAGRAM_RATE,
    logger,
    // Only the gateways we registered with are heard (and answered): no reflection towards anyone else.
    admit: (address, port) => linkAt(address, port)?.label,
    onPacket: (packet, address, port) => onPacket(linkAt(address, port)!, packet),
  });
  const { address, port } = endpoint.address;
  const name = init.name ?? `${hostname()}:${port}`;
  const maxConcurrentReads = init.maxConcurrentReads ?? 512;
  const served = { chunksSent: 0, bytesSent: 0, busy: 0 };
  const errors: Record<ErrorCode, number> = { 'not-found': 0, stale: 0, unreadable: 0, 'bad-request': 0, io: 0, busy: 0 };
  const stats = (): FileServerStats => {
    const { datagramsIn, datagramsOut, bytesOut, sendErrors, refused, fromStrangers, rateLimited } = endpoint.counters;
    return {
      datagramsIn,
      refused,
      fromStrangers,
      rateLimited,
      ...served,
      digestsComputed: store.counters.digestsComputed,
      datagramsOut,
      bytesOut,
      sendErrors,
      errors: { ...errors },
      gatewaysRegistered: links.filter((link) => link.registered).length,
      gatewaysConfigured: links.length,
    };
  };
  let readsInProgress = 0;
  const pacer = init.maxRate === undefined ? undefined : new TokenBucket(init.maxRate, defaultBurst(init.maxRate, MAX_DATAGRAM_BYTES));
  const send = (packet: Packet, toAddress: string, toPort: number, onSent?: () => void) => endpoint.send(packet, toAddress, toPort, onSent);

  for (const gateway of resolved) {
    const link = new GatewayLink({
      address: gateway.address,
      port: gateway.port,
      label: formatHostPort(gateway.host, gateway.port),
      name,
      logger,
      catalog: () => catalogue?.generation,
      send: (packet) => send(packet, gateway.address, gateway.port),
    });
    links.push(link);
  }

  const replyError = (link: GatewayLink, requestId: number, code: ErrorCode, message: string) => {
    errors[code]++;
    return send({ type: 'error', requestId, code, message: truncateUtf8(message, 200) }, link.address, link.port);
  };

  const serveMeta = async (link: GatewayLink, request: MetaRequestPacket) => {
    const meta = await store.meta(request.path, request.chunkSize).catch((error: unknown) => {
      // Forbidden paths look exactly like missing ones: no probing of what lies outside the root.
      if (error instanceof ForbiddenPathError) return { kind: 'none' as const, size: 0, mtimeMs: 0, version: '' };
      throw error;
    });
    send({ type: 'meta', requestId: request.requestId, ...meta }, link.address, link.port);
  };

  const sendChunk = (link: GatewayLink, requestId: number, chunk: number, read: ChunkRead) => {
    served.bytesSent += send({ type: 'chunk', requestId, chunk, hasNext: read.hasNext, md5: read.md5, data: read.data }, link.address, link.port, () => store.release(read.data));
    served.chunksSent++;
  };

  /** One answer per chunk asked for, in order: the chunk, or an error under that chunk's request id. */
  const serveChunks = async (link: GatewayLink, request: ChunkRequestPacket) => {
    if (pacer) return servePacedChunks(link, request, pacer);
    const count = request.count ?? 1;
    for (let i = 0; i < count; i++) {
      const requestId = request.requestId + i;
      try {
        sendChunk(link, requestId, request.chunk + i, await store.readChunk(request.path, request.version, request.chunk + i, request.chunkSize));
      } catch (error) {
        replyFailure(link, requestId, request.path, error);
      }
    }
  };

  /**
   * Under --max-rate: answers leave in the order the requests came (a gateway takes answers that
   * overtake earlier requests as their loss), each when the token bucket allows. A request reads
   * its chunks first and then waits for the previous request's answers to be out.
   */
  let pacedTail: Promise<void> = Promise.resolve();
  const servePacedChunks = async (link: GatewayLink, request: ChunkRequestPacket, bucket: TokenBucket) => {
    const previous = pacedTail;
    let done!: () => void;
    pacedTail = new Promise((resolve) => (done = resolve));
    try {
      const count = request.count ?? 1;
      const reads = [];
      for (let i = 0; i < count; i++) reads.push(await store.readChunk(request.path, request.version, request.chunk + i, request.chunkSize).catch((error: unknown) => ({ error })));
      await previous;
      for (let i = 0; i < count; i++) {
        const requestId = request.requestId + i;
        const read = reads[i]!;
        if ('error' in read) {
          replyFailure(link, requestId, request.path, read.error);
          continue;
        }
        const wait = bucket.reserve(read.data.length);
        if (wait > 0) await sleep(wait);
        sendChunk(link, requestId, request.chunk + i, read);
      }
    } finally {
      done();
    }
  };

  const serveCatalog = async (link: GatewayLink, request: CatalogRequestPacket) => {
    if (!catalogue) return replyError(link, request.requestId, 'not-found', 'this server keeps no catalogue');
    const page = await catalogue.page(request.cursor, Math.min(request.maxDatagramSize ?? MAX_DATAGRAM_BYTES, maxDatagramSize));
    return send({ type: 'catalog', requestId: request.requestId, ...page }, link.address, link.port);
  };

  const serveList = async (link: GatewayLink, request: ListRequestPacket) => {
    // A gateway that names no limit (before the field existed) gets the pages it always got.
    const limit = Math.min(request.maxDatagramSize ?? MAX_DATAGRAM_BYTES, maxDatagramSize);
    const page = await store.list(request.path, request.cursor, listEntriesBudget(limit));
    send({ type: 'list', requestId: request.requestId, entries: page.entries, next: page.next }, link.address, link.port);
  };

  /** When each path's read failure was last logged: one line per path per 10 s, whatever the gateway retries. */
  const failureLoggedAt = new Map<string, number>();
  const replyFailure = (link: GatewayLink, requestId: number, path: string, error: unknown) => {
    const [code, message] = describeFailure(error);
    if (code === 'io' || code === 'unreadable') {
      const now = performance.now();
      if (now - (failureLoggedAt.get(path) ?? Number.NEGATIVE_INFINITY) >= 10_000) {
        if (failureLoggedAt.size >= 1_000) failureLoggedAt.clear();
        failureLoggedAt.set(path, now);
        logger.warn(code === 'unreadable' ? 'file cannot be read' : 'read failed', { path, error: message });
      }
    }
    replyError(link, requestId, code, message);
  };

  const serve = async (link: GatewayLink, request: MetaRequestPacket | ChunkRequestPacket | ListRequestPacket | CatalogRequestPacket) => {
    const reads = request.type === 'chunk-request' ? (request.count ?? 1) : 1;
    if (readsInProgress + reads > maxConcurrentReads) {
      served.busy++;
      for (let i = 0; i < reads; i++) replyError(link, request.requestId + i, 'busy', 'too many reads in progress');
      return;
    }
    readsInProgress += reads;
    try {
      if (request.type === 'meta-request') await serveMeta(link, request);
      else if (request.type === 'chunk-request') await serveChunks(link, request);
      else if (request.type === 'catalog-request') await serveCatalog(link, request);
      else await serveList(link, request);
    } catch (error) {
      replyFailure(link, request.requestId, 'path' in request ? request.path : '(catalogue)', error);
    } finally {
      readsInProgress -= reads;
    }
  };

  function onPacket(link: GatewayLink, packet: Packet): void {
    if (packet.type === 'meta-request' || packet.type === 'chunk-request' || packet.type === 'list-request' || packet.type === 'catalog-request') {
      if (closing) {
        // Leaving: the gateway retries elsewhere at once rather than waiting for a timeout.
        replyError(link, packet.requestId, 'busy', 'the server is shutting down');
        return;
      }
      if (link.onRequest()) void serve(link, packet);
      return;
    }
    link.handle(packet);
  }

  logger.info('serving', { root, udp: formatHostPort(address, port), gateways: links.map((link) => link.label).join(','), auth: codec.authenticated ? 'hmac-sha256' : 'off' });
  if (!codec.authenticated) logger.warn('no secret configured: any host that can reach this server can pose as a gateway it registered with (see --secret-file)');
  let closing = false;
  // The first walk runs alongside registration: heartbeats carry its generation once it is done.
  rescan();
  for (const link of links) link.start();

  let stopping: Promise<void> | undefined;
  return {
    address: { address, port },
    get stats() {
      return stats();
    },
    whenRegistered: async () => {
      await Promise.all(links.map((link) => link.whenRegistered()));
    },
    stop(drainMs = 0) {
      stopping ??= (async () => {
        closing = true;
        clearTimeout(catalogTimer);
        for (const link of links) link.close();
        const deadline = performance.now() + drainMs;
        if (readsInProgress > 0) logger.info('draining', { reads: readsInProgress, timeoutMs: drainMs });
        while (readsInProgress > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        if (readsInProgress > 0) logger.warn('drain timeout: closing with reads in flight', { reads: readsInProgress });
        // Let the leave datagrams and the last chunks go out before the socket closes.
        await new Promise<void>((resolve) => setImmediate(resolve));
        await endpoint.close();
        await store.close();
        logger.info('stopped');
      })();
      return stopping;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** At most `maxBytes` of UTF-8 (the decoder refuses messages over MAX_MESSAGE_LENGTH bytes), cut between characters. */
function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let cut = '';
  for (const char of text) {
    if (Buffer.byteLength(cut) + Buffer.byteLength(char) > maxBytes) break;
    cut += char;
  }
  return cut;
}

function describeFailure(error: unknown): [ErrorCode, string] {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof StaleVersionError) return ['stale', message];
  if (error instanceof UnreadableError) return ['unreadable', 'the file cannot be read (permission denied)'];
  if (error instanceof DigestPendingError) return ['busy', message];
  if (error instanceof NotFoundError || error instanceof ForbiddenPathError) return ['not-found', 'no such file'];
  return ['io', message];
}
