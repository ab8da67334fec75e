// The integration tests drive real HTTP clients. Install the missing ones from Debian packages when
// we can (root with apt-get), otherwise say exactly what to run.
import { execFileSync, spawnSync } from 'node:child_process';

const clients = { curl: 'curl', wget: 'wget', aria2c: 'aria2' };
const has = (tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
const missing = Object.entries(clients).filter(([tool]) => !has(tool)).map(([, pkg]) => pkg);
if (missing.length > 0) {
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !has('apt-get')) {
    console.error(`The tests need ${missing.join(', ')}. Install them, e.g.: sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  console.error(`Installing test clients: ${missing.join(' ')}`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}
