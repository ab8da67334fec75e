/**
 * Tools for the security and fuzz tests: raw UDP peers that record what they receive, a tap that sits
 * between a file server and a gateway and records (and can stop) their traffic, and a logger whose
 * lines a test can read.
 */
import { createSocket, type Socket } from 'node:dgram';
import { onTestFinished } from 'vitest';
import { createFileServer, type FileServer, type FileServerInit } from '@httpgw/file-server';
import { createGateway, type Gateway, type GatewayInit } from '@httpgw/gateway';
import { createFrameCodec, type FrameCodec } from '@httpgw/protocol';
import { createLogger, type Logger } from '@httpgw/runtime';

export const LOOPBACK = '127.0.0.1';

export interface Received {
  data: Buffer;
  port: number;
}

export interface RawPeer {
  readonly socket: Socket;
  readonly port: number;
  readonly received: Received[];
  send(datagram: Uint8Array, port: number): Promise<void>;
  /** Resolves with the first datagram at index `since` or later of `received` that matches. */
  waitFor(match?: (datagram: Received) => boolean, since?: number, timeoutMs?: number): Promise<Received>;
  close(): Promise<void>;
}

/** A UDP socket on 127.0.0.1, port chosen by the kernel, that records everything it receives. */
export async function rawPeer(): Promise<RawPeer> {
  const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  socket.on('message', (data, from) => {
    received.push({ data, port: from.port });
    for (const waiter of [...waiters]) waiter();
  });
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, resolve));
  let closed = false;
  return {
    socket,
    port: socket.address().port,
    received,
    send: (datagram, port) => new Promise((resolve, reject) => socket.send(datagram, port, LOOPBACK, (error) => (error ? reject(error) : resolve()))),
    waitFor(match = () => true, since = 0, timeoutMs = 5_000) {
      let seen = since;
      return new Promise((resolve, reject) => {
        const check = () => {
          for (; seen < received.length; seen++) {
            const candidate = received[seen]!;
            if (!match(candidate)) continue;
            clearTimeout(timer);
            waiters.delete(check);
            resolve(candidate);
            return;
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching datagram within ${timeoutMs} ms (${received.length} received)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () =>
      new Promise((resolve) => {
        if (closed) return resolve();
        closed = true;
        socket.close(() => resolve());
      }),
  };
}

export interface TapRecord {
  direction: 'toTarget' | 'fromTarget';
  data: Buffer;
}

export interface UdpTap {
  /** Where the client sends (it takes this for the target). */
  readonly front: RawPeer;
  /** Where the target sees the client: one socket, so the target sees one address. */
  readonly upstream: RawPeer;
  readonly records: TapRecord[];
  /** Stop (or resume) forwarding in both directions; records go on. */
  setForwarding(on: boolean): void;
  close(): Promise<void>;
}

/**
 * A man in the middle for one client: what the client sends to `front` goes on to the target from
 * `upstream`, and what the target answers goes back from `front`. Everything is recorded, so a test
 * can replay real datagrams from either side's point of view.
 */
export async function udpTap(targetPort: number): Promise<UdpTap> {
  const front = await rawPeer();
  const upstream = await rawPeer();
  const records: TapRecord[] = [];
  let clientPort: number | undefined;
  let forwarding = true;
  front.socket.on('message', (data, from) => {
    clientPort = from.port;
    records.push({ direction: 'toTarget', data });
    if (forwarding) upstream.socket.send(data, targetPort, LOOPBACK);
  });
  upstream.socket.on('message', (data, from) => {
    if (from.port !== targetPort) return;
    records.push({ direction: 'fromTarget', data });
    if (forwarding && clientPort !== undefined) front.socket.send(data, clientPort, LOOPBACK);
  });
  return {
    front,
    upstream,
    records,
    setForwarding: (on) => {
      forwarding = on;
    },
    close: async () => {
      await front.close();
      await upstream.close();
    },
  };
}

export interface LogSink {
  logger: Logger;
  lines: string[];
  /** Resolves with the first line (already written or to come) matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

/** A logger at debug level whose lines are kept for assertions. */
export function logSink(name: string): LogSink {
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const logger = createLogger({
    name,
    level: 'debug',
    write: (line) => {
      lines.push(line);
      for (const waiter of [...waiters]) waiter();
    },
  });
  return {
    logger,
    lines,
    waitFor: (pattern, timeoutMs = 5_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.find((candidate) => pattern.test(candidate));
          if (line === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(line);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms:\n${lines.join('')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}

/** A gateway on 127.0.0.1 (ports chosen by the kernel), stopped when the test ends. */
export async function gatewayFor(init: GatewayInit = {}): Promise<Gateway> {
  const gateway = await createGateway({ address: LOOPBACK, httpPort: 0, udpPort: 0, ...init });
  onTestFinished(() => gateway.stop());
  return gateway;
}

/** A file server serving `root` to the gateway on UDP `port`, stopped when the test ends. */
export async function serverFor(root: string, port: number, init: Partial<FileServerInit> = {}): Promise<FileServer> {
  const server = await createFileServer({ gateways: [{ host: LOOPBACK, port }], root, bindAddress: LOOPBACK, ...init });
  onTestFinished(() => server.stop());
  return server;
}

/** A raw UDP peer, closed when the test ends. */
export async function peer(): Promise<RawPeer> {
  const created = await rawPeer();
  onTestFinished(() => created.close());
  return created;
}

/** Registers a raw socket as a file server, the way a real one does: hello, challenge, register. */
export async function registerRaw(gatewayPort: number, codec: FrameCodec = createFrameCodec()): Promise<RawPeer> {
  const server = await peer();
  const packetOf = (datagram: Buffer) => codec.decode(datagram, `${LOOPBACK}:${gatewayPort}`);
  await server.send(codec.encode({ type: 'hello', name: 'raw' }), gatewayPort);
  const challenge = packetOf((await server.waitFor()).data);
  if (challenge.type !== 'challenge') throw new Error(`expected a challenge, got ${challenge.type}`);
  const mark = server.received.length;
  await server.send(codec.encode({ type: 'register', name: 'raw', cookie: challenge.cookie }), gatewayPort);
  const registered = packetOf((await server.waitFor(() => true, mark)).data);
  if (registered.type !== 'registered') throw new Error(`expected registered, got ${registered.type}`);
  return server;
}
