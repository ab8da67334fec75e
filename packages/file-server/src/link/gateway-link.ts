import type { Packet } from '@httpgw/protocol';
import type { Logger } from '@httpgw/runtime';

export interface GatewayAddress {
  host: string;
  port: number;
}

export interface GatewayLinkInit {
  /** Resolved address the gateway answers from; only datagrams from it are trusted as the gateway. */
  address: string;
  port: number;
  label: string;
  name: string;
  send: (packet: Packet) => void;
  logger: Logger;
  /** First retry delay of hello/register; doubles up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Heartbeats missed in a row before the gateway is taken for gone and registration starts again. */
  missedAcksBeforeRetry?: number;
  /** The generation of this server's catalogue now (undefined: none yet), sent with register and every heartbeat. */
  catalog?: () => number | undefined;
  /** Longest pause after refusals in a row (each pause doubles, from the gateway's `retryAfterMs`); default 60 s. */
  maxRefusedBackoffMs?: number;
  /** Jitter in 0..1 (default Math.random): a pause is 1..1.5 times the backoff, so servers refused together do not come back together. */
  random?: () => number;
}

type LinkState = 'hello' | 'register' | 'registered' | 'closed';

/**
 * Registration with one gateway, as a small state machine:
 * hello → (challenge) → register → (registered) → heartbeats. A `heartbeat-ack` with `known: false`
 * (the gateway restarted or evicted us) or too many missed acks start over, so a restarted gateway
 * gets its servers back without anyone touching them. Requests from the gateway prove it alive as
 * acks do, and are still served while missed acks make us register again: on a lossy path the
 * gateway most likely still knows us.
 */
export class GatewayLink {
  readonly address: string;
  readonly port: number;
  readonly label: string;
  private state: LinkState = 'hello';
  /** The gateway admitted us and has not said it forgot us since. */
  private admitted = false;
  private cookie: Uint8Array | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private unackedHeartbeats = 0;
  private heartbeatMs = 1_000;
  private readonly init: GatewayLinkInit;
  private registeredWaiters: Array<() => void> = [];
  /** The pause after the last refusal (0: not refused since the last admission). */
  private refusedBackoffMs = 0;
  /** Refusals since the last admission: only the first is logged. */
  private refusals = 0;
  /** The catalogue generation the last register carried. */
  private registeredCatalog: number | undefined;

  constructor(init: GatewayLinkInit) {
    this.init = init;
    this.address = init.address;
    this.port = init.port;
    this.label = init.label;
    this.retryDelay = init.retryMs ?? 200;
  }

  get registered(): boolean {
    return this.state === 'registered';
  }

  /** A request came from the gateway: proof it is alive. Returns whether to serve it. */
  onRequest(): boolean {
    this.unackedHeartbeats = 0;
    return this.admitted && this.state !== 'closed';
  }

  start(): void {
    this.restart();
  }

  /** Resolves once the gateway has admitted this server (again). */
  whenRegistered(): Promise<void> {
    if (this.registered) return Promise.resolve();
    return new Promise((resolve) => this.registeredWaiters.push(resolve));
  }

