// The way operators get httpgw: tarballs from `pnpm release:pack`, installed with plain npm (no pnpm,
// no workspace, no registry: an empty npm cache and --offline), run from the install prefix; the
// systemd units checked against those installed commands, and the container recipe kept in step with
// the tarballs (it is linted here and its own `npm install` line is the one this test runs; no
// container engine runs here or in CI).
import { readdirSync, readFileSync } from 'node:fs';
import { lstat, readFile, readdir, realpath, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sha256, writeFiles } from './support/cluster.js';
import { run, startCommand, type RunningProcess } from './support/processes.js';

const repo = fileURLToPath(new URL('../', import.meta.url));
/** The commands with systemd units, a container role and a download to serve. */
const COMMANDS = { httpgw: '@httpgw/gateway', fastfilesrv: '@httpgw/file-server' } as const;
type Command = keyof typeof COMMANDS;
/** Every workspace package: name → directory, manifest. */
const WORKSPACE = new Map(
  readdirSync(join(repo, 'packages')).map((dir) => {
    const manifest = JSON.parse(readFileSync(join(repo, 'packages', dir, 'package.json'), 'utf8')) as Manifest;
    return [manifest.name, { dir: join('packages', dir), manifest }] as const;
  }),
);
/** Every installable command (a workspace package with a `bin`): what release:pack must pack. */
const PACKED = [...WORKSPACE.values()].filter(({ manifest }) => manifest.bin).map(({ manifest }) => manifest);
// Config keys that are positional arguments on the command line (`httpgw [ADDRESS] [PORT]`): --help
// lists them as positionals, not flags; every other key must be a flag --help lists.
const POSITIONAL_KEYS: Record<Command, Set<string>> = {
  httpgw: new Set(['address', 'port']),
  fastfilesrv: new Set(),
};

interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  bundleDependencies?: string[];
  engines?: { node?: string };
  bin?: Record<string, string>;
}
const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T;

/** The Dockerfile's `npm install -g …` command, as written in its RUN instruction. */
function dockerfileNpmInstall(dockerfile: string): string {
  const runs = DockerfileParser.parse(dockerfile).getInstructions().filter((instruction) => instruction.getKeyword() === 'RUN');
  const commands = runs.flatMap((instruction) => (instruction.getArgumentsContent() ?? '').split('&&').map((part) => part.trim()));
  const install = commands.filter((command) => command.startsWith('npm install -g '));
  expect(install, 'exactly one `npm install -g` in the Dockerfile').toHaveLength(1);
  return install[0]!;
}

/** This environment without the npm_* settings a pnpm script passes down: npm is to run as on a bare machine. */
const cleanNpmEnv = () => Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));

/** Long flags a command's --help lists. */
async function helpFlags(bin: string): Promise<Set<string>> {
  const help = await run(bin, ['--help']);
  expect(help.code, help.stderr).toBe(0);
  return new Set([...help.stdout.matchAll(/^\s+--([a-z0-9-]+)/gm)].map((match) => match[1]!));
}

/** Long flag names used in an argument list (`--name value`, `--name=value`). */
const flagsIn = (args: string[]) => args.filter((arg) => arg.startsWith('--')).map((arg) => arg.slice(2).split('=')[0]!);

/** Every package.json under a node_modules tree. */
async function installedManifests(dir: string): Promise<Manifest[]> {
  const found: Manifest[] = [];
  const modules = join(dir, 'node_modules');
  const entries = await readdir(modules).catch(() => []);
  for (const entry of entries) {
    if (entry.startsWith('.')) continue;
    const names = entry.startsWith('@') ? (await readdir(join(modules, entry))).map((name) => `${entry}/${name}`) : [entry];
    for (const name of names) {
      found.push(await readJson<Manifest>(join(modules, name, 'package.json')));
      found.push(...(await installedManifests(join(modules, name))));
    }
  }
  return found;
}

