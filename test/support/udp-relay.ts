/**
 * A fault-injecting UDP relay for tests (the test kernel has no netem).
 *
 * It behaves like a NAT between file servers and the gateway: every distinct client source
 * address gets its own upstream socket, so the gateway sees one address per file server and
 * answers it there; answers are relayed back to the client from the public socket. Each
 * direction can independently lose, duplicate, corrupt, delay and reorder datagrams, and drop those
 * above a size (a path that drops IP fragments). It speaks the target's family: a target on ::1
 * gets a relay on ::1.
 */
import { createSocket, type RemoteInfo, type Socket, type SocketOptions } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { createSeededRandom } from './seeded-random.js';

export interface ImpairmentInit {
  loss?: number;
  lossBurst?: number;
  duplicate?: number;
  reorder?: number;
  reorderDelayMs?: number;
  delayMs?: number;
  jitterMs?: number;
  corrupt?: number;
  /** Drop every datagram whose UDP payload is above this many bytes, as a path MTU with fragments dropped does. */
  maxDatagramBytes?: number;
}
export interface UdpRelayInit {
  target: { address: string; port: number };
  seed?: number;
  toTarget?: ImpairmentInit;
  fromTarget?: ImpairmentInit;
}
export interface RelayCounters {
  /** Datagrams and bytes that arrived in this direction, before any impairment. */
  received: number;
  receivedBytes: number;
  forwarded: number;
  forwardedBytes: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  delayed: number;
  blackholed: number;
  silenced: number;
  /** Dropped for being above maxDatagramBytes. */
  oversize: number;
  /** The largest datagram forwarded. */
  largestForwarded: number;
}
type Endpoint = { address: string; port: number };
type Direction = 'toTarget' | 'fromTarget';
export interface UdpRelay {
  readonly address: Endpoint;
  readonly stats: { toTarget: RelayCounters; fromTarget: RelayCounters };
  clients(): Array<{ client: Endpoint; upstream: Endpoint }>;
  setImpairment(direction: Direction, impairment: ImpairmentInit): void;
  blackout(ms: number): void;
  silence(clientPort: number, silenced?: boolean): void;
  close(): Promise<void>;
}

// Large buffers so that bursts in tests are not dropped by the kernel: the relay must add only
// the loss it is asked for. The kernel here caps at 4 MiB anyway.
const socketOptions = (type: 'udp4' | 'udp6'): SocketOptions => ({ type, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });

// Clamp rather than throw: a bad setting should not take a test's network down.
const probability = (x: number | undefined): number => (x !== undefined && x > 0 ? Math.min(x, 1) : 0);
const millis = (x: number | undefined): number => (x !== undefined && x > 0 ? Math.min(x, 60_000) : 0);

type Impairment = Required<ImpairmentInit>;
function normalize(init: ImpairmentInit): Impairment {
  return {
    loss: probability(init.loss),
    lossBurst: init.lossBurst !== undefined && init.lossBurst > 1 ? init.lossBurst : 1,
    duplicate: probability(init.duplicate),
    reorder: probability(init.reorder),
    reorderDelayMs: init.reorderDelayMs === undefined ? 5 : millis(init.reorderDelayMs),
    delayMs: millis(init.delayMs),
    jitterMs: millis(init.jitterMs),
    corrupt: probability(init.corrupt),
    maxDatagramBytes: init.maxDatagramBytes !== undefined && init.maxDatagramBytes >= 0 ? init.maxDatagramBytes : Number.POSITIVE_INFINITY,
  };
}

/** One direction of the relay: its settings, its own PRNG stream, its loss state, its counters. */
interface Lane {
  impairment: Impairment;
  random: () => number;
  inLossBurst: boolean;
  readonly counters: RelayCounters;
}
const newCounters = (): RelayCounters => ({
  received: 0, receivedBytes: 0, forwarded: 0, forwardedBytes: 0, dropped: 0, duplicated: 0, reordered: 0, corrupted: 0, delayed: 0, blackholed: 0, silenced: 0, oversize: 0, largestForwarded: 0,
});

function isLost(lane: Lane): boolean {
  const { loss, lossBurst } = lane.impairment;
  if (loss === 0) return false;
  if (loss === 1) return true;
  if (lossBurst === 1) return lane.random() < loss;
  // Gilbert-Elliott: leaving the loss state with probability 1/lossBurst makes bursts geometric
  // with that mean; the entry probability is chosen so the long-run loss ratio is still `loss`.
  const leave = 1 / lossBurst;
  const enter = Math.min(1, (loss * leave) / (1 - loss));
  lane.inLossBurst = lane.random() < (lane.inLossBurst ? 1 - leave : enter);
  return lane.inLossBurst;
}

interface Mapping { client: Endpoint; socket: Socket; upstream: Endpoint | undefined }

