// `pnpm release:pack [--out DIR]`: packs the commands (httpgw, fastfilesrv: every workspace package
// with a `bin`) into tarballs that install with plain
// `npm install -g ./httpgw-gateway-X.tgz ./httpgw-file-server-X.tgz` on a machine with only Node.js.
//
// Each tarball carries its whole run-time dependency tree (bundleDependencies), exactly as pnpm
// resolved it from pnpm-lock.yaml: the workspace packages @httpgw/protocol and @httpgw/runtime (not
// on the npm registry) and every third-party package, each pinned to the version the tests ran with.
// Why not bundle only the two workspace packages: npm treats every dependency of a bundled package as
// part of the bundle and fetches none of them (msgpackr, yargs came out missing or as empty
// directories). Why not four tarballs installed side by side: that works only while all four are
// installed together in one global prefix; a command's tarball installed without the other two makes
// npm ask the registry for @httpgw/protocol, which is not there. Bundled, the install needs no registry at all (`--offline` works).
//
// Optional dependencies are left out (today only msgpackr-extract, msgpackr's native string decoder
// with per-platform binaries and an install script): the tarballs are pure JavaScript, the same on
// every platform, and msgpackr uses its JavaScript decoder.
//
// Prints the tarballs' paths on stdout, one per line; progress goes to stderr.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The installable commands: every workspace package with a `bin` (httpgw, fastfilesrv, and any added later). */
const COMMAND_PACKAGES = readdirSync(join(repo, 'packages'))
  .map((dir) => JSON.parse(readFileSync(join(repo, 'packages', dir, 'package.json'), 'utf8')))
  .filter((manifest) => manifest.bin)
  .map((manifest) => manifest.name)
  .sort();

const outIndex = process.argv.indexOf('--out');
const out = resolve(repo, outIndex > 0 ? process.argv[outIndex + 1] ?? '' : 'release');

/** pnpm as the workspace pins it: the running one under `pnpm release:pack`, else through npx. */
function pnpm(args, cwd) {
  const execPath = process.env.npm_execpath;
  const viaPnpm = execPath && /pnpm/.test(execPath);
  const pinned = readJson(join(repo, 'package.json')).packageManager; // pnpm@VERSION
  const [file, argv] = viaPnpm ? [process.execPath, [execPath, ...args]] : ['npx', ['--yes', pinned, ...args]];
  execFileSync(file, argv, { cwd, stdio: ['ignore', 2, 2] });
}

/** The environment without the npm_* settings pnpm exports to scripts (npm chokes on some of them). */
function npmEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
}

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

/** Node's lookup of `name` from a package directory: its node_modules, then each parent's, up to `top`. */
function resolvePackageDir(fromDir, name, top) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === top || dir === dirname(dir)) return undefined;
  }
}

/** Directories of the packages reachable from `root` through `dependencies` (not optional ones). */
function requiredPackageDirs(root) {
  const seen = new Set();
  const visit = (dir) => {
    for (const name of Object.keys(readJson(join(dir, 'package.json')).dependencies ?? {})) {
      const found = resolvePackageDir(dir, name, root);
      if (!found) throw new Error(`${relative(root, dir) || 'the package'} needs ${name}, which pnpm deploy did not install`);
      if (!seen.has(found)) {
        seen.add(found);
        visit(found);
      }
    }
  };
  visit(root);
  return seen;
}

/** Every package directory under `dir`/node_modules, nested ones included. */
function installedPackageDirs(dir) {
  const modules = join(dir, 'node_modules');
  if (!existsSync(modules)) return [];
  const dirs = [];
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith('.')) continue;
    const names = entry.startsWith('@') ? readdirSync(join(modules, entry)).map((scoped) => `${entry}/${scoped}`) : [entry];
    for (const name of names) {
      dirs.push(join(modules, name));
      dirs.push(...installedPackageDirs(join(modules, name)));
    }
  }
  return dirs;
}

/** Writes a new file: deployed files may be hard links to the workspace's own, which must stay as they are. */
function writeFresh(path, text) {
  rmSync(path);
  writeFileSync(path, text);
}

/** Rewrites a package's dependencies to the exact versions installed for it; drops what only building needs. */
function pinDependencies(dir, top) {
  const manifest = readJson(join(dir, 'package.json'));
  for (const dep of Object.keys(manifest.dependencies ?? {})) {
    manifest.dependencies[dep] = readJson(join(resolvePackageDir(dir, dep, top), 'package.json')).version;
  }
  delete manifest.devDependencies;
  delete manifest.scripts;
  writeFresh(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

function packCommand(name, staging) {
  const stage = join(staging, name.replace('@', '').replace('/', '-'));
  console.error(`release:pack: ${name}: pnpm deploy (dependencies as pnpm-lock.yaml resolved them)`);
  // inject-workspace-packages: deploy from the lockfile (pnpm 10's legacy deploy resolves afresh, ignoring
  // it); workspace packages are copied as their `files` field packs them. hoisted: real directories,
  // laid out as npm lays them out, which is what npm pack bundles. copy: npm pack hangs ("Exit handler
  // never called") on files hard-linked from pnpm's store.
  pnpm(['--config.inject-workspace-packages=true', '--config.node-linker=hoisted', '--config.package-import-method=copy', '--filter', name, 'deploy', '--prod', stage], repo);
  rmSync(join(stage, 'pnpm-lock.yaml'), { force: true });
  for (const meta of readdirSync(join(stage, 'node_modules')).filter((entry) => entry.startsWith('.'))) {
    rmSync(join(stage, 'node_modules', meta), { recursive: true, force: true });
  }

  const required = requiredPackageDirs(stage);
  for (const dir of installedPackageDirs(stage)) {
    if (!required.has(dir) && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
  for (const dir of required) {
    const { scripts = {}, name: dep, dependencies = {} } = readJson(join(dir, 'package.json'));
    // Injected workspace packages keep `workspace:*` ranges, which npm cannot read: pin what was deployed.
    if (Object.values(dependencies).some((range) => range.startsWith('workspace:'))) pinDependencies(dir, stage);
    const hooks = ['preinstall', 'install', 'postinstall'].filter((hook) => scripts[hook]);
    // npm does not run a bundled package's install scripts the way it runs a fetched one's: refuse to ship one.
    if (hooks.length > 0) throw new Error(`${dep} has ${hooks.join('/')} scripts; a bundled package must not need them`);
  }

  const manifest = pinDependencies(stage, stage);
  manifest.bundleDependencies = Object.keys(manifest.dependencies ?? {});
  writeFresh(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: stage, env: npmEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
  console.error(`release:pack: ${name}: ${packed.filename}, ${packed.entryCount} files, ${packed.bundled.length} bundled packages, ${(packed.size / 1e6).toFixed(1)} MB`);
  return join(out, packed.filename);
}

const staging = mkdtempSync(join(tmpdir(), 'httpgw-release-'));
try {
  mkdirSync(out, { recursive: true });
  for (const old of readdirSync(out).filter((file) => /^httpgw-.*\.tgz$/.test(file))) rmSync(join(out, old));
  const tarballs = COMMAND_PACKAGES.map((name) => packCommand(name, staging));
  process.stdout.write(`${tarballs.join('\n')}\n`);
} finally {
  rmSync(staging, { recursive: true, force: true });
}
