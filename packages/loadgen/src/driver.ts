/**
 * Sends the requests and measures them. Open loop: each request leaves at its intended time from
 * the schedule whether or not earlier ones were answered, and its latency runs from that intended
 * time, so a server (or a generator) that falls behind shows it instead of slowing the test down.
 * Closed loop (for comparing with wrk): N connections each send, wait for the answer, send again.
 *
 * Connections come from a keep-alive Agent that opens a new one whenever none is free, up to
 * maxConnections. A request due when all of them are busy waits in the Agent's queue (its wait
 * counts in its latency) and is counted as pool exhaustion.
 */
import { createHash } from 'node:crypto';
import hdr from 'hdr-histogram-js';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { intendedTimes, type Arrival, type RateProfile } from './schedule.js';
import { nowMs, sleepUntil } from './precise-timer.js';
import { Recorder, summarize, type ErrorKind, type IntervalStats, type LatencySummary } from './recorder.js';
import type { Uniform } from './random.js';
import type { RequestSpec, Workload } from './workload.js';

export type LoadMode = { kind: 'open'; arrival: Arrival; rate: RateProfile } | { kind: 'closed'; concurrency: number };

export interface RunInit {
  workload: Workload;
  mode: LoadMode;
  durationMs: number;
  warmupMs: number;
  maxConnections: number;
  timeoutMs: number;
  uniform: Uniform;
  /** Called once a second with the second that ended and the measured totals so far. */
  onSecond?: (interval: IntervalStats, soFar: LatencySummary, errors: number) => void;
  /** Keep every answered request's intended time, latency and this response header (for checks such as M/M/1). */
  sampleHeader?: string;
}

export interface Sample {
  intendedMs: number;
  latencyMs: number;
  header: string | undefined;
  /** False for warm-up requests (kept so a check can replay the whole run). */
  measured: boolean;
}

export interface RunResult {
  durationS: number;
  warmupS: number;
  /** Requests due in the measured window, per second. */
  offeredRps: number;
  /** Answers (any status) to measured requests, per second of the window. */
  achievedRps: number;
  /** Body bytes of measured answers, per second. */
  bytesPerS: number;
  offered: number;
  completed: number;
  errors: Record<ErrorKind, number>;
  latency: LatencySummary;
  /** Requests that found every connection busy and had to queue. */
  poolExhausted: number;
  peakConnections: number;
  /** Most a request left after its intended time (the generator's own lag; large means it could not keep up). */
  maxSendLagMs: number;
  intervals: IntervalStats[];
  /** The measured latency histogram (µs), HdrHistogram's compressed base64 form. */
  histogram: string;
  samples?: Sample[];
  /** Internal: the histogram object, for plots. */
  recorder: Recorder;
}

class RequestFailure extends Error {
  constructor(readonly kind: ErrorKind, message: string) {
    super(message);
  }
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_CONSTANT']);
const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

function classify(err: unknown): ErrorKind {
  if (err instanceof RequestFailure) return err.kind;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CONNECT_CODES.has(code)) return 'connect';
  if (typeof code === 'string' && RESET_CODES.has(code)) return 'reset';
  if (err instanceof Error && /socket hang up|aborted/i.test(err.message)) return 'reset';
  return 'other';
}

interface Answer {
  bytes: number;
  status: number;
  header: string | undefined;
}

