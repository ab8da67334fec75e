/** Helpers shared by the scenarios. */
import { CpuMeter, GB, curlDownload, processTree, sum, type Download } from '../measure.js';
import type { BenchContext, DownloadTarget, HttpgwInstance } from '../types.js';

/** Thrown by a scenario that cannot run at all here (reported as skipped, not failed). */
export class SkipScenario extends Error {}

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';

export const CURL_TIMEOUT_MS = 180_000;

export function download(target: DownloadTarget, file: string, expectBytes: number): Promise<Download> {
  return curlDownload(target.url(file), { extraArgs: target.curlArgs, expectBytes, timeoutMs: CURL_TIMEOUT_MS });
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

