// The integration tests drive real tools: HTTP clients (curl, wget, aria2c) and real infrastructure
// (Prometheus, HAProxy, headless Chromium, systemd-analyze). Install the missing ones from Debian
// packages when we can (root with apt-get), otherwise say exactly what to run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Command the tests run (an absolute path where they run it by one) -> Debian package(s) that provide it. */
const tools = {
  curl: 'curl',
  wget: 'wget',
  aria2c: 'aria2',
  prometheus: 'prometheus',
  '/usr/sbin/haproxy': 'haproxy', // not on a non-root PATH: test/support/haproxy.ts runs it by path
  chromium: ['chromium', 'fonts-liberation'], // fonts: the dashboard screenshot shows text
  'systemd-analyze': 'systemd',
};
const has = (tool) => (tool.startsWith('/') ? existsSync(tool) : spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0);
const missing = [...new Set(Object.entries(tools).filter(([tool]) => !has(tool)).flatMap(([, pkgs]) => pkgs))];
if (missing.length > 0) {
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !has('apt-get')) {
    console.error(`The tests need ${missing.join(', ')}. Install them, e.g.: sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  console.error(`Installing test tools: ${missing.join(' ')}`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}
