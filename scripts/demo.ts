/**
 * The quick-start demo: a gateway on 127.0.0.1 (port 8080, or any free port when 8080 is taken) and
 * three file servers serving fixtures/, each its own process running the real CLI. Ctrl-C stops all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const gatewayBin = `${repo}packages/gateway/bin/httpgw.js`;
const fileServerBin = `${repo}packages/file-server/bin/fastfilesrv.js`;
const children: ChildProcess[] = [];

function start(label: string, bin: string, args: string[], onLine?: (line: string) => void): ChildProcess {
  // Readable log lines, though stderr is a pipe here (the commands write JSON to pipes by default).
  const child = spawn(process.execPath, ['--single-threaded-gc', bin, ...args, '--log-format', 'pretty'], { cwd: repo, stdio: ['ignore', 'inherit', 'pipe'] });
  children.push(child);
  let pending = '';
  child.stderr?.on('data', (data: Buffer) => {
    pending += data.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      process.stderr.write(`[${label}] ${line}\n`);
      onLine?.(line);
    }
  });
  child.on('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`[demo] ${label} exited with code ${code}; stopping the demo\n`);
      stop();
    }
  });
  return child;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  setTimeout(() => process.exit(0), 1_000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const wanted = Number(process.env.PORT ?? 8080);
const cacheDir = `${repo}.cache/httpgw-demo`;
const port = (await portIsFree(wanted)) ? wanted : 0;
// The admin listener (metrics, admin API, dashboard) on loopback: 9090, or any free port.
const adminPort = (await portIsFree(9090)) ? 9090 : 0;
let adminUrl: string | undefined;
const listening = new Promise<{ http: string; udpPort: string }>((resolve) => {
  let addresses: { http: string; udpPort: string } | undefined;
  // The cache on disk lives next to the repository's other build output: it survives demo restarts.
  start('httpgw', gatewayBin, ['127.0.0.1', String(port), ...(port === 0 ? ['--udp-port', '0'] : []), '--admin', `127.0.0.1:${adminPort}`, '--cache-dir', cacheDir, '--cache-dir-size', '256MiB'], (line) => {
    adminUrl ??= /admin listening on (http:\/\/[^\s"]+\/)/.exec(line)?.[1];
    const match = /listening http=(\S+) udp=\S+:(\d+)/.exec(line);
    if (match) addresses = { http: match[1]!, udpPort: match[2]! };
    if (addresses && adminUrl) resolve(addresses);
  });
});
const { http, udpPort } = await listening;
let registered = 0;
const ready = new Promise<void>((resolve) => {
  for (let i = 1; i <= 3; i++) {
    start(`fastfilesrv-${i}`, fileServerBin, ['127.0.0.1', udpPort, '--root', 'fixtures', '--name', `demo-${i}`], (line) => {
      if (line.includes('registered with gateway') && ++registered === 3) resolve();
    });
  }
});
await ready;
const base = `http://${http}`;
process.stdout.write(`
httpgw demo is up: a gateway and three file servers serving fixtures/ on loopback.

Try, in another terminal:
  curl ${base}/hello.txt
  curl -O ${base}/sample.bin
  wget ${base}/docs/README.md
  curl -s ${base}/ | head -20                        # the listing
  curl -r 0-99 ${base}/sample.bin | xxd | head -3     # a byte range
  curl -sI ${base}/sample.bin | grep -i cache-status  # a hit from the cache (kept in .cache/httpgw-demo too)
  curl -O ${base}/photos%202026/caf%C3%A9%20%231%20%E2%98%95.txt

Dashboard: ${adminUrl ?? '(admin listener not up)'}   (metrics: ${adminUrl ?? ''}metrics, API: docs/ADMIN.md)
  curl -s ${adminUrl ?? ''}servers

Press Ctrl-C to stop.
`);
