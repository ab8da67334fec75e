import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { prettyLine } from '@httpgw/runtime';

const repo = fileURLToPath(new URL('../../', import.meta.url));
export const BINS = {
  httpgw: `${repo}packages/gateway/bin/httpgw.js`,
  fastfilesrv: `${repo}packages/file-server/bin/fastfilesrv.js`,
};

export interface RunningProcess {
  child: ChildProcess;
  /**
   * Everything written to stderr so far, each JSON log line in the readable one-line form
   * (`TIME LEVEL name: message key=value…`) so patterns read as the logs do on a terminal.
   */
  log(): string;
  /** The JSON log records written so far (lines that are not JSON are left out). */
  records(): Array<Record<string, unknown>>;
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
  let partial = '';
  const records: Array<Record<string, unknown>> = [];
  const watchers = new Set<() => void>();
  child.stderr.on('data', (data: Buffer) => {
    const lines = (partial + data.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const record = parseRecord(line);
      if (record) records.push(record);
      stderr += record ? prettyLine(record) : `${line}\n`;
    }
    for (const watcher of watchers) watcher();
  });
  child.stderr.once('end', () => {
    if (partial) stderr += `${partial}\n`;
    partial = '';
    for (const watcher of watchers) watcher();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    log: () => stderr,
    records: () => records,
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

/** A pino JSON log line as an object; undefined for any other line (usage errors, crashes). */
export function parseRecord(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const record: unknown = JSON.parse(line);
    return typeof record === 'object' && record !== null && 'msg' in record ? (record as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
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
