/**
 * A misbehaving file server, for tests: a UDP middlebox that one file server registers through.
 *
 * The file server sends to the proxy's public socket; the proxy forwards to the target (the
 * gateway, or a relay in front of it) from its own upstream socket, so the gateway sees the proxy's
 * upstream address as that server. Towards the gateway it can slow the server down (a FIFO that lets
 * one datagram out per `serviceMs`, as a server with a slow disk would), and rewrite or swallow the
 * chunks it sends (a server that lies, or hangs while it still heartbeats). Registration and
 * heartbeats pass through untouched but share the FIFO.
 */
import { createSocket, type Socket } from 'node:dgram';
import { decode, encode, type ChunkPacket, type ErrorPacket, type ListPacket, type MetaPacket, type Packet } from '@httpgw/protocol';

type Endpoint = { address: string; port: number };
export type AnswerPacket = ChunkPacket | MetaPacket | ListPacket | ErrorPacket;

export interface FaultyProxyInit {
  target: Endpoint;
  /** Datagrams towards the target leave at most one per `serviceMs` (0: at once). */
  serviceMs?: number;
  /**
   * Rewrites an answer (chunk, meta, list, error) on its way to the gateway, into another answer or
   * anything else; undefined passes it unchanged, 'drop' swallows it.
   */
  tamper?: (answer: AnswerPacket) => Packet | 'drop' | undefined;
}

export interface ProxyStats {
  chunks: number;
  tampered: number;
  queuedPeak: number;
  /** Datagrams from the server towards the target, by packet type ('undecodable' for the rest), as they arrived. */
  toTarget: Record<string, number>;
  /** Datagrams from the target to the server, by packet type. */
  fromTarget: Record<string, number>;
}

export interface FaultyProxy {
  /** Where the file server should register: its "gateway". */
  readonly address: Endpoint;
  readonly stats: ProxyStats;
  /** The address the gateway sees this server at (known once the server sent something). */
  upstream(): Endpoint;
  setServiceMs(ms: number): void;
  close(): Promise<void>;
}

const LOOPBACK = '127.0.0.1';

function bind(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    socket.once('error', reject);
    socket.bind(0, LOOPBACK, () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

export async function createFaultyProxy(init: FaultyProxyInit): Promise<FaultyProxy> {
  const publicSocket = await bind();
  const upstreamSocket = await bind();
  const stats: ProxyStats = { chunks: 0, tampered: 0, queuedPeak: 0, toTarget: {}, fromTarget: {} };
  const count = (tally: Record<string, number>, datagram: Buffer) => {
    let type = 'undecodable';
    try {
      type = decode(datagram).type;
    } catch {
      // counted as undecodable
    }
    tally[type] = (tally[type] ?? 0) + 1;
  };
  let serviceMs = init.serviceMs ?? 0;
  let client: Endpoint | undefined;
  let closed = false;
  const queue: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;

  const forward = (datagram: Buffer) => {
    if (!closed) upstreamSocket.send(datagram, init.target.port, init.target.address, () => {});
  };
  const drain = () => {
    timer = undefined;
    const next = queue.shift();
    if (!next) return;
    forward(next);
    timer = setTimeout(drain, serviceMs);
  };

  const rewrite = (datagram: Buffer): Buffer | undefined => {
    if (!init.tamper) return datagram;
    let packet;
    try {
      packet = decode(datagram);
    } catch {
      return datagram;
    }
    if (packet.type !== 'chunk' && packet.type !== 'meta' && packet.type !== 'list' && packet.type !== 'error') return datagram;
    if (packet.type === 'chunk') stats.chunks++;
    const lie = init.tamper(packet);
    if (!lie) return datagram;
    stats.tampered++;
    return lie === 'drop' ? undefined : encode(lie);
  };

  publicSocket.on('message', (datagram, from) => {
    client = { address: from.address, port: from.port };
    count(stats.toTarget, datagram);
    const out = rewrite(datagram);
    if (!out) return;
    if (serviceMs <= 0) return forward(out);
    queue.push(out);
    stats.queuedPeak = Math.max(stats.queuedPeak, queue.length);
    if (!timer) drain();
  });
  upstreamSocket.on('message', (datagram) => {
    count(stats.fromTarget, datagram);
    if (client && !closed) publicSocket.send(datagram, client.port, client.address, () => {});
  });

  const close = (socket: Socket) => new Promise<void>((resolve) => socket.close(() => resolve()));
  return {
    address: { address: LOOPBACK, port: publicSocket.address().port },
    stats,
    upstream: () => ({ address: LOOPBACK, port: upstreamSocket.address().port }),
    setServiceMs(ms) {
      serviceMs = ms;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      queue.length = 0;
      await Promise.all([close(publicSocket), close(upstreamSocket)]);
    },
  };
}