export async function createUdpRelay(init: UdpRelayInit): Promise<UdpRelay> {
  const target: Endpoint = { address: init.target.address, port: init.target.port };
  const seed = init.seed ?? 1;
  const ipv6 = target.address.includes(':');
  const LOOPBACK = ipv6 ? '::1' : '127.0.0.1';
  const SOCKET_OPTIONS = socketOptions(ipv6 ? 'udp6' : 'udp4');
  // Separate PRNG streams per direction: otherwise the interleaving of the two directions (which
  // depends on timing) would change which datagrams get hit, and a seed would not reproduce.
  const lanes: Record<Direction, Lane> = {
    toTarget: { impairment: normalize(init.toTarget ?? {}), random: createSeededRandom(seed), inLossBurst: false, counters: newCounters() },
    fromTarget: { impairment: normalize(init.fromTarget ?? {}), random: createSeededRandom(seed ^ 0x5bd1e995), inLossBurst: false, counters: newCounters() },
  };
  const mappings = new Map<string, Mapping>(); // insertion order = order first seen
  const silenced = new Set<number>();
  const timers = new Set<NodeJS.Timeout>();
  let blackoutUntil = 0;
  let closed = false;

  const publicSocket = createSocket(SOCKET_OPTIONS);
  await new Promise<void>((resolve, reject) => {
    publicSocket.once('error', reject);
    publicSocket.bind(0, LOOPBACK, () => {
      publicSocket.off('error', reject);
      resolve();
    });
  });
  const { address, port } = publicSocket.address();
  // UDP send errors are just more packet loss; a relay must never crash the test process.
  publicSocket.on('error', () => {});

  function send(socket: Socket, data: Buffer, to: Endpoint, counters: RelayCounters): void {
    if (closed) return;
    counters.forwarded++;
    counters.forwardedBytes += data.length;
    counters.largestForwarded = Math.max(counters.largestForwarded, data.length);
    try {
      socket.send(data, to.port, to.address, () => {});
    } catch {
      // Socket already closing; same as loss.
    }
  }

  /** Apply one direction's impairments to a datagram, then deliver it (0, 1 or 2 times). */
  function relay(lane: Lane, clientPort: number, data: Buffer, deliver: (data: Buffer) => void): void {
    const { counters, impairment: imp, random } = lane;
    counters.received++;
    counters.receivedBytes += data.length;
    if (performance.now() < blackoutUntil) return void counters.blackholed++;
    if (silenced.has(clientPort)) return void counters.silenced++;
    if (data.length > imp.maxDatagramBytes) return void counters.oversize++;
    if (isLost(lane)) return void counters.dropped++;
    let out = data;
    if (imp.corrupt > 0 && data.length > 0 && random() < imp.corrupt) {
      out = Buffer.from(data); // copy: never mutate a buffer the caller might still hold
      const bit = Math.floor(random() * out.length * 8);
      out.writeUInt8(out.readUInt8(bit >> 3) ^ (1 << (bit & 7)), bit >> 3);
      counters.corrupted++;
    }
    const copies = imp.duplicate > 0 && random() < imp.duplicate ? 2 : 1;
    if (copies === 2) counters.duplicated++;
    let delay = imp.delayMs + (imp.jitterMs > 0 ? random() * imp.jitterMs : 0);
    // Holding a datagram back lets the ones behind it overtake it, as netem's reordering does.
    if (imp.reorder > 0 && random() < imp.reorder) {
      delay += imp.reorderDelayMs;
      counters.reordered++;
    }
    const emit = (): void => {
      for (let i = 0; i < copies; i++) deliver(out);
    };
    if (delay === 0) return emit();
    counters.delayed++;
    // Not unref'd: a datagram in flight is real work; close() clears these.
    const timer = setTimeout(() => {
      timers.delete(timer);
      emit();
    }, delay);
    timers.add(timer);
  }

  function mappingFor(rinfo: RemoteInfo): Mapping {
    const key = `${rinfo.address}:${rinfo.port}`;
    const existing = mappings.get(key);
    if (existing) return existing;
    const socket = createSocket(SOCKET_OPTIONS);
    const mapping: Mapping = { client: { address: rinfo.address, port: rinfo.port }, socket, upstream: undefined };
    socket.on('error', () => {});
    socket.on('message', (data) => {
      if (closed) return;
      relay(lanes.fromTarget, mapping.client.port, data, (d) => send(publicSocket, d, mapping.client, lanes.fromTarget.counters));
    });
    // Sends issued before the bind completes are queued by node, so no buffering is needed here.
    socket.bind(0, LOOPBACK, () => {
      const bound = socket.address();
      mapping.upstream = { address: bound.address, port: bound.port };
    });
    mappings.set(key, mapping);
    return mapping;
  }

  publicSocket.on('message', (data, rinfo) => {
    if (closed) return;
    const mapping = mappingFor(rinfo);
    relay(lanes.toTarget, rinfo.port, data, (d) => send(mapping.socket, d, target, lanes.toTarget.counters));
  });

  const closeSocket = (socket: Socket): Promise<void> =>
    new Promise((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  let closing: Promise<void> | undefined;

  return {
    address: { address, port },
    stats: { toTarget: lanes.toTarget.counters, fromTarget: lanes.fromTarget.counters },
    clients: () =>
      [...mappings.values()].flatMap((m) => (m.upstream ? [{ client: { ...m.client }, upstream: { ...m.upstream } }] : [])),
    setImpairment(direction, impairment) {
      lanes[direction].impairment = normalize(impairment);
      lanes[direction].inLossBurst = false;
    },
    blackout(ms) {
      blackoutUntil = Math.max(blackoutUntil, performance.now() + millis(ms));
    },
    silence(clientPort, on = true) {
      if (on) silenced.add(clientPort);
      else silenced.delete(clientPort);
    },
    close() {
      if (closing) return closing;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      closing = Promise.all([publicSocket, ...[...mappings.values()].map((m) => m.socket)].map(closeSocket)).then(() => {});
      return closing;
    },
  };
}
