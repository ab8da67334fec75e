/** Helpers shared by the scenarios. */
import { CpuMeter, GB, curlDownload, processTree, sleep, sum, type Download } from '../measure.js';
import type { SizeName } from '../files.js';
import type { BenchContext, DownloadTarget, HttpgwInstance } from '../types.js';

/** Thrown by a scenario that cannot run at all here (reported as skipped, not failed). */
export class SkipScenario extends Error {}

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';

export const CURL_TIMEOUT_MS = 180_000;

/** One curl download; on failure the servers' recent warnings are added to the error. */
export async function download(target: DownloadTarget, file: string, expectBytes: number): Promise<Download> {
  const warnings = target.watchLog?.();
  try {
    return await curlDownload(target.url(file), { extraArgs: target.curlArgs, expectBytes, timeoutMs: CURL_TIMEOUT_MS });
  } catch (err) {
    if (!warnings) throw err;
    await sleep(100);
    const lines = warnings();
    if (lines.length === 0) throw err;
    throw new Error(`${errorText(err)} — log: ${lines.slice(-3).join(' | ')}`);
  }
}

export interface Batch {
  downloads: Download[];
  bytes: number;
  /** CPU seconds per process of `pids`, in the same order. */
  cpu: number[];
}

/** `count` sequential downloads of one file while metering the CPU time of `pids`. */
export async function meteredBatch(target: DownloadTarget, file: string, expectBytes: number, count: number, pids: readonly number[]): Promise<Batch> {
  const meter = new CpuMeter(pids);
  const downloads: Download[] = [];
  for (let i = 0; i < count; i++) downloads.push(await download(target, file, expectBytes));
  return { downloads, bytes: sum(downloads.map((d) => d.bytes)), cpu: meter.stop() };
}

/** CPU seconds per 10^9 bytes moved. */
export const perGB = (cpuS: number, bytes: number): number => (bytes > 0 ? cpuS / (bytes / GB) : Number.NaN);

/** Server-side processes of a target: the whole process tree (nginx master + workers). */
export function serverPids(target: DownloadTarget): number[] {
  return target.pids().flatMap((pid) => processTree(pid));
}

/** The peers of a context that are running, by report name. */
export function peerTargets(ctx: BenchContext): Map<string, DownloadTarget> {
  const m = new Map<string, DownloadTarget>();
  for (const t of [ctx.peers.nginxDirect, ctx.peers.nginxProxy, ctx.peers.tftpLarge, ctx.peers.tftpSmall]) {
    if (t) m.set(t.name, t);
  }
  return m;
}

/**
 * Downloads through a gateway just started, before anything is measured: V8 compiles the hot code
 * in the first few hundred MB (running it unoptimised meanwhile, at about twice the CPU), while a
 * gateway in service has long been warm. What a cold start costs is measured on its own (cost).
 */
export async function warmUp(gw: HttpgwInstance, files: BenchContext['files'], progress: (text: string) => void): Promise<void> {
  const plan: Array<[SizeName, number]> = [['64 MiB', 8], ['1 MiB', 32], ['4 KiB', 100]];
  for (const [size, count] of plan) {
    const file = await files.ensure(size);
    progress(`warming httpgw up: ${count} x ${size}`);
    for (let i = 0; i < count; i++) await download(gw.target, file, files.bytes(size));
  }
}

/** The shared gateway, or undefined when httpgw cannot run (not built: the report header says so). */
export async function sharedGatewayOrNote(ctx: BenchContext): Promise<HttpgwInstance | undefined> {
  if (ctx.httpgw.unavailable !== undefined) return undefined;
  try {
    return await ctx.sharedHttpgw();
  } catch (err) {
    ctx.note(`httpgw failed to start: ${errorText(err)}`);
    return undefined;
  }
}

/** Throws SkipScenario when httpgw is not built. */
export function requireHttpgw(ctx: BenchContext): void {
  if (ctx.httpgw.unavailable !== undefined) throw new SkipScenario(ctx.httpgw.unavailable);
}


/**
 * Keeps a scenario going when single downloads fail: each failure becomes a note, the sample
 * is dropped, and a target is given up (for the rest of the scenario) after `max` failures.
 */
