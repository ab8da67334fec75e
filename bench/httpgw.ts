/**
 * Starts httpgw (the gateway) and N fastfilesrv file servers from the built packages:
 *   node --single-threaded-gc packages/gateway/bin/httpgw.js 127.0.0.1 0 --udp-port 0 [--chunk-size B] [--window N]
 *   node --single-threaded-gc packages/file-server/bin/fastfilesrv.js 127.0.0.1 UDPPORT --root DIR --bind 127.0.0.1
 * and waits for "listening http=127.0.0.1:PORT udp=..." and "registered with gateway".
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, runCommand } from './proc.js';
import type { HttpgwGroup, HttpgwInstance, HttpgwLauncher, HttpgwOptions, HttpgwStartHooks } from './types.js';

export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

const GATEWAY_BIN = join(REPO_ROOT, 'packages/gateway/bin/httpgw.js');
const SERVER_BIN = join(REPO_ROOT, 'packages/file-server/bin/fastfilesrv.js');
/** What the bins' shebang lines pass to node (see packages/gateway/bin/httpgw.js). */
const NODE_FLAGS = ['--single-threaded-gc'];
const REQUIRED = ['packages/gateway/dist/cli.js', 'packages/file-server/dist/cli.js', 'packages/gateway/bin/httpgw.js', 'packages/file-server/bin/fastfilesrv.js'];

const LISTENING = /listening http=([\d.]+):(\d+) udp=([\d.]+):(\d+)/;
const REGISTERED = /registered with gateway/;
const START_TIMEOUT_MS = 15_000;
/** Log lines worth quoting when a download fails (JSON lines, or the readable form). */
const PROBLEM = /\b(WARN|ERROR)\b|"level":"(warn|error)"/;

/** Log level passed to both programs; they must still print their ready lines at it. */
const LOG_LEVEL = process.env.BENCH_HTTPGW_LOG_LEVEL ?? 'info';

function whyUnavailable(): string | undefined {
  const missing = REQUIRED.filter((p) => !existsSync(join(REPO_ROOT, p)));
  if (missing.length === 0) return undefined;
  return `httpgw is not built (missing ${missing.join(', ')}); run \`npx pnpm@10.34.8 build\` first`;
}

/**
 * All load comes from 127.0.0.1, so the gateway's per-client limits (if this build has them)
 * would act as global caps and turn wrk's extra connections into 429s: lift them.
 */
const LOAD_LIMITS: ReadonlyArray<[flag: string, value: number]> = [
  ['--max-transfers', 1024],
  ['--max-transfers-per-client', 1024],
  ['--max-connections-per-client', 4096],
];

/** The LOAD_LIMITS flags this gateway build accepts (read from its --help), and whether it has a cache. */
async function probeBuild(): Promise<{ limitArgs: string[]; hasCache: boolean }> {
  const r = await runCommand(process.execPath, [GATEWAY_BIN, '--help'], { timeoutMs: 15_000 });
  const help = `${r.stdout}\n${r.stderr}`;
  return {
    limitArgs: LOAD_LIMITS.filter(([flag]) => new RegExp(`${flag}\\b(?!-)`).test(help)).flatMap(([flag, value]) => [flag, String(value)]),
    hasCache: /--cache-size\b/.test(help),
  };
}

export interface HttpgwSetup {
  launcher: HttpgwLauncher;
  /** Extra gateway flags used for every start (the lifted limits). */
  extraArgs: readonly string[];
}

