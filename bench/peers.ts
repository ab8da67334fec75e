/**
 * The peers httpgw is compared with, all on 127.0.0.1 and all serving the bench files dir:
 *  - nginx-direct: one nginx server block with `root` = the files dir (sendfile on);
 *  - nginx-proxy:  a separate nginx instance whose front server block proxies (keepalive,
 *                  round robin) to three upstream server blocks on their own ports, same root;
 *  - tftp-65464 / tftp-1468: tftpd-hpa (`in.tftpd --listen`), fetched by curl with that blksize.
 * Missing tools are installed with apt-get when running as root; otherwise the exact command is
 * printed and the peers needing them are skipped.
 */
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { ManagedProcess, runCommand } from './proc.js';
import { freeTcpPort, freeUdpPort, sleep } from './measure.js';
import type { DownloadTarget, Peers } from './types.js';

// ---------------------------------------------------------------- tools

interface Tool {
  bin: string;
  pkg: string;
}

const TOOLS: readonly Tool[] = [
  { bin: 'curl', pkg: 'curl' },
  { bin: 'wrk', pkg: 'wrk' },
  { bin: 'nginx', pkg: 'nginx' },
  { bin: 'in.tftpd', pkg: 'tftpd-hpa' },
];

const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** Absolute path of `bin` on PATH (or in the sbin dirs), or undefined. */
export function findBinary(bin: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const p = join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export interface ToolStatus {
  /** bin -> absolute path, for the tools that are present. */
  paths: Map<string, string>;
  /** bin -> why it is missing (with the command to run). */
  missing: Map<string, string>;
}

/** Finds curl, wrk, nginx and in.tftpd; installs missing ones with apt-get when root. */
export async function ensureTools(log: (text: string) => void): Promise<ToolStatus> {
  const lacking = TOOLS.filter((t) => findBinary(t.bin) === undefined);
  if (lacking.length > 0) {
    const pkgs = lacking.map((t) => t.pkg);
    const command = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (!isRoot) {
      log(`missing ${lacking.map((t) => t.bin).join(', ')}; not root, so not installing. Run: sudo ${command}`);
    } else {
      log(`installing ${pkgs.join(' ')} with apt-get`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const install = (): Promise<{ code: number | null; stderr: string }> =>
        runCommand('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { env, timeoutMs: 600_000 });
      let r = await install();
      if (r.code !== 0) {
        log('apt-get install failed; running apt-get update and retrying');
        await runCommand('apt-get', ['update'], { env, timeoutMs: 600_000 });
        r = await install();
      }
      if (r.code !== 0) log(`apt-get failed (exit ${String(r.code)}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}. Run: ${command}`);
    }
  }
  const status: ToolStatus = { paths: new Map(), missing: new Map() };
  for (const t of TOOLS) {
    const p = findBinary(t.bin);
    if (p) status.paths.set(t.bin, p);
    else status.missing.set(t.bin, `${t.bin} not installed (run: apt-get update && apt-get install -y ${t.pkg})`);
  }
  return status;
}

/** Version strings of the tools, for the JSON report. */
export async function toolVersions(status: ToolStatus): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const probe = async (bin: string, args: string[]): Promise<void> => {
    const path = status.paths.get(bin);
    if (!path) return;
    const r = await runCommand(path, args, { timeoutMs: 5000 });
    out[bin] = `${r.stdout}\n${r.stderr}`.trim().split('\n')[0] ?? '';
  };
  await Promise.all([
    probe('curl', ['--version']),
    probe('wrk', ['-v']),
    probe('nginx', ['-v']),
    probe('in.tftpd', ['-V']),
  ]);
  return out;
}

// ---------------------------------------------------------------- readiness

/** Resolves once a TCP connection to 127.0.0.1:port succeeds. */
export async function waitForTcp(port: number, proc: ManagedProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.isRunning) throw new Error(`${proc.name} ${proc.describeExit()}\n${proc.formatTail()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${proc.name}: port ${port} not open after ${timeoutMs} ms\n${proc.formatTail()}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------- nginx

function nginxMain(prefix: string, http: string): string {
  return `# generated by bench/peers.ts
daemon off;
master_process on;
worker_processes 2;
pid ${join(prefix, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path ${join(prefix, 'client_body')};
  proxy_temp_path ${join(prefix, 'proxy')};
  fastcgi_temp_path ${join(prefix, 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'uwsgi')};
  scgi_temp_path ${join(prefix, 'scgi')};
${http}
}
`;
}

const staticServer = (port: number, root: string): string =>
  `  server {\n    listen 127.0.0.1:${port};\n    root ${root};\n    location / { }\n  }\n`;

async function startNginx(name: string, nginxBin: string, prefix: string, http: string, port: number): Promise<ManagedProcess> {
  mkdirSync(prefix, { recursive: true, mode: 0o755 });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxMain(prefix, http));
  const proc = new ManagedProcess(name, nginxBin, ['-e', 'stderr', '-p', prefix, '-c', conf]);
  await waitForTcp(port, proc);
  return proc;
}

function nginxTarget(name: string, port: number, proc: ManagedProcess): DownloadTarget {
  return {
    name,
    url: (file) => `http://127.0.0.1:${port}/${file}`,
    curlArgs: [],
    pids: () => [proc.pid],
  };
}

// ---------------------------------------------------------------- tftpd-hpa

async function startTftpd(tftpdBin: string, curlBin: string, root: string, probeFile: string): Promise<{ port: number; proc: ManagedProcess }> {
  const port = await freeUdpPort();
  // --secure chroots into root (file names are relative to it); --user nobody is tftpd-hpa's
  // own default, spelled out because Debian's init script uses a "tftp" user.
  const proc = new ManagedProcess('in.tftpd', tftpdBin, [
    '--foreground',
    '--listen',
    '--address',
    `127.0.0.1:${port}`,
    '--user',
    'nobody',
    '--secure',
    root,
  ]);
  // in.tftpd prints nothing when ready (it logs to syslog): poll with a tiny download.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!proc.isRunning) throw new Error(`in.tftpd ${proc.describeExit()}\n${proc.formatTail()}`);
    const r = await runCommand(curlBin, ['-sS', '-o', '/dev/null', '--max-time', '1', `tftp://127.0.0.1:${port}/${probeFile}`], { timeoutMs: 5000 });
    if (r.code === 0) break;
    if (Date.now() > deadline) throw new Error(`in.tftpd on udp ${port} does not serve ${probeFile}: ${r.stderr.trim()}\n${proc.formatTail()}`);
    await sleep(100);
  }
  return { port, proc };
}

function tftpTarget(blksize: number, port: number, proc: ManagedProcess): DownloadTarget {
  return {
    name: `tftp-${blksize}`,
    url: (file) => `tftp://127.0.0.1:${port}/${file}`,
    curlArgs: ['--tftp-blksize', String(blksize)],
    // in.tftpd --listen forks a child per transfer; the listener itself does little.
    pids: () => [proc.pid],
  };
}

// ---------------------------------------------------------------- all peers

/**
 * An nginx instance whose front server block proxies (keepalive, round robin) to three upstream
 * server blocks of its own, same root; `extra` adds directives at the http level and in the proxied location.
 */
async function startProxyPeer(name: string, nginxBin: string, workDir: string, filesDir: string, extra: { http?: string[]; location?: string[] } = {}): Promise<DownloadTarget> {
  const port = await freeTcpPort();
  const upstreamPorts = [await freeTcpPort(), await freeTcpPort(), await freeTcpPort()];
  const http = [
    ...(extra.http ?? []),
    '  upstream backends {',
    ...upstreamPorts.map((p) => `    server 127.0.0.1:${p};`),
    '    keepalive 64;',
    '  }',
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    location / {',
    '      proxy_pass http://backends;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    ...(extra.location ?? []),
    '    }',
    '  }',
    ...upstreamPorts.map((p) => staticServer(p, filesDir)),
  ].join('\n');
  const proc = await startNginx(name, nginxBin, join(workDir, name), http, port);
  for (const p of upstreamPorts) await waitForTcp(p, proc);
  return nginxTarget(name, port, proc);
}

export interface PeerSetup {
  tools: ToolStatus;
  /** Where nginx configs, pid files and temp paths go. */
  workDir: string;
  /** Directory with the bench files (world-readable: nginx workers and tftpd drop privileges). */
  filesDir: string;
  /** A small file in filesDir, used to check that tftpd serves. */
  probeFile: string;
  /** Which peers to start (all when omitted). */
  want?: ReadonlySet<'nginx-direct' | 'nginx-proxy' | 'nginx-cache' | 'tftp'>;
  log: (text: string) => void;
}

export async function startPeers(setup: PeerSetup): Promise<Peers> {
  const { tools, workDir, filesDir } = setup;
  const want = setup.want ?? new Set(['nginx-direct', 'nginx-proxy', 'nginx-cache', 'tftp']);
  const peers: Peers = { skipped: new Map() };
  const nginx = tools.paths.get('nginx');
  const curl = tools.paths.get('curl');
  const skipAll = (names: string[], reason: string): void => names.forEach((n) => peers.skipped.set(n, reason));

  if (want.has('nginx-direct')) {
    if (!nginx) skipAll(['nginx-direct'], tools.missing.get('nginx') ?? 'nginx missing');
    else {
      try {
        setup.log('starting nginx-direct');
        const port = await freeTcpPort();
        const proc = await startNginx('nginx-direct', nginx, join(workDir, 'nginx-direct'), staticServer(port, filesDir), port);
        peers.nginxDirect = nginxTarget('nginx-direct', port, proc);
      } catch (err) {
        skipAll(['nginx-direct'], `failed to start: ${String(err)}`);
      }
    }
  }

  if (want.has('nginx-proxy')) {
    if (!nginx) skipAll(['nginx-proxy'], tools.missing.get('nginx') ?? 'nginx missing');
    else {
      try {
        setup.log('starting nginx-proxy (front + 3 upstreams)');
        peers.nginxProxy = await startProxyPeer('nginx-proxy', nginx, workDir, filesDir);
      } catch (err) {
        skipAll(['nginx-proxy'], `failed to start: ${String(err)}`);
      }
    }
  }

  if (want.has('nginx-cache')) {
    if (!nginx) skipAll(['nginx-cache'], tools.missing.get('nginx') ?? 'nginx missing');
    else {
      try {
        setup.log('starting nginx-cache (proxy_cache in front of 3 upstreams)');
        const prefix = join(workDir, 'nginx-cache');
        // A reverse proxy's cache as nginx users set one up: on disk (the page cache keeps it hot),
        // one fetch per object for concurrent misses (proxy_cache_lock), stale served on errors.
        peers.nginxCache = await startProxyPeer('nginx-cache', nginx, workDir, filesDir, {
          http: [`  proxy_cache_path ${join(prefix, 'cache')} levels=1:2 keys_zone=files:16m max_size=4g inactive=60m use_temp_path=off;`],
          location: [
            '      proxy_cache files;',
            '      proxy_cache_valid 200 10m;',
            '      proxy_cache_lock on;',
            '      proxy_cache_lock_timeout 60s;',
            '      proxy_cache_use_stale error timeout updating;',
            '      add_header X-Cache-Status $upstream_cache_status;',
          ],
        });
      } catch (err) {
        skipAll(['nginx-cache'], `failed to start: ${String(err)}`);
      }
    }
  }

  if (want.has('tftp')) {
    const tftpd = tools.paths.get('in.tftpd');
    const names = ['tftp-65464', 'tftp-1468'];
    if (!tftpd || !curl) skipAll(names, tools.missing.get('in.tftpd') ?? tools.missing.get('curl') ?? 'missing');
    else {
      try {
        setup.log('starting in.tftpd');
        const { port, proc } = await startTftpd(tftpd, curl, filesDir, setup.probeFile);
        peers.tftpLarge = tftpTarget(65464, port, proc);
        peers.tftpSmall = tftpTarget(1468, port, proc);
      } catch (err) {
        skipAll(names, `failed to start: ${String(err)}`);
      }
    }
  }
  return peers;
}
