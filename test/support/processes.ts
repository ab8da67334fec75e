import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../', import.meta.url));
export const BINS = {
  httpgw: `${repo}packages/gateway/bin/httpgw.js`,
  fastfilesrv: `${repo}packages/file-server/bin/fastfilesrv.js`,
};

export interface RunningProcess {
  child: ChildProcess;
  /** Everything written to stderr so far. */
  log(): string;
  /** Resolves with the first stderr line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts one of the CLIs under Node (as another user with `as`); its stderr is collected for assertions. */
export function startProcess(bin: keyof typeof BINS, args: string[], as?: { uid: number; gid: number }): RunningProcess {
  return startCommand(process.execPath, [BINS[bin], ...args], as);
}

/** Starts any executable (an installed command, say) the way startProcess starts the CLIs. */
export function startCommand(file: string, args: string[], as?: { uid: number; gid: number }): RunningProcess {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...as });
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stderr.on('data', (data: Buffer) => {
    stderr += data.toString();
    for (const watcher of watchers) watcher();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    log: () => stderr,
    waitForLine: (pattern, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        const check = () => {
          const match = new RegExp(pattern.source, pattern.flags.replace('g', '') + 'm').exec(stderr);
          if (!match) return;
          clearTimeout(timer);
          watchers.delete(check);
          resolve(match);
        };
        watchers.add(check);
        check();
      }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Runs a command to completion (bounded), collecting its output. */
export function run(command: string, args: string[], options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
    child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Peak resident memory (VmHWM) and current RSS of a process, in bytes (Linux). */
export async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}