export async function createHttpgwLauncher(filesDir: string): Promise<HttpgwSetup> {
  const unavailable = whyUnavailable();
  const build = unavailable === undefined ? await probeBuild() : { limitArgs: [], hasCache: false };
  const extraArgs = build.limitArgs;
  const launcher: HttpgwLauncher = {
    unavailable,
    hasCache: build.hasCache,
    start: async (options: HttpgwOptions, hooks?: HttpgwStartHooks): Promise<HttpgwInstance> => {
      if (unavailable !== undefined) throw new Error(unavailable);
      // Cold unless asked otherwise: every request goes to the file servers (builds without a cache are cold anyway).
      const cacheArgs = build.hasCache && options.cacheSize !== 'default' ? ['--cache-size', options.cacheSize ?? '0'] : [];
      return startHttpgw(filesDir, options, [...extraArgs, ...cacheArgs], hooks);
    },
    startGroup: async (options) => {
      if (unavailable !== undefined) throw new Error(unavailable);
      const cacheArgs = build.hasCache && options.cacheSize !== 'default' ? ['--cache-size', options.cacheSize ?? '0'] : [];
      return startHttpgwGroup(filesDir, options, [...extraArgs, ...cacheArgs]);
    },
  };
  return { launcher, extraArgs };
}

async function startHttpgw(filesDir: string, options: HttpgwOptions, extraArgs: readonly string[], hooks: HttpgwStartHooks = {}): Promise<HttpgwInstance> {
  // Port 0 for both: the gateway prints the ports it got.
  const args = [...NODE_FLAGS, GATEWAY_BIN, '127.0.0.1', '0', '--udp-port', '0', '--log-level', LOG_LEVEL, ...extraArgs];
  if (options.chunkSize !== undefined) args.push('--chunk-size', String(options.chunkSize));
  if (options.window !== undefined) args.push('--window', String(options.window));
  if (options.gatewayArgs) args.push(...options.gatewayArgs);
  const workers = options.workers ?? 1;
  if (workers > 1) args.push('--workers', String(workers));
  const gateway = new ManagedProcess('httpgw', process.execPath, args, { cwd: REPO_ROOT });
  const servers: ManagedProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()));
    await gateway.stop();
  };
  try {
    const m = await gateway.waitForLine(LISTENING, START_TIMEOUT_MS);
    const httpPort = Number(m[2]);
    const gwUdpPort = Number(m[4]);
    // With --workers, every worker's UDP port: each file server registers with all of them.
    await waitForCount(gateway, LISTENING, workers, START_TIMEOUT_MS);
    const workerTargets = gateway.linesSince(0).flatMap((line) => LISTENING.exec(line)?.[4] ?? []).slice(1).flatMap((port) => ['--gateway', `127.0.0.1:${port}`]);
    const serverTarget = hooks.serverTarget ? await hooks.serverTarget(gwUdpPort) : gwUdpPort;
    for (let i = 0; i < options.servers; i++) {
      const target = hooks.serverTargetOf ? await hooks.serverTargetOf(i, gwUdpPort) : serverTarget;
      const args = [...NODE_FLAGS, SERVER_BIN, '127.0.0.1', String(target), ...workerTargets, '--root', filesDir, '--bind', '127.0.0.1', '--log-level', LOG_LEVEL, ...(hooks.serverArgs?.(i) ?? [])];
      servers.push(new ManagedProcess(`fastfilesrv#${i + 1}`, process.execPath, args, { cwd: REPO_ROOT }));
    }
    await Promise.all(servers.map((s) => waitForCount(s, REGISTERED, workers, START_TIMEOUT_MS)));
    return {
      target: {
        name: 'httpgw',
        url: (file) => `http://127.0.0.1:${httpPort}/${file}`,
        curlArgs: [],
        pids: () => [gateway.pid, ...servers.map((s) => s.pid)], // with --workers, their primary: serverPids() takes its process tree
        watchLog: () => {
          const procs = [gateway, ...servers];
          const marks = procs.map((p) => p.lineCount);
          return () =>
            procs.flatMap((p, i) => p.linesSince(marks[i] ?? 0).filter((l) => PROBLEM.test(l)).map((l) => `${p.name}: ${l.replace(/^\S+Z /, '')}`));
        },
      },
      gatewayPid: gateway.pid,
      stats: () => statsOf(gateway),
      serverPids: servers.map((s) => s.pid),
      options,
      alive: () => gateway.isRunning && servers.every((s) => s.isRunning),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Gateways started as in startHttpgw; then file servers given every gateway with `--gateway` (repeated). */
async function startHttpgwGroup(filesDir: string, options: HttpgwOptions & { gateways: number }, extraArgs: readonly string[]): Promise<HttpgwGroup> {
  const gateways: ManagedProcess[] = [];
  const servers: ManagedProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all(gateways.map((g) => g.stop()));
  };
  try {
    const ports: Array<{ http: number; udp: number }> = [];
    for (let i = 1; i <= options.gateways; i++) {
      const args = [...NODE_FLAGS, GATEWAY_BIN, '127.0.0.1', '0', '--udp-port', '0', '--log-level', LOG_LEVEL, ...extraArgs, ...(options.gatewayArgs ?? [])];
      const gateway = new ManagedProcess(`httpgw-${i}`, process.execPath, args, { cwd: REPO_ROOT });
      gateways.push(gateway);
      const m = await gateway.waitForLine(LISTENING, START_TIMEOUT_MS);
      ports.push({ http: Number(m[2]), udp: Number(m[4]) });
    }
    const targets = ports.flatMap(({ udp }) => ['--gateway', `127.0.0.1:${udp}`]);
    for (let i = 0; i < options.servers; i++) {
      const args = [...NODE_FLAGS, SERVER_BIN, ...targets, '--root', filesDir, '--bind', '127.0.0.1', '--log-level', LOG_LEVEL];
      servers.push(new ManagedProcess(`fastfilesrv#${i + 1}`, process.execPath, args, { cwd: REPO_ROOT }));
    }
    // Each server logs one "registered with gateway" per gateway.
    await Promise.all(servers.map((s) => waitForCount(s, REGISTERED, options.gateways, START_TIMEOUT_MS)));
    return {
      gateways: gateways.map((gateway, i) => ({
        name: gateway.name,
        url: (file: string) => `http://127.0.0.1:${ports[i]!.http}/${file}`,
        curlArgs: [],
        pids: () => [gateway.pid],
      })),
      serverPids: servers.map((s) => s.pid),
      stats: (index) => statsOf(gateways[index]!),
      alive: () => [...gateways, ...servers].every((p) => p.isRunning),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForCount(proc: ManagedProcess, re: RegExp, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (proc.linesSince(0).filter((line) => re.test(line)).length < count) {
    if (!proc.isRunning) throw new Error(`${proc.name} ${proc.describeExit()}\n${proc.formatTail()}`);
    if (Date.now() > deadline) throw new Error(`${proc.name}: fewer than ${count} lines matching ${String(re)} within ${timeoutMs} ms\n${proc.formatTail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends the gateway SIGUSR2 and returns the fields of the stats line it logs (empty if it logs none). */
async function statsOf(gateway: ManagedProcess): Promise<Record<string, string>> {
  const mark = gateway.lineCount;
  process.kill(gateway.pid, 'SIGUSR2');
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const line = gateway.linesSince(mark).find((l) => /"msg":"stats"| stats\b/.test(l));
    if (line) return statsFields(line);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {};
}

/** The fields of the gateway's stats line: a JSON log record, or (older builds) `name=value` pairs. */
export function statsFields(line: string): Record<string, string> {
  const json = line.indexOf('{');
  if (json >= 0) {
    try {
      const record = JSON.parse(line.slice(json)) as Record<string, unknown>;
      return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, String(value)]));
    } catch {
      // not JSON: the readable form
    }
  }
  return Object.fromEntries([...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
}

/** Short description of a gateway configuration, e.g. "3 servers, chunk 8192, window 32". */
export function describeHttpgw(o: HttpgwOptions): string {
  const parts = [`${o.servers} server${o.servers === 1 ? '' : 's'}`];
  if (o.chunkSize !== undefined) parts.push(`chunk ${o.chunkSize}`);
  if (o.window !== undefined) parts.push(`window ${o.window}`);
  if (o.cacheSize !== undefined && o.cacheSize !== '0') parts.push(`cache ${o.cacheSize}`);
  return parts.join(', ');
}