export class Failures {
  private readonly counts = new Map<string, number>();
  constructor(
    private readonly ctx: BenchContext,
    private readonly max = 3,
  ) {}

  /** Runs `fn`; on failure notes it under `key` (`what` describes the attempt) and returns undefined. */
  async attempt<T>(key: string, what: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (this.gaveUp(key)) return undefined;
    try {
      return await fn();
    } catch (err) {
      const n = (this.counts.get(key) ?? 0) + 1;
      this.counts.set(key, n);
      this.ctx.note(`${what}: ${errorText(err)}${n >= this.max ? ` — ${key} given up after ${n} failures` : ''}`);
      return undefined;
    }
  }

  gaveUp(key: string): boolean {
    return (this.counts.get(key) ?? 0) >= this.max;
  }
}

export interface SeriesPlan {
  target: DownloadTarget;
  /** Row label, used in progress and notes. */
  label: string;
  file: string;
  bytes: number;
  samples: number;
  /** Downloads per sample (default 1). */
  perSample?: number;
  /** Processes whose CPU is metered; order is kept in Batch.cpu. */
  pids: readonly number[];
  /** Warm-up download (default: the measured file). */
  warmUp?: { file: string; bytes: number };
  /** Warm-up downloads (default 1): a JIT-compiled server reaches its steady cost only after some. */
  warmUpDownloads?: number;
  /** Gets the first warm-up download metered: the cost of a process just started. */
  onFirstDownload?: (batch: Batch) => void;
  /** Called between the warm-up and the first measured sample (e.g. to reset VmHWM). */
  afterWarmUp?: () => void;
}

/** Unmeasured warm-up downloads (the first may be metered), then `samples` metered batches. Failures become notes. */
export async function measureSeries(ctx: BenchContext, failures: Failures, plan: SeriesPlan): Promise<Batch[]> {
  const key = plan.target.name;
  const perSample = plan.perSample ?? 1;
  const warm = plan.warmUp ?? { file: plan.file, bytes: plan.bytes };
  const warmUps = plan.warmUpDownloads ?? 1;
  for (let i = 1; i <= warmUps && !failures.gaveUp(key); i++) {
    const what = `${plan.label} warm-up${warmUps > 1 ? ` ${i}/${warmUps}` : ''}`;
    ctx.progress(what);
    if (i === 1 && plan.onFirstDownload) {
      const first = await failures.attempt(key, what, () => meteredBatch(plan.target, warm.file, warm.bytes, 1, plan.pids));
      if (first) plan.onFirstDownload(first);
    } else await failures.attempt(key, what, () => download(plan.target, warm.file, warm.bytes));
  }
  plan.afterWarmUp?.();
  const batches: Batch[] = [];
  for (let i = 1; i <= plan.samples && !failures.gaveUp(key); i++) {
    const what = `${plan.label}: sample ${i}/${plan.samples}${perSample > 1 ? ` (${perSample} downloads)` : ''}`;
    ctx.progress(what);
    const b = await failures.attempt(key, what, () => meteredBatch(plan.target, plan.file, plan.bytes, perSample, plan.pids));
    if (b) batches.push(b);
  }
  return batches;
}

/** Records throughput (per download) and CPU per GB (all metered processes, and the gateway if any). */
export function recordSeries(ctx: BenchContext, kase: string, target: string, batches: readonly Batch[], gatewayIndex?: number): void {
  if (batches.length === 0) return;
  const base = { case: kase, target };
  ctx.record({ ...base, metric: 'throughput', unit: 'MB/s', better: 'higher', samples: batches.flatMap((b) => b.downloads.map((d) => d.mbps)) });
  ctx.record({ ...base, metric: 'CPU per GB, all server processes', unit: 's/GB', better: 'lower', samples: batches.map((b) => perGB(sum(b.cpu), b.bytes)) });
  if (gatewayIndex !== undefined) {
    ctx.record({ ...base, metric: 'CPU per GB, gateway only', unit: 's/GB', better: 'lower', samples: batches.map((b) => perGB(b.cpu[gatewayIndex] ?? Number.NaN, b.bytes)) });
  }
}
