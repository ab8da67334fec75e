/**
 * Measuring helpers: curl downloads, wrk load, /proc CPU and memory readings, statistics,
 * free ports.
 */
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { runCommand } from './proc.js';

export const MB = 1e6;
export const GB = 1e9;
export const MiB = 1024 * 1024;

// ---------------------------------------------------------------- statistics

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

// ---------------------------------------------------------------- curl

export interface Download {
  bytes: number;
  totalS: number;
  ttfbS: number;
  /** 10^6 bytes per second over the whole transfer. */
  mbps: number;
}

export interface CurlOptions {
  extraArgs?: readonly string[];
  expectBytes?: number;
  timeoutMs?: number;
  /** Accept a transfer cut by --max-time (curl exit 28), e.g. for slow-client tests. */
  allowTimeout?: boolean;
}

/** Downloads `url` to /dev/null with curl; throws unless the full body arrived. */
export async function curlDownload(url: string, options: CurlOptions = {}): Promise<Download> {
  const args = [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{size_download} %{time_total} %{time_starttransfer} %{response_code}',
    ...(url.startsWith('http') ? ['--fail'] : []),
    ...(options.extraArgs ?? []),
    url,
  ];
  const r = await runCommand('curl', args, { timeoutMs: options.timeoutMs ?? 600_000 });
  const okCode = r.code === 0 || (options.allowTimeout === true && r.code === 28);
  const parts = r.stdout.trim().split(/\s+/).map(Number);
  const [bytes, totalS, ttfbS] = parts;
  if (!okCode || bytes === undefined || totalS === undefined || ttfbS === undefined || parts.some(Number.isNaN)) {
    throw new Error(`curl ${url} failed (exit ${String(r.code)}${r.signal ? ` ${r.signal}` : ''}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  if (options.expectBytes !== undefined && bytes !== options.expectBytes) {
    throw new Error(`curl ${url}: got ${bytes} bytes, expected ${options.expectBytes}`);
  }
  return { bytes, totalS, ttfbS, mbps: totalS > 0 ? bytes / totalS / MB : Number.NaN };
}

// ---------------------------------------------------------------- wrk

export interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Bytes per second as reported by wrk's Transfer/sec. */
  transferBps: number;
  requests: number;
  socketErrors: number;
  non2xx: number;
}

export async function runWrk(url: string, connections: number, durationS: number, threads = 2): Promise<WrkResult> {
  const args = ['--latency', `-t${threads}`, `-c${connections}`, `-d${durationS}s`, '--timeout', '10s', url];
  const r = await runCommand('wrk', args, { timeoutMs: (durationS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`wrk ${args.join(' ')} failed (exit ${String(r.code)}): ${r.stderr.trim()}`);
  return parseWrk(r.stdout);
}

export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp): number | undefined => {
    const m = out.match(re);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  };
  const lat = (pct: string): number => {
    const m = out.match(new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm'));
    if (!m?.[1] || !m[2]) return Number.NaN;
    const scale: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3 };
    return Number(m[1]) * (scale[m[2]] ?? Number.NaN);
  };
  const transfer = out.match(/Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/);
  const tScale: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
  const socketM = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const socketErrors = socketM ? socketM.slice(1, 5).reduce((a, b) => a + Number(b), 0) : 0;
  const rps = num(/Requests\/sec:\s+([\d.]+)/);
  if (rps === undefined) throw new Error(`cannot parse wrk output:\n${out}`);
  return {
    rps,
    p50ms: lat('50'),
    p99ms: lat('99'),
    transferBps: transfer?.[1] && transfer[2] ? Number(transfer[1]) * (tScale[transfer[2]] ?? Number.NaN) : Number.NaN,
    requests: num(/(\d+) requests in/) ?? Number.NaN,
    socketErrors,
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0,
  };
}

// ---------------------------------------------------------------- /proc

let clockTicks = 100;
export async function initClockTicks(): Promise<void> {
  const r = await runCommand('getconf', ['CLK_TCK']);
  const n = Number(r.stdout.trim());
  if (r.code === 0 && Number.isFinite(n) && n > 0) clockTicks = n;
}

/** utime+stime of one process in seconds (NaN if it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

function statusField(pid: number, field: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m?.[1] ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident set size (VmHWM) in bytes. */
export const peakRss = (pid: number): number => statusField(pid, 'VmHWM');
/** Current resident set size (VmRSS) in bytes. */
export const currentRss = (pid: number): number => statusField(pid, 'VmRSS');

/** Resets VmHWM to the current RSS (Linux >= 4.0, needs write access). Returns success. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** `pid` and all its descendants (e.g. an nginx master and its workers). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      /* raced with exit */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

export const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** CPU seconds used by each of a set of processes between construction and `stop()`. */
export class CpuMeter {
  private readonly before: number[];
  constructor(private readonly pids: readonly number[]) {
    this.before = pids.map(cpuSeconds);
  }
  stop(): number[] {
    return this.pids.map((pid, i) => cpuSeconds(pid) - (this.before[i] as number));
  }
}

/** Samples the summed VmRSS of `pids()` every `intervalMs` and keeps the maximum. */
export class RssSampler {
  maxBytes = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pids: () => readonly number[], intervalMs = 100) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }
  sample(): void {
    const total = sum(this.pids().map(currentRss).filter((n) => !Number.isNaN(n)));
    if (total > this.maxBytes) this.maxBytes = total;
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.maxBytes;
  }
}

// ---------------------------------------------------------------- ports

/** A currently free TCP port on 127.0.0.1 (bind to 0, read, close). */
export function freeTcpPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A currently free UDP port on 127.0.0.1. */
export function freeUdpPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const sock = createSocket('udp4');
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      const port = sock.address().port;
      sock.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
