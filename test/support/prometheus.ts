/** A real Prometheus server (/usr/bin/prometheus) in a temp dir, and its HTTP API. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ScrapeJob {
  name: string;
  targets: string[];
  /** File holding a bearer token for the targets. */
  tokenFile?: string;
}

export interface Prometheus {
  url: string;
  /** Value of an instant query, or undefined when it has no result (NaN as NaN). */
  query(expression: string, at?: number): Promise<number | undefined>;
  /** Resolves once every target reports up == 1. */
  waitForTargets(count: number, timeoutMs?: number): Promise<void>;
  log(): string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago: Prometheus cannot listen on port 0 and tell which one it got. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startPrometheus(jobs: ScrapeJob[]): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'httpgw-prometheus-'));
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 900ms',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    ...jobs.flatMap((job) => [
      `  - job_name: ${JSON.stringify(job.name)}`,
      ...(job.tokenFile ? ['    authorization:', '      type: Bearer', `      credentials_file: ${JSON.stringify(job.tokenFile)}`] : []),
      '    static_configs:',
      `      - targets: ${JSON.stringify(job.targets)}`,
    ]),
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), `${config}\n`);
  const port = await freePort();
  const child = spawn(
    '/usr/bin/prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.on('data', (data: Buffer) => (log += data.toString()));
  child.stderr.on('data', (data: Buffer) => (log += data.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;

  const api = async (path: string): Promise<unknown> => {
    const response = await fetch(`${url}${path}`);
    const body = (await response.json()) as { status: string; data: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? response.status}`);
    return body.data;
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const deadline = performance.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
      const ready = await fetch(`${url}/-/ready`).then((response) => response.ok, () => false);
      if (ready) break;
      if (performance.now() > deadline) throw new Error(`prometheus not ready: ${log}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const query = async (expression: string, at?: number) => {
    const data = (await api(`/api/v1/query?query=${encodeURIComponent(expression)}${at === undefined ? '' : `&time=${at / 1_000}`}`)) as { resultType: string; result: Array<{ value: [number, string] }> | [number, string] };
    if (data.resultType === 'scalar') return Number((data.result as [number, string])[1]);
    const vector = data.result as Array<{ value: [number, string] }>;
    return vector.length === 0 ? undefined : Number(vector[0]!.value[1]);
  };
  return {
    url,
    query,
    async waitForTargets(count, timeoutMs = 20_000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const up = await query('sum(up)');
        if (up === count) return;
        if (performance.now() > deadline) throw new Error(`only ${up} of ${count} targets up; ${JSON.stringify(await api('/api/v1/targets'))}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    },
    log: () => log,
    stop,
  };
}
