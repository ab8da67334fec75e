import { request as httpRequest } from 'node:http';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { createFileServer, type FileServer, type FileServerInit } from '@httpgw/file-server';
import { createGateway, type Gateway, type GatewayInit } from '@httpgw/gateway';
import { urlHost } from '@httpgw/runtime';
import { createUdpRelay, type UdpRelay, type UdpRelayInit } from './udp-relay.js';

/** A temp directory removed when `remove` is called (register it with onTestFinished/afterAll). */
export async function makeTempDir(prefix = 'httpgw-test-'): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Writes `files` (path → contents or byte count of random data) under `root`; returns the contents. */
export async function writeFiles(root: string, files: Record<string, Buffer | string | number>): Promise<Map<string, Buffer>> {
  const written = new Map<string, Buffer>();
  for (const [path, spec] of Object.entries(files)) {
    const data = typeof spec === 'number' ? randomBytes(spec) : Buffer.from(spec);
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), data);
    written.set(path, data);
  }
  return written;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ClusterInit {
  root: string;
  servers?: number;
  gateway?: GatewayInit;
  fileServer?: Partial<FileServerInit>;
  /** Loopback address of every socket (default 127.0.0.1; '::1' runs the cluster over IPv6). */
  host?: string;
  /** Put a fault-injecting relay between the file servers and the gateway. */
  relay?: Omit<UdpRelayInit, 'target'>;
}

export interface Cluster {
  gateway: Gateway;
  servers: FileServer[];
  relay: UdpRelay | undefined;
  root: string;
  /** http://HOST:PORT/<path> (IPv6 in brackets), each segment percent-encoded. */
  url(path: string): string;
  /** Starts one more file server (through the relay when there is one) and waits until it is registered. */
  addServer(init?: Partial<FileServerInit>): Promise<FileServer>;
  stop(): Promise<void>;
}

/** A gateway and N file servers on 127.0.0.1 (or `host`), ports chosen by the kernel, all registered. */
export async function startCluster(init: ClusterInit): Promise<Cluster> {
  const host = init.host ?? '127.0.0.1';
  const gateway = await createGateway({ address: host, httpPort: 0, udpPort: 0, ...init.gateway });
  const relay = init.relay ? await createUdpRelay({ ...init.relay, target: gateway.udpAddress }) : undefined;
  const registerWith = relay ? relay.address : gateway.udpAddress;
  const servers: FileServer[] = [];
  const addServer = async (extra?: Partial<FileServerInit>) => {
    const server = await createFileServer({
      gateways: [{ host, port: registerWith.port }],
      root: init.root,
      bindAddress: host,
      ...init.fileServer,
      ...extra,
    });
    servers.push(server);
    await server.whenRegistered();
    return server;
  };
  for (let i = 0; i < (init.servers ?? 3); i++) await addServer();
  await gateway.waitForServers(init.servers ?? 3);
  return {
    gateway,
    servers,
    relay,
    root: init.root,
    url: (path) => `http://${urlHost(host)}:${gateway.httpAddress.port}/${path.split('/').map(encodeURIComponent).join('/')}`,
    addServer,
    async stop() {
      await Promise.all(servers.map((server) => server.stop()));
      await relay?.close();
      await gateway.stop();
    },
  };
}

/** A GET with the request target sent exactly as given (fetch and curl would normalize `..`). */
export function rawRequest(port: number, target: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path: target, method }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(parts).toString() }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}
