import type { Packet } from '@httpgw/protocol';
import type { DeliverySnapshot } from './delivery-rate.js';
import { createRequestIdSource } from './request-ids.js';
import type { PoolServer, ServerPool } from '../pool/server-pool.js';

/** What a request's owner hears back: exactly one of these, exactly once per request. */
export interface RequestHandlers {
  /** `digestOk`: for a chunk whose MD5 was already checked (see AnswerQueue), the verdict. */
  onAnswer(answer: Packet, server: PoolServer, digestOk?: boolean): void;
  /** `timeout`: no answer within the RTO; `reordered`: later requests to the same server were answered first. */
  onLost(reason: 'timeout' | 'reordered', server: PoolServer): void;
  /** Whether a client is waiting for this answer before anything else (a download's first chunk): it should not wait behind a batch. */
  urgent?(): boolean;
}

interface PendingRequest {
  id: number;
  server: PoolServer;
  sentAt: number;
  /** The server's deliveries when it was sent: its answer is a delivery-rate sample. */
  delivery: DeliverySnapshot;
  /** Sent to a server with nothing else in flight (the first of a run): its round trip has no queue in it. */
  unqueued: boolean;
  /** Send order in its queue, for loss detection by reordering. */
  sequence: number;
  queue: ServerQueue;
  handlers: RequestHandlers;
}

export interface RequestTrackerInit {
  pool: ServerPool;
  transmit: (server: PoolServer, packet: Packet) => void;
  /** Answers to requests sent this many places earlier than the newest answered one count as lost (RFC 9002: 3). */
  reorderThreshold?: number;
  /** A request sent before one just answered, and older than this many RTTs, counts as lost (RFC 9002: 9/8). */
  timeThreshold?: number;
  tickMs?: number;
  now?: () => number;
}

export interface RequestCounters {
  sent: number;
  answered: number;
  timeouts: number;
  reordered: number;
  /** Answers that came after their request was given up on, or twice. */
  late: number;
  /** Of those, answers to requests given up on by timeout: the timeout was spurious. */
  spuriousTimeouts: number;
  /** Answers from an address other than the server asked: discarded. */
  spoofed: number;
}

/** Timed-out requests remembered for a late answer (the oldest are forgotten first). */
const TIMED_OUT_REMEMBERED = 4_096;

interface ServerQueue {
  pending: Map<number, PendingRequest>;
  nextSequence: number;
  /** Requests other than chunk requests. */
  control: boolean;
}

/**
 * Every request in flight to every server, keyed by an unpredictable id: demultiplexes answers to
 * their owner whatever transfer or client they belong to, measures RTT, and detects loss by timeout
 * (one shared timer, oldest requests first; the RTO backs off once per loss event) and, sooner, by
 * later requests to the same server being answered first (RFC 9002 packet and time thresholds).
 */
export class RequestTracker {
  private readonly byId = new Map<number, PendingRequest>();
  /**
   * Per server, pending requests in send order (Map keeps insertion order): chunk requests and the
   * others (metadata, listings) apart, each its own order. A server answers metadata at once while
   * chunks wait their turn (a read, a --max-rate), so an answer of one kind says nothing about the
   * loss of a request of the other.
   */
  private readonly queues = new Map<PoolServer, ServerQueue>();
  private readonly controlQueues = new Map<PoolServer, ServerQueue>();
  private readonly nextId = createRequestIdSource();
  /** Requests given up on by timeout lately: an answer to one after all says the timeout was spurious. */
  private readonly timedOut = new Map<number, { server: PoolServer; sentAt: number }>();
  private readonly init: RequestTrackerInit;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  readonly counters: RequestCounters = { sent: 0, answered: 0, timeouts: 0, reordered: 0, late: 0, spuriousTimeouts: 0, spoofed: 0 };

  constructor(init: RequestTrackerInit) {
    this.init = init;
    this.now = init.now ?? (() => performance.now());
  }

  /**
   * Whether an answer with this id from this server would be taken (not late, not spoofed), and
   * 'urgent' when a client waits for it before anything else (RequestHandlers.urgent): one lookup
   * per answer for both.
   */
  expects(requestId: number, fromKey: string): boolean | 'urgent' {
    const request = this.byId.get(requestId);
    if (request === undefined || request.server.key !== fromKey) return false;
    return request.handlers.urgent?.() === true ? 'urgent' : true;
  }

  /** Whether the answer to `requestId` from `fromKey` is one a client waits for before anything else. */
  isUrgent(requestId: number, fromKey: string): boolean {
    return this.expects(requestId, fromKey) === 'urgent';
  }

  get inFlight(): number {
    return this.byId.size;
  }

  /** Sends `build(id)` to `server`, a request that is no chunk request (see `queues`); returns the request id. */
  send(server: PoolServer, build: (requestId: number) => Packet, handlers: RequestHandlers): number {
    return this.sendOn(this.controlQueues, server, build, [handlers]);
  }

  /**
   * Sends one packet that asks for `handlers.length` answers, under the consecutive request ids
   * `first..first+n-1` (a `chunk-request` with a `count`); returns `first`. Each id is tracked,
   * timed and declared lost on its own, exactly as if it had been sent alone.
   */
  sendRun(server: PoolServer, build: (firstRequestId: number) => Packet, handlers: readonly RequestHandlers[]): number {
    return this.sendOn(this.queues, server, build, handlers);
  }