describe('release tarballs installed with plain npm', () => {
  let work: { path: string; remove: () => Promise<void> };
  let tarballs: string[];
  let prefix: string;
  let dockerfile: string;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    work = await makeTempDir('httpgw-pack-');
    const manifestsBefore = await Promise.all([...WORKSPACE.values()].map(({ dir }) => readFile(join(repo, dir, 'package.json'), 'utf8')));
    let started = Date.now();
    const pack = await run(process.execPath, ['scripts/release-pack.mjs', '--out', join(work.path, 'release')], { cwd: repo, timeoutMs: 240_000 });
    timings.packMs = Date.now() - started;
    expect(pack.code, pack.stderr).toBe(0);
    tarballs = pack.stdout.trim().split('\n');
    // Packing must not touch the workspace (deployed files can be hard links to it).
    const manifestsAfter = await Promise.all([...WORKSPACE.values()].map(({ dir }) => readFile(join(repo, dir, 'package.json'), 'utf8')));
    expect(manifestsAfter).toEqual(manifestsBefore);

    // Installed as the Dockerfile installs them, into a fresh prefix, with an empty npm cache.
    dockerfile = await readFile(join(repo, 'Dockerfile'), 'utf8');
    prefix = join(work.path, 'prefix');
    started = Date.now();
    const install = await run('sh', ['-c', `${dockerfileNpmInstall(dockerfile)} --prefix "$0" --cache "$1"`, prefix, join(work.path, 'empty-npm-cache')], {
      cwd: join(work.path, 'release'),
      timeoutMs: 240_000,
      env: cleanNpmEnv(),
    });
    timings.installMs = Date.now() - started;
    expect(install.code, install.stdout + install.stderr).toBe(0);
    console.log(`release:pack ${timings.packMs} ms, npm install -g --offline ${timings.installMs} ms`);
  }, 480_000);

  afterAll(async () => {
    await work?.remove();
  });

  it('writes one tarball per command, and the Dockerfile installs exactly those', async () => {
    expect(Object.values(COMMANDS).every((name) => PACKED.some((manifest) => manifest.name === name))).toBe(true);
    expect(tarballs.map((path) => path.split('/').pop()).sort()).toEqual(
      PACKED.map((manifest) => `${manifest.name.slice(1).replace('/', '-')}-${manifest.version}.tgz`).sort(),
    );
    expect(await readdir(join(work.path, 'release'))).toHaveLength(tarballs.length);
    // The image builds them with the root script into the directory it copies from.
    const rootManifest = await readJson<{ scripts: Record<string, string>; packageManager: string }>(join(repo, 'package.json'));
    expect(rootManifest.scripts['release:pack']).toContain('scripts/release-pack.mjs');
    expect(dockerfile).toContain(`npx --yes ${rootManifest.packageManager} release:pack`);
    expect(dockerfile).toMatch(/^COPY --from=build \/src\/release\/ /m);
    expect((await readdir(join(prefix, 'lib', 'node_modules', '@httpgw'))).sort()).toEqual(PACKED.map((manifest) => manifest.name.split('/')[1]).sort());
    expect((await readdir(join(prefix, 'bin'))).sort()).toEqual(PACKED.flatMap((manifest) => Object.keys(manifest.bin!)).sort());
  });

  it('holds only built code, every dependency bundled at the version the lockfile resolved, and honest engines', async () => {
    for (const tarball of tarballs) {
      const listing = await run('tar', ['tzf', tarball]);
      expect(listing.code).toBe(0);
      const entries = listing.stdout.trim().split('\n');
      // Our own packages (the command and the bundled @httpgw ones): manifest, bin scripts, compiled JS and types.
      const ours = entries.filter((entry) => !entry.includes('/node_modules/') || /\/node_modules\/@httpgw\/[^/]+\/.+/.test(entry));
      const stray = ours.filter((entry) => /(^|\/)(src|test)\/|(?<!\.d)\.ts$|\.map$|\.tsbuildinfo$|tsconfig[^/]*\.json$/.test(entry));
      expect(stray, `${tarball}: no sources, tests, maps or build files`).toEqual([]);
      expect(ours.filter((entry) => /^package\/bin\/[^/]+\.js$/.test(entry)).length).toBeGreaterThan(0);
      expect(ours.filter((entry) => entry.includes('/dist/')).length).toBeGreaterThan(10);
    }

    for (const { name } of PACKED) {
      const installed = join(prefix, 'lib', 'node_modules', name);
      const manifest = await readJson<Manifest>(join(installed, 'package.json'));
      expect(manifest.devDependencies).toBeUndefined();
      expect(manifest.bundleDependencies?.sort()).toEqual(Object.keys(manifest.dependencies ?? {}).sort());
      const workspaceDir = join(repo, WORKSPACE.get(name)!.dir);
      for (const [dep, version] of Object.entries(manifest.dependencies ?? {})) {
        expect(semver.valid(version), `${name} → ${dep}@${version} is exact`).toBe(version);
        // What the workspace runs and tests with: pnpm's resolution from pnpm-lock.yaml.
        const tested = await readJson<Manifest>(join(await realpath(join(workspaceDir, 'node_modules', dep)), 'package.json'));
        expect(version, `${name} → ${dep}`).toBe(tested.version);
        expect((await readJson<Manifest>(join(installed, 'node_modules', dep, 'package.json'))).version).toBe(version);
      }
      // engines: no wider than what every bundled package asks for, and true for this Node.
      const ours = manifest.engines?.node ?? '';
      expect(semver.satisfies(process.version, ours)).toBe(true);
      for (const dep of await installedManifests(installed)) {
        if (dep.engines?.node) expect(semver.subset(ours, dep.engines.node), `${name} engines ${ours} within ${dep.name}'s ${dep.engines.node}`).toBe(true);
      }
      // Each bin is a link npm made to the package's script, which carries its own interpreter line.
      for (const [bin, script] of Object.entries(manifest.bin ?? {})) {
        const link = join(prefix, 'bin', bin);
        expect((await lstat(link)).isSymbolicLink()).toBe(true);
        expect(await realpath(link)).toBe(join(installed, script));
        expect((await readFile(link, 'utf8')).startsWith('#!/usr/bin/env ')).toBe(true);
        expect((await run(link, ['--help'])).code, `${bin} --help`).toBe(0);
      }
    }
  });

  describe('the installed commands', () => {
    let root: { path: string; remove: () => Promise<void> };
    let files: Map<string, Buffer>;
    let gateway: RunningProcess | undefined;
    const servers: RunningProcess[] = [];
    let base: string;

    beforeAll(async () => {
      root = await makeTempDir();
      files = await writeFiles(root.path, { 'isos/disk image.bin': 3 * 1024 * 1024 + 17, 'notes.txt': 'installed with npm\n' });
      const secret = join(work.path, 'secret');
      await writeFile(secret, 'shared secret of the installed commands\n', { mode: 0o600 });
      gateway = startCommand(join(prefix, 'bin', 'httpgw'), ['127.0.0.1', '0', '--udp-port', '0', '--secret-file', secret]);
      const [, http, udpPort] = await gateway.waitForLine(/listening http=(\S+) udp=\S+:(\d+)/, 20_000);
      base = `http://${http}`;
      for (let i = 0; i < 2; i++) {
        servers.push(startCommand(join(prefix, 'bin', 'fastfilesrv'), ['--gateway', `127.0.0.1:${udpPort}`, '--root', root.path, '--bind', '127.0.0.1', '--secret-file', secret]));
      }
      await Promise.all(servers.map((server) => server.waitForLine(/registered with gateway/, 20_000)));
    }, 60_000);

    afterAll(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      await gateway?.stop();
      await root?.remove();
    });

    it('serve a real download that curl gets byte for byte, and a range of it', async () => {
      const out = join(root.path, 'download.out');
      const got = await run('curl', ['-sS', '-f', '-o', out, `${base}/isos/disk%20image.bin`]);
      expect(got.code, got.stderr).toBe(0);
      expect(sha256(await readFile(out))).toBe(sha256(files.get('isos/disk image.bin')!));
      const range = await run('curl', ['-sS', '-f', '-r', '5-9', `${base}/notes.txt`]);
      expect(range.stdout).toBe('installed with npm\n'.slice(5, 10));
    });
  });

  it('the systemd units verify with the installed commands, and match their flags and config keys', async () => {
    const units = join(work.path, 'units');
    await mkdir(units);
    const helps = { httpgw: await helpFlags(join(prefix, 'bin', 'httpgw')), fastfilesrv: await helpFlags(join(prefix, 'bin', 'fastfilesrv')) };
    for (const bin of Object.keys(COMMANDS) as Command[]) {
      const unit = await readFile(join(repo, 'deploy', `${bin}.service`), 'utf8');
      const execStart = /^ExecStart=(\S+)\s+(.*)$/m.exec(unit);
      // Where `npm install -g --prefix /usr/local` puts it (docs/DEPLOY.md); verify needs it to exist,
      // so the copy verified here points at this test's install prefix instead.
      expect(execStart?.[1]).toBe(`/usr/local/bin/${bin}`);
      await writeFile(join(units, `${bin}.service`), unit.replace(execStart![1]!, join(prefix, 'bin', bin)));
      const args = execStart![2]!.split(/\s+/);
      const unknownFlags = flagsIn(args).filter((flag) => !helps[bin].has(flag) && !POSITIONAL_KEYS[bin].has(flag));
      expect(unknownFlags, `${bin}.service flags`).toEqual([]);

      // The example config file: keys are long flag names (the agreed convention).
      const config = parseYaml(await readFile(join(repo, 'deploy', `${bin}.example.yaml`), 'utf8')) as Record<string, unknown>;
      const configFile = args[args.indexOf('--config') + 1];
      expect(configFile).toBe(`/etc/httpgw/${bin}.yaml`);
      expect(Object.keys(config).filter((key) => !helps[bin].has(key) && !POSITIONAL_KEYS[bin].has(key)), `${bin}.example.yaml keys`).toEqual([]);
      // The secret comes from /etc/httpgw through systemd's credentials, and the stop timeout outlasts the drain.
      expect(unit).toMatch(/^LoadCredential=secret:\/etc\/httpgw\/secret\.key$/m);
      expect(args[args.indexOf('--secret-file') + 1]).toBe('%d/secret');
      const stopSeconds = Number(/^TimeoutStopSec=(\d+)s$/m.exec(unit)?.[1]);
      expect(stopSeconds * 1000).toBeGreaterThan(Number(config['drain-timeout']));
      for (const directive of ['ProtectSystem=strict', 'NoNewPrivileges=yes', 'PrivateTmp=yes', 'Restart=on-failure', 'DynamicUser=yes']) {
        expect(unit).toMatch(new RegExp(`^${directive}$`, 'm'));
      }
      if (bin === 'fastfilesrv') {
        const served = args[args.indexOf('--root') + 1]!;
        expect(/^ReadOnlyPaths=(.*)$/m.exec(unit)?.[1]?.split(' ')).toContain(served);
        expect(config.root).toBe(served);
      }
    }
    // verify exits 0 on unknown keys and bad values too: it only says so on stderr.
    const verify = await run('systemd-analyze', ['verify', '--man=no', join(units, 'httpgw.service'), join(units, 'fastfilesrv.service')]);
    expect(verify.stderr + verify.stdout).toBe('');
    expect(verify.code).toBe(0);
    for (const bin of Object.keys(COMMANDS)) {
      const security = await run('systemd-analyze', ['security', '--offline=yes', join(units, `${bin}.service`)]);
      expect(security.stdout + security.stderr).toMatch(/Overall exposure level for \S+: [\d.]+ (SAFE|OK)/);
    }
  });

  it('the Dockerfile lints clean, and the compose file runs a gateway and three file servers that share its secret', async () => {
    expect(validate(dockerfile)).toEqual([]);
    // The linter does report what it checks for.
    expect(validate(`${dockerfile}\nHEALTHCHECK CMD ["true"]\n`).length).toBeGreaterThan(0);
    const instructions = DockerfileParser.parse(dockerfile).getInstructions();
    expect(instructions.filter((instruction) => instruction.getKeyword() === 'FROM')).toHaveLength(2);
    const user = instructions.filter((instruction) => instruction.getKeyword() === 'USER').pop();
    expect(user?.getArgumentsContent()).toBe('node');
    const cmd = JSON.parse(instructions.find((instruction) => instruction.getKeyword() === 'CMD')!.getArgumentsContent()!) as string[];
    expect(Object.keys(COMMANDS)).toContain(cmd[0]);
    const healthcheck = instructions.find((instruction) => instruction.getKeyword() === 'HEALTHCHECK')!.getArgumentsContent()!;
    expect(healthcheck).toContain(`http://127.0.0.1:${cmd[2]}/healthz`);
    const ignored = (await readFile(join(repo, '.dockerignore'), 'utf8')).split('\n');
    for (const path of ['**/node_modules', '**/dist', 'release']) expect(ignored).toContain(path);

    interface Service {
      image?: string;
      build?: { context: string; dockerfile: string };
      command: string[];
      ports?: string[];
      secrets?: string[];
      healthcheck?: { disable?: boolean };
    }
    const compose = parseYaml(await readFile(join(repo, 'deploy', 'compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, Service>;
      secrets: Record<string, { file: string }>;
    };
    const helps = { httpgw: await helpFlags(join(prefix, 'bin', 'httpgw')), fastfilesrv: await helpFlags(join(prefix, 'bin', 'fastfilesrv')) };
    const byCommand = (bin: Command) => Object.entries(compose.services).filter(([, service]) => service.command[0] === bin);
    const [[gatewayName, gatewayService]] = byCommand('httpgw') as [[string, Service]];
    expect(join(repo, 'deploy', gatewayService.build!.context, gatewayService.build!.dockerfile)).toBe(join(repo, 'Dockerfile'));
    const port = gatewayService.command[2];
    expect(gatewayService.ports).toEqual(expect.arrayContaining([`${port}:${port}/tcp`, `${port}:${port}/udp`]));
    const [secretName] = Object.keys(compose.secrets);
    const fileServers = byCommand('fastfilesrv');
    expect(fileServers).toHaveLength(3);
    for (const [name, service] of [[gatewayName, gatewayService], ...fileServers] as [string, Service][]) {
      const bin = service.command[0] as Command;
      expect(service.image, name).toBe(gatewayService.image);
      expect(service.secrets, name).toEqual([secretName]);
      expect(service.command[service.command.indexOf('--secret-file') + 1], name).toBe(`/run/secrets/${secretName}`);
      expect(flagsIn(service.command).filter((flag) => !helps[bin].has(flag) && !POSITIONAL_KEYS[bin].has(flag)), name).toEqual([]);
      if (bin === 'fastfilesrv') {
        expect(service.command[service.command.indexOf('--gateway') + 1], name).toBe(`${gatewayName}:${port}`);
        expect(service.healthcheck?.disable, name).toBe(true);
      }
    }
  });
});
