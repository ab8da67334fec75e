/**
 * Child processes of the benchmark: daemons (nginx, in.tftpd, httpgw, fastfilesrv) and
 * clients (curl, wrk). Every child is registered here so that `stopAll()` can end them on
 * normal exit, on failure and on SIGINT/SIGTERM.
 *
 * Daemons are spawned `detached` (own process group) so that stopping one also ends its
 * workers (nginx) and so that a Ctrl-C in the terminal reaches only this driver, which then
 * shuts everything down in order.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const TAIL_LINES = 60;

interface LineWaiter {
  re: RegExp;
  resolve: (m: RegExpMatchArray) => void;
  reject: () => void;
}

export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Last lines written to stdout/stderr, for error messages. */
  readonly tail: string[] = [];
  private exited = false;
  private exitInfo = '';
  private readonly exitPromise: Promise<void>;
  private lineWaiters: LineWaiter[] = [];
  private partial = '';
  /** Number of output lines seen so far. */
  lineCount = 0;

  constructor(name: string, command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.name = name;
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (this.child.pid === undefined) {
      // spawn failures (ENOENT) are reported through 'error'; give it a pid-less placeholder.
      this.pid = -1;
    } else {
      this.pid = this.child.pid;
    }
    this.exitPromise = new Promise<void>((resolve) => {
      this.child.once('error', (err) => {
        this.exited = true;
        this.exitInfo = `failed to start: ${err.message}`;
        this.flushWaiters();
        resolve();
      });
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitInfo = signal !== null ? `killed by ${signal}` : `exited with code ${String(code)}`;
        this.flushWaiters();
        resolve();
      });
    });
    const onData = (chunk: Buffer): void => this.onOutput(chunk.toString('utf8'));
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    registry.add(this);
    void this.exitPromise.then(() => registry.delete(this));
  }

  get isRunning(): boolean {
    return !this.exited;
  }

  describeExit(): string {
    return this.exited ? this.exitInfo : 'running';
  }

  /** Resolves with the first output line matching `re` (already seen or future). */
  waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    for (const line of this.tail) {
      const m = line.match(re);
      if (m) return Promise.resolve(m);
    }
    if (this.exited) {
      return Promise.reject(new Error(`${this.name} ${this.exitInfo} before printing ${String(re)}\n${this.formatTail()}`));
    }
    return new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.lineWaiters = this.lineWaiters.filter((w) => w.re !== re);
        reject(new Error(`${this.name}: no line matching ${String(re)} within ${timeoutMs} ms\n${this.formatTail()}`));
      }, timeoutMs);
      this.lineWaiters.push({
        re,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: () => {
          clearTimeout(timer);
          reject(new Error(`${this.name} ${this.exitInfo} before printing ${String(re)}\n${this.formatTail()}`));
        },
      });
    });
  }

  formatTail(lines = 15): string {
    const shown = this.tail.slice(-lines);
    return shown.length === 0 ? `  (${this.name} printed nothing)` : shown.map((l) => `  ${this.name}| ${l}`).join('\n');
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.exited || this.pid < 0) return;
    signalGroup(this.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(this.pid, 'SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
    // Workers of a daemon may outlive the leader for a moment; make sure the group is gone.
    signalGroup(this.pid, 'SIGKILL');
  }

  /** Resolves when the process has exited. */
  wait(): Promise<void> {
    return this.exitPromise;
  }

  private onOutput(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.onLine(line);
    if (this.partial.length > 4096) {
      this.onLine(this.partial);
      this.partial = '';
    }
  }

  /** Lines printed since `lineCount` was `mark` (as far as the tail still holds them). */
  linesSince(mark: number): string[] {
    const n = Math.min(this.lineCount - mark, this.tail.length);
    return n <= 0 ? [] : this.tail.slice(-n);
  }

  private onLine(line: string): void {
    this.lineCount++;
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    if (this.lineWaiters.length === 0) return;
    const still: typeof this.lineWaiters = [];
    for (const w of this.lineWaiters) {
      const m = line.match(w.re);
      if (m) w.resolve(m);
      else still.push(w);
    }
    this.lineWaiters = still;
  }

  private flushWaiters(): void {
    if (this.partial !== '') {
      this.onLine(this.partial);
      this.partial = '';
    }
    for (const w of this.lineWaiters) w.reject();
    this.lineWaiters = [];
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

const registry = new Set<ManagedProcess>();

/** Stops every daemon still running (newest first: file servers before their gateway). */
export async function stopAll(): Promise<void> {
  for (const p of [...registry].reverse()) await p.stop(2000);
}

/** Synchronous last resort, for process 'exit'. */
function killAllNow(): void {
  for (const p of registry) {
    if (p.pid > 0) signalGroup(p.pid, 'SIGKILL');
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output (bounded by `timeoutMs`). */
export function runCommand(
  command: string,
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise<RunResult>((resolve) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid ?? -1;
    const untrack = trackClient(pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      if (stdout.length < 1_000_000) stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 1_000_000) stderr += c.toString('utf8');
    });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            if (pid > 0) signalGroup(pid, 'SIGKILL');
          }, options.timeoutMs);
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      untrack();
      resolve({ code: 127, signal: null, stdout, stderr: stderr + err.message });
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      untrack();
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const clientPids = new Set<number>();
function trackClient(pid: number): () => void {
  if (pid > 0) clientPids.add(pid);
  return () => clientPids.delete(pid);
}

function killClientsNow(): void {
  for (const pid of clientPids) signalGroup(pid, 'SIGKILL');
  clientPids.clear();
}

let cleanupHooks: Array<() => Promise<void> | void> = [];

/** Registers work to do on shutdown (after children are stopped), e.g. removing temp dirs. */
export function onCleanup(hook: () => Promise<void> | void): void {
  cleanupHooks.push(hook);
}

let cleaningUp: Promise<void> | undefined;

/** Stops children and runs cleanup hooks once. */
export function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    killClientsNow();
    await stopAll();
    const hooks = cleanupHooks.reverse();
    cleanupHooks = [];
    for (const hook of hooks) {
      try {
        await hook();
      } catch (err) {
        process.stderr.write(`cleanup: ${String(err)}\n`);
      }
    }
  })();
  return cleaningUp;
}

/** SIGINT/SIGTERM: stop everything, then exit 130/143. */
export function installSignalHandlers(): void {
  const handler = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\n${signal}: stopping peers and cleaning up...\n`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  process.once('exit', () => {
    killClientsNow();
    killAllNow();
  });
}
