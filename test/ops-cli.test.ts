import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { adminCurl } from './support/admin-curl.js';
import { makeTempDir } from './support/cluster.js';
import { BINS, run, startProcess } from './support/processes.js';

describe('the admin and metrics flags of the real CLIs', () => {
  it('are in --help; a bad --admin, --metrics-port or a lone --admin-token-file exits 2 with one line', async () => {
    const help = await run(process.execPath, [BINS.httpgw, '--help']);
    expect(help.stdout).toContain('--admin ');
    expect(help.stdout).toContain('--admin-token-file');
    const serverHelp = await run(process.execPath, [BINS.fastfilesrv, '--help']);
    expect(serverHelp.stdout).toContain('--metrics-port');
    expect(serverHelp.stdout).toContain('--metrics-address');
    for (const admin of ['127.0.0.1', '9090', '127.0.0.1:99999']) {
      const bad = await run(process.execPath, [BINS.httpgw, '127.0.0.1', '0', '--admin', admin]);
      expect(bad.code, admin).toBe(2);
      expect(bad.stderr.split('\n')[0]).toMatch(/^httpgw: --admin must be ADDRESS:PORT/);
    }
    const lone = await run(process.execPath, [BINS.httpgw, '127.0.0.1', '0', '--admin-token-file', '/nonexistent']);
    expect(lone.code).toBe(2);
    expect(lone.stderr).toMatch(/^httpgw: --admin-token-file needs --admin/);
    const badMetrics = await run(process.execPath, [BINS.fastfilesrv, '127.0.0.1', '9', '--metrics-port', '70000']);
    expect(badMetrics.code).toBe(2);
    expect(badMetrics.stderr).toMatch(/^fastfilesrv: --metrics-port must be/);
  });

  it('httpgw logs the admin port it bound but never the token; fastfilesrv serves /metrics alone', async () => {
    const dir = await makeTempDir();
    onTestFinished(() => dir.remove());
    const token = 'cli-admin-token-55e1a0';
    const tokenFile = join(dir.path, 'admin.token');
    await writeFile(tokenFile, `${token}\n`);
    const gateway = startProcess('httpgw', ['127.0.0.1', '0', '--udp-port', '0', '--admin', '127.0.0.1:0', '--admin-token-file', tokenFile]);
    onTestFinished(async () => void (await gateway.stop()));
    const [, udpPort] = await gateway.waitForLine(/listening http=\S+ udp=\S+:(\d+)/);
    const [, adminPort] = await gateway.waitForLine(/admin listening on http:\/\/127\.0\.0\.1:(\d+)\/.*auth="?bearer token/);
    const server = startProcess('fastfilesrv', ['127.0.0.1', udpPort!, '--root', dir.path, '--bind', '127.0.0.1', '--metrics-port', '0', '--name', 'metrics-cli']);
    onTestFinished(async () => void (await server.stop()));
    const [, metricsPort] = await server.waitForLine(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
    await server.waitForLine(/registered with gateway/);

    expect((await adminCurl(`http://127.0.0.1:${adminPort}/servers`)).status).toBe(401);
    const servers = await adminCurl(`http://127.0.0.1:${adminPort}/servers`, { token });
    expect(servers.status).toBe(200);
    expect(servers.json).toMatchObject({ servers: [{ name: 'metrics-cli', health: 'active' }] });
    const config = await adminCurl(`http://127.0.0.1:${adminPort}/config`, { token });
    expect(config.json).toMatchObject({ config: { 'admin-token-file': '[redacted]', admin: '127.0.0.1:0', 'chunk-size': expect.any(Number) } });

    const metrics = await adminCurl(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^fastfilesrv_gateways\{state="registered"\} 1$/m);
    expect(metrics.body).toMatch(/^fastfilesrv_errors_total\{code="not-found"\} 0$/m);
    expect(metrics.body).toMatch(/^fastfilesrv_process_cpu_seconds_total /m);
    expect((await adminCurl(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404);

    expect(await gateway.stop()).toBe(0);
    expect(await server.stop()).toBe(0);
    expect(gateway.log()).not.toContain(token);
  });
});