  handle(packet: Packet): void {
    switch (packet.type) {
      case 'challenge':
        if (this.state !== 'hello') return;
        this.cookie = packet.cookie;
        this.state = 'register';
        this.resetRetry();
        this.sendRegistration();
        return;
      case 'registered':
        if (this.state !== 'register') return;
        this.state = 'registered';
        this.admitted = true;
        this.heartbeatMs = packet.heartbeatMs;
        this.unackedHeartbeats = 0;
        this.init.logger.info('registered with gateway', { gateway: this.label, heartbeatMs: packet.heartbeatMs, ...(this.refusals > 0 ? { refusedBefore: this.refusals } : {}) });
        this.refusals = 0;
        this.refusedBackoffMs = 0;
        this.schedule(this.heartbeatMs, () => this.heartbeat());
        for (const resolve of this.registeredWaiters.splice(0)) resolve();
        // The first walk may have ended after the register left: say its generation now.
        if (this.init.catalog?.() !== this.registeredCatalog) this.announceCatalog();
        return;
      case 'refused': {
        if (this.state !== 'register') return;
        // Back off: the gateway's pause at least, doubling while refusals go on (up to a cap), plus up
        // to half again as jitter; then start over from hello (the cookie may have expired meanwhile).
        const cap = this.init.maxRefusedBackoffMs ?? 60_000;
        this.refusedBackoffMs = Math.max(packet.retryAfterMs, Math.min(cap, Math.max(2 * this.refusedBackoffMs, this.init.retryMs ?? 200)));
        const pauseMs = Math.round(this.refusedBackoffMs * (1 + 0.5 * (this.init.random ?? Math.random)()));
        if (this.refusals++ === 0) {
          this.init.logger.warn('gateway refused registration; retrying with backoff', { gateway: this.label, reason: packet.reason, retryAfterMs: packet.retryAfterMs, pauseMs });
        } else {
          this.init.logger.debug('gateway refused registration again', { gateway: this.label, reason: packet.reason, refusals: this.refusals, pauseMs });
        }
        this.state = 'hello';
        this.cookie = undefined;
        this.schedule(pauseMs, () => this.restart());
        return;
      }
      case 'heartbeat-ack':
        if (this.state !== 'registered') return;
        this.unackedHeartbeats = 0;
        if (packet.heartbeatMs !== undefined) this.heartbeatMs = packet.heartbeatMs;
        if (!packet.known) {
          this.init.logger.warn('gateway no longer knows this server; registering again', { gateway: this.label });
          this.admitted = false;
          this.restart();
        }
        return;
      default:
        return;
    }
  }

  /**
   * The catalogue has a new generation: tell the gateway now rather than at the next heartbeat (a
   * large pool heartbeats every few seconds), so a file added is found within one walk.
   */
  catalogChanged(): void {
    this.announceCatalog();
  }

  /**
   * One heartbeat out of turn carrying the generation: it leaves the schedule, and the count of
   * heartbeats waiting for their ack, as they are (the ack it brings resets that count as any does).
   */
  private announceCatalog(): void {
    if (this.state === 'registered') this.init.send({ type: 'heartbeat', ...this.catalogField() });
  }

  /** Says goodbye when registered; stops all timers. */
  close(): void {
    if (this.state === 'registered') this.init.send({ type: 'leave' });
    this.state = 'closed';
    clearTimeout(this.timer);
  }

  private restart(): void {
    this.state = 'hello';
    this.cookie = undefined;
    this.resetRetry();
    this.sendRegistration();
  }

  private resetRetry(): void {
    this.retryDelay = this.init.retryMs ?? 200;
  }

  /** Sends the current registration step and schedules its retry with exponential backoff. */
  private sendRegistration(): void {
    if (this.state === 'hello') this.init.send({ type: 'hello', name: this.init.name });
    else if (this.state === 'register' && this.cookie) {
      this.registeredCatalog = this.init.catalog?.();
      this.init.send({ type: 'register', name: this.init.name, cookie: this.cookie, ...this.catalogField() });
    }
    else return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.init.maxRetryMs ?? 2_000);
    this.schedule(delay, () => {
      // A register that is never answered may carry an expired cookie: start from hello again.
      if (this.state === 'register' && this.retryDelay >= (this.init.maxRetryMs ?? 2_000)) this.state = 'hello';
      this.sendRegistration();
    });
  }

  private heartbeat(): void {
    if (this.state !== 'registered') return;
    if (this.unackedHeartbeats >= (this.init.missedAcksBeforeRetry ?? 3)) {
      this.init.logger.warn('gateway stopped answering heartbeats; registering again', { gateway: this.label });
      this.restart();
      return;
    }
    this.unackedHeartbeats++;
    this.init.send({ type: 'heartbeat', ...this.catalogField() });
    this.schedule(this.heartbeatMs, () => this.heartbeat());
  }

  private catalogField(): { catalog?: number } {
    const generation = this.init.catalog?.();
    return generation === undefined ? {} : { catalog: generation };
  }

  /** Refusals since the last admission (0 once admitted). */
  get refusedCount(): number {
    return this.refusals;
  }

  private schedule(delayMs: number, action: () => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(action, delayMs);
    this.timer.unref();
  }
}
