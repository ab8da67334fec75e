/**
 * A real HAProxy (/usr/sbin/haproxy) running deploy/haproxy.cfg, the example operators copy, with
 * only the addresses filled in: the listening port, the admin socket and the gateways. Each
 * replacement must find its line in the example, so a test fails when the example changes shape
 * instead of testing a config nobody ships. The bench uses it too (bench/scenarios/haproxy.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './processes.js';
import { freePort } from './prometheus.js';

export const HAPROXY_BIN = '/usr/sbin/haproxy';
export const EXAMPLE_CONFIG = fileURLToPath(new URL('../../deploy/haproxy.cfg', import.meta.url));

export interface Backend {
  /** The name HAProxy reports (`show stat`, its log). */
  name: string;
  host: string;
  port: number;
}

export interface HaproxyInit {
  backends: Backend[];
  /** Replaces `balance leastconn` (the bench compares `roundrobin` and `uri`). */
  balance?: string;
  /** Adds `hash-type consistent` after the balance line (for `uri`: adding a gateway moves few paths). */
  consistentHash?: boolean;
  /** false drops the health checks, for a peer without /readyz (nginx in the bench). */
  checks?: boolean;
}

export interface RenderInit extends HaproxyInit {
  port: number;
  socket: string;
}

/** Replaces the one line matching `pattern` in `text` (the example must have exactly one). */
function replaceLine(text: string, pattern: RegExp, replacement: string | ((indent: string) => string)): string {
  const lines = text.split('\n');
  const hits = lines.flatMap((line, i) => (pattern.test(line) ? [i] : []));
  if (hits.length !== 1) throw new Error(`deploy/haproxy.cfg: expected one line matching ${pattern}, found ${hits.length}`);
  const line = lines[hits[0]!]!;
  const indent = /^\s*/.exec(line)![0];
  lines[hits[0]!] = typeof replacement === 'string' ? line.replace(pattern, replacement) : replacement(indent);
  return lines.join('\n');
}

/** deploy/haproxy.cfg with the test's addresses (and, when asked, another balance or no checks). */
export function renderHaproxyConfig(template: string, init: RenderInit): string {
  let text = replaceLine(template, /^(\s*bind) :80\b.*$/, `$1 127.0.0.1:${init.port}`);
  text = replaceLine(text, /^(\s*stats socket) \/run\/haproxy\/admin\.sock\b/, `$1 ${init.socket}`);
  if (init.balance !== undefined || init.consistentHash) {
    const balance = init.balance ?? 'leastconn';
    text = replaceLine(text, /^\s*balance leastconn$/, (indent) => `${indent}balance ${balance}${init.consistentHash ? `\n${indent}hash-type consistent` : ''}`);
  }
  if (init.checks === false) {
    for (const pattern of [/^\s*option httpchk /, /^\s*http-check expect /, /^\s*default-server check /]) text = replaceLine(text, pattern, () => '');
  }
  // The example's gateways: every `server gwN ADDRESS` line, replaced by the test's backends.
  const lines = text.split('\n');
  const first = lines.findIndex((line) => /^\s*server gw\d+ \S+$/.test(line));
  const count = lines.filter((line) => /^\s*server gw\d+ \S+$/.test(line)).length;
  if (first < 0 || count < 2) throw new Error('deploy/haproxy.cfg: expected the example server lines `server gwN ADDRESS`');
  const indent = /^\s*/.exec(lines[first]!)![0];
  const servers = init.backends.map((b) => `${indent}server ${b.name} ${b.host}:${b.port}`);
  return [...lines.slice(0, first), ...servers, ...lines.slice(first + count)].join('\n');
}

/** One server line of `show stat`, by the CSV's own column names (status is UP, DOWN, …). */
export type ServerStat = Record<string, string> & { svname: string; status: string };

export interface Haproxy {
  readonly port: number;
  readonly pid: number;
  url(path: string): string;
  /** One command on the admin socket (`show stat`, `show servers state`), its answer. */
  command(line: string): Promise<string>;
  /** The backend's server lines of `show stat`. */
  servers(): Promise<ServerStat[]>;
  /** Resolves once server `name` reports `status` (UP, DOWN); fails after `timeoutMs`. */
  waitForStatus(name: string, status: string, timeoutMs?: number): Promise<void>;
  /** What HAProxy printed so far (its request log, state changes). */
  log(): string;
  stop(): Promise<void>;
}

/** Sends one command to an admin socket and returns the whole answer (HAProxy closes after it). */
function socketCommand(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => (answer += data));
    socket.once('error', reject);
    socket.once('end', () => resolve(answer));
    socket.write(`${line}\n`);
  });
}

export function parseStat(csv: string): ServerStat[] {
  const [header, ...rows] = csv.split('\n').filter((line) => line.length > 0);
  if (!header?.startsWith('# ')) throw new Error(`not a stat answer: ${csv.slice(0, 200)}`);
  const names = header.slice(2).split(',');
  return rows.map((row) => Object.fromEntries(row.split(',').map((value, i) => [names[i] ?? `#${i}`, value])) as ServerStat);
}

/**
 * Checks the rendered config with `haproxy -c`, then runs `haproxy -f CFG -db` (foreground) on a
 * free port (HAProxy cannot bind port 0 and tell: a port that was free a moment ago, tried again
 * if another process took it meanwhile).
 */
export async function startHaproxy(init: HaproxyInit): Promise<Haproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'httpgw-haproxy-'));
  const socket = join(dir, 'admin.sock');
  const template = await readFile(EXAMPLE_CONFIG, 'utf8');
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const config = join(dir, 'haproxy.cfg');
      await writeFile(config, renderHaproxyConfig(template, { ...init, port, socket }));
      const check = await run(HAPROXY_BIN, ['-c', '-f', config]);
      if (check.code !== 0) throw new Error(`haproxy -c failed:\n${check.stdout}${check.stderr}`);
      const started = await launch(config, port, socket, dir);
      if (started) return started;
      if (attempt === 3) throw new Error('haproxy did not start on a free port three times');
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function launch(config: string, port: number, socket: string, dir: string): Promise<Haproxy | undefined> {
  const child = spawn(HAPROXY_BIN, ['-f', config, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  // The request log grows with every request (the bench sends thousands): keep its last megabyte.
  const append = (data: Buffer) => {
    log += data.toString();
    if (log.length > 2 << 20) log = log.slice(-(1 << 20));
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const command = (line: string) => socketCommand(socket, line);
  const deadline = performance.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (/cannot bind socket|Address already in use/i.test(log)) return undefined;
      throw new Error(`haproxy exited at start:\n${log}`);
    }
    const ready = await command('show info').then((answer) => answer.includes('Pid:'), () => false);
    if (ready) break;
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`haproxy not ready within 10 s:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const servers = async () => parseStat(await command('show stat')).filter((row) => row.pxname === 'gateways' && row.svname !== 'BACKEND');
  return {
    port,
    pid: child.pid!,
    url: (path) => `http://127.0.0.1:${port}/${path}`,
    command,
    servers,
    async waitForStatus(name, status, timeoutMs = 15_000) {
      const until = performance.now() + timeoutMs;
      for (;;) {
        const row = (await servers()).find((server) => server.svname === name);
        // "UP 1/2" while rising, "DOWN 1/2" while falling: only the settled state counts.
        if (row?.status === status) return;
        if (performance.now() > until) throw new Error(`server ${name} is ${row?.status ?? 'missing'}, not ${status}, after ${timeoutMs} ms; log:\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