export async function runLoad(init: RunInit): Promise<RunResult> {
  const agentOptions = { keepAlive: true, maxSockets: init.maxConnections, maxFreeSockets: init.maxConnections, scheduling: 'fifo' as const };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  const recorder = new Recorder();
  const samples: Sample[] | undefined = init.sampleHeader === undefined ? undefined : [];
  const sockets = new WeakSet<Socket>();
  let openSockets = 0;
  let peakConnections = 0;
  let inFlight = 0;
  let poolExhausted = 0;
  let maxSendLagMs = 0;
  const pending = new Set<Promise<void>>();

  const send = (spec: RequestSpec): Promise<Answer> =>
    new Promise<Answer>((resolve, reject) => {
      const lib = spec.url.protocol === 'https:' ? https : http;
      const headers: Record<string, string> = {};
      if (spec.range) headers.range = spec.range;
      const req = lib.request(spec.url, { method: spec.method, agent: spec.url.protocol === 'https:' ? agents.https : agents.http, headers });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy(new RequestFailure('timeout', `no answer within ${init.timeoutMs} ms`));
      }, init.timeoutMs);
      // Destroying a request mid-body also surfaces as an abort or reset: the timeout is the cause.
      const fail = (err: unknown) => {
        clearTimeout(timer);
        reject(timedOut ? new RequestFailure('timeout', `no answer within ${init.timeoutMs} ms`) : err);
      };
      req.on('socket', (socket: Socket) => {
        if (sockets.has(socket)) return;
        sockets.add(socket);
        socket.setNoDelay(true);
        peakConnections = Math.max(peakConnections, ++openSockets);
        socket.once('close', () => openSockets--);
      });
      req.on('error', fail);
      req.on('response', (res) => {
        const hash = spec.sha256 !== undefined && res.statusCode === 200 ? createHash('sha256') : undefined;
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          hash?.update(chunk);
        });
        res.on('error', fail);
        res.on('aborted', () => fail(new RequestFailure('reset', 'connection closed mid-body')));
        res.on('end', () => {
          clearTimeout(timer);
          const status = res.statusCode ?? 0;
          const header = init.sampleHeader === undefined ? undefined : res.headers[init.sampleHeader.toLowerCase()];
          const answer: Answer = { bytes, status, header: Array.isArray(header) ? header.join(',') : header };
          if (status < 200 || status > 299) return reject(Object.assign(new RequestFailure('status', `HTTP ${status}`), { answer }));
          const announced = res.headers['content-length'];
          if (spec.method !== 'HEAD' && announced !== undefined && Number(announced) !== bytes) return reject(Object.assign(new RequestFailure('length', `${bytes} of ${announced} bytes`), { answer }));
          if (spec.method !== 'HEAD' && spec.expectBytes !== undefined && spec.expectBytes !== bytes) return reject(Object.assign(new RequestFailure('length', `${bytes} bytes, expected ${spec.expectBytes}`), { answer }));
          if (hash && hash.digest('hex') !== spec.sha256) return reject(Object.assign(new RequestFailure('checksum', 'body differs from the manifest'), { answer }));
          resolve(answer);
        });
      });
      req.end();
    });

  const start = nowMs();
  const measureFrom = init.warmupMs;
  const end = init.warmupMs + init.durationMs;

  /** One request whose clock starts at `intendedMs` (since start). */
  const fire = (intendedMs: number): Promise<void> => {
    const measured = intendedMs >= measureFrom && intendedMs < end;
    recorder.intended(measured);
    if (inFlight >= init.maxConnections) poolExhausted += measured ? 1 : 0;
    inFlight++;
    const p = send(init.workload.next()).then(
      (answer) => {
        const latency = nowMs() - start - intendedMs;
        recorder.response(latency, answer.bytes, measured);
        samples?.push({ intendedMs, latencyMs: latency, header: answer.header, measured });
      },
      (err: unknown) => {
        const answer = (err as { answer?: Answer }).answer;
        // A wrong answer is still an answer: its latency counts (as wrk does); a dropped one has none.
        if (answer) recorder.response(nowMs() - start - intendedMs, answer.bytes, measured);
        recorder.error(classify(err), measured);
      },
    );
    const tracked = p.finally(() => {
      inFlight--;
      pending.delete(tracked);
    });
    pending.add(tracked);
    return tracked;
  };

  let second = 1;
  const ticker = setInterval(() => {
    const stats = recorder.tick(second, second * 1000 <= measureFrom, inFlight);
    second++;
    init.onSecond?.(stats, summarize(recorder.total), recorder.errorCount());
  }, 1000);

  try {
    if (init.mode.kind === 'open') {
      for (const t of intendedTimes({ arrival: init.mode.arrival, rate: init.mode.rate, uniform: init.uniform })) {
        if (t >= end) break;
        await sleepUntil(start + t);
        maxSendLagMs = Math.max(maxSendLagMs, nowMs() - start - t);
        void fire(t);
      }
    } else {
      const worker = async () => {
        for (;;) {
          const t = nowMs() - start;
          if (t >= end) return;
          await fire(t);
        }
      };
      await Promise.all(Array.from({ length: init.mode.concurrency }, worker));
    }
    await Promise.all(pending);
  } finally {
    clearInterval(ticker);
    agents.http.destroy();
    agents.https.destroy();
  }
  if ((nowMs() - start) % 1000 > 1) recorder.tick((nowMs() - start) / 1000, false, 0);

  const durationS = init.durationMs / 1000;
  const result: RunResult = {
    durationS,
    warmupS: init.warmupMs / 1000,
    offeredRps: recorder.offered / durationS,
    achievedRps: recorder.completed / durationS,
    bytesPerS: recorder.bytes / durationS,
    offered: recorder.offered,
    completed: recorder.completed,
    errors: { ...recorder.errors },
    latency: summarize(recorder.total),
    poolExhausted,
    peakConnections,
    maxSendLagMs,
    intervals: recorder.intervals,
    histogram: encodeHistogram(recorder),
    recorder,
  };
  if (samples) result.samples = samples;
  return result;
}

/** The compressed form HdrHistogram tools read (e.g. to merge runs or plot them elsewhere). */
const encodeHistogram = (recorder: Recorder): string => hdr.encodeIntoCompressedBase64(recorder.total);