  private sendOn(queues: Map<PoolServer, ServerQueue>, server: PoolServer, build: (firstRequestId: number) => Packet, handlers: readonly RequestHandlers[]): number {
    const first = this.freeRun(handlers.length);
    let queue = queues.get(server);
    if (!queue) {
      queue = { pending: new Map(), nextSequence: 0, control: queues === this.controlQueues };
      queues.set(server, queue);
    }
    const sentAt = this.now();
    const idle = server.inFlight === 0;
    if (queues === this.queues) server.lastAskedAt = sentAt;
    const delivery = server.delivery.onSend(sentAt, idle, server.inFlight + handlers.length < server.window.size / 2);
    for (let i = 0; i < handlers.length; i++) {
      const request: PendingRequest = { id: first + i, server, sentAt, delivery, unqueued: idle && i === 0, sequence: queue.nextSequence++, queue, handlers: handlers[i]! };
      this.byId.set(request.id, request);
      queue.pending.set(request.id, request);
    }
    server.inFlight += handlers.length;
    this.counters.sent += handlers.length;
    this.init.transmit(server, build(first));
    this.ensureTimer();
    return first;
  }

  /** Routes an answer to its request. Returns false when it matched nothing (late, duplicate or forged). */
  onAnswer(answer: Packet & { requestId: number }, fromKey: string, digestOk?: boolean): boolean {
    const request = this.byId.get(answer.requestId);
    if (!request) {
      this.counters.late++;
      this.onLateAnswer(answer.requestId, fromKey);
      return false;
    }
    if (request.server.key !== fromKey) {
      this.counters.spoofed++;
      return false;
    }
    const now = this.now();
    this.settle(request);
    this.counters.answered++;
    const rttMs = now - request.sentAt;
    // A metadata answer while chunks wait at the server measures the path, not the chunks' queue.
    const pathOnly = request.queue.control && (this.queues.get(request.server)?.pending.size ?? 0) > 0;
    this.init.pool.onAnswer(request.server, request.sentAt, rttMs, request.unqueued, pathOnly, answer.type === 'chunk');
    if (answer.type === 'chunk') request.server.delivery.onDelivered(request.delivery, answer.data.length, now);
    this.detectLost(request, now, rttMs);
    request.handlers.onAnswer(answer, request.server, digestOk);
    return true;
  }

  /**
   * An answer to a request given up on by timeout (Eifel, RFC 3522): the round trip was just longer
   * than the RTO. The sample goes to the RTT estimator, which otherwise never sees the round trips
   * that time out and keeps an RTO too short for a server whose queue grew; the window is restored.
   */
  private onLateAnswer(requestId: number, fromKey: string): void {
    const timedOut = this.timedOut.get(requestId);
    if (!timedOut || timedOut.server.key !== fromKey) return;
    this.timedOut.delete(requestId);
    this.counters.spuriousTimeouts++;
    this.init.pool.onSpuriousTimeout(timedOut.server, timedOut.sentAt, this.now() - timedOut.sentAt);
  }

  /** Gives up on every request to a server that left the pool, as lost. */
  dropServer(server: PoolServer): void {
    for (const queues of [this.queues, this.controlQueues]) {
      const queue = queues.get(server);
      if (!queue) continue;
      // Forget the queue first: a handler that sends again (ask) gets a fresh queue, whose requests time out.
      queues.delete(server);
      for (const request of [...queue.pending.values()]) {
        this.settle(request);
        request.handlers.onLost('timeout', server);
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A random id such that it and the `count - 1` after it are all unused. */
  private freeRun(count: number): number {
    for (;;) {
      const first = this.nextId();
      let free = true;
      for (let id = first; id < first + count && free; id++) free = !this.byId.has(id);
      if (free) return first;
    }
  }

  private settle(request: PendingRequest): void {
    this.byId.delete(request.id);
    request.queue.pending.delete(request.id);
    request.server.inFlight--;
    this.init.pool.roomFreed();
  }

  /**
   * RFC 9002 §6.1: a request sent before the one just answered is lost once `reorderThreshold` later
   * requests were answered (packet threshold), or once it is older than `timeThreshold` round trips
   * (time threshold: catches losses when too few requests are in flight for the packet threshold).
   * Both conditions only weaken along the queue, so the scan stops at the first request kept.
   */
  private detectLost(answered: PendingRequest, now: number, rttMs: number): void {
    const queue = answered.queue;
    const threshold = this.init.reorderThreshold ?? 3;
    const lossDelay = (this.init.timeThreshold ?? 9 / 8) * Math.max(rttMs, answered.server.rtt.smoothedMs ?? rttMs, 1);
    for (const request of queue.pending.values()) {
      if (request.sequence >= answered.sequence) break;
      if (request.sequence > answered.sequence - threshold && now - request.sentAt < lossDelay) break;
      this.settle(request);
      this.counters.reordered++;
      this.init.pool.onLoss(request.server, request.sentAt);
      request.handlers.onLost('reordered', request.server);
    }
  }

  private checkTimeouts(): void {
    const now = this.now();
    for (const queues of [this.queues, this.controlQueues]) {
      for (const [server, queue] of queues) {
        for (const request of queue.pending.values()) {
          if (now - request.sentAt < server.rtt.rtoMs) break;
          this.settle(request);
          this.counters.timeouts++;
          this.rememberTimeout(request);
          this.init.pool.onTimeout(server, request.sentAt);
          request.handlers.onLost('timeout', server);
        }
        if (queue.pending.size === 0) queues.delete(server);
      }
    }
    if (this.byId.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private rememberTimeout(request: PendingRequest): void {
    if (this.timedOut.size >= TIMED_OUT_REMEMBERED) this.timedOut.delete(this.timedOut.keys().next().value!);
    this.timedOut.set(request.id, { server: request.server, sentAt: request.sentAt });
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.checkTimeouts(), this.init.tickMs ?? 5);
  }
}
