import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, configToYaml, diffConfig, envName, integerIn, loadConfig, option, positiveInteger } from '../src/config.js';

const OPTIONS = {
  port: option({ type: 'number', positional: 'PORT', schema: integerIn(0, 65_535), default: 8080, describe: 'port' }),
  window: option({ type: 'number', schema: integerIn(1, 4_096), default: 64, reloadable: true, describe: 'window' }),
  'max-transfers': option({ type: 'number', schema: positiveInteger(), default: 512, reloadable: true, describe: 'limit' }),
  'secret-file': option({ type: 'string', schema: z.string().min(1), envAliases: ['OTHER_SECRET_FILE'], describe: 'secret' }),
  worker: option({ type: 'boolean', schema: z.boolean({ error: 'must be true or false' }), default: true, describe: 'worker' }),
  gateway: option({ type: 'strings', schema: z.array(z.string()), describe: 'gateways' }),
};
const COMMAND = { name: 'cmd', envPrefix: 'CMD', options: OPTIONS };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'config-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(text: string): Promise<string> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(path, text);
  return path;
}

describe('loadConfig', () => {
  it('takes each option from the flag, else the environment, else the file, else the default', async () => {
    const config = await file('window: 10\nmax-transfers: 5\nworker: false\ngateway: [a:1, b:2]\n');
    const { config: resolved, sources } = await loadConfig(COMMAND, { config, window: 30 }, { CMD_WINDOW: '20', CMD_MAX_TRANSFERS: '7' });
    expect(resolved).toEqual({ port: 8080, window: 30, 'max-transfers': 7, worker: false, gateway: ['a:1', 'b:2'] });
    expect(sources.window).toEqual({ kind: 'flag', flag: '--window' });
    expect(sources['max-transfers']).toEqual({ kind: 'env', variable: 'CMD_MAX_TRANSFERS' });
    expect(sources.worker).toEqual({ kind: 'file', path: config });
    expect(sources.port).toEqual({ kind: 'default' });
  });

  it('reads env lists, booleans and aliases; the own name wins over an alias', async () => {
    const { config } = await loadConfig(COMMAND, {}, { CMD_GATEWAY: 'a:1, b:2', CMD_WORKER: 'no', OTHER_SECRET_FILE: '/alias' });
    expect(config).toMatchObject({ gateway: ['a:1', 'b:2'], worker: false, 'secret-file': '/alias' });
    const own = await loadConfig(COMMAND, {}, { CMD_SECRET_FILE: '/own', OTHER_SECRET_FILE: '/alias' });
    expect(own.config['secret-file']).toBe('/own');
  });

  it('names the option as written where the bad value came from', async () => {
    const bad = await file('window: 0\n');
    await expect(loadConfig(COMMAND, { config: bad }, {})).rejects.toThrow(new ConfigError(`window must be an integer in 1..4096 (in ${bad})`));
    await expect(loadConfig(COMMAND, {}, { CMD_WINDOW: '1.5' })).rejects.toThrow('CMD_WINDOW must be an integer in 1..4096 (environment)');
    await expect(loadConfig(COMMAND, { port: 70_000 }, {})).rejects.toThrow('PORT must be an integer in 0..65535');
    await expect(loadConfig(COMMAND, {}, { CMD_WORKER: 'maybe' })).rejects.toThrow('CMD_WORKER must be true or false (environment)');
    await expect(loadConfig(COMMAND, { config: await file('windows: 3\n') }, {})).rejects.toThrow(/unknown key "windows" in .* \(did you mean "window"\?\)/);
    await expect(loadConfig(COMMAND, {}, { CMD_WINDOWS: '3' })).rejects.toThrow('unknown environment variable CMD_WINDOWS');
    await expect(loadConfig(COMMAND, { config: await file('- a\n- b\n') }, {})).rejects.toThrow('must be a mapping of option names to values');
    await expect(loadConfig(COMMAND, { config: await file('window: [1\n') }, {})).rejects.toThrow('is not valid YAML');
  });

  it('an empty file is no options; CMD_CONFIG names the file', async () => {
    expect((await loadConfig(COMMAND, { config: await file('') }, {})).config.window).toBe(64);
    expect((await loadConfig(COMMAND, {}, { CMD_CONFIG: await file('window: 9\n') })).config.window).toBe(9);
  });
});

describe('configToYaml and diffConfig', () => {
  it('prints in table order without unset options', async () => {
    const { config } = await loadConfig(COMMAND, { window: 3 }, {});
    expect(configToYaml(OPTIONS, config)).toBe('port: 8080\nwindow: 3\nmax-transfers: 512\nworker: true\n');
  });

  it('splits changes into run-time ones and restart-only ones', async () => {
    const before = (await loadConfig(COMMAND, {}, {})).config;
    const after = (await loadConfig(COMMAND, {}, { CMD_WINDOW: '8', CMD_PORT: '9000' })).config;
    expect(diffConfig(OPTIONS, before, after)).toEqual({ apply: [{ key: 'window', from: 64, to: 8 }], restart: [{ key: 'port', from: 8080, to: 9000 }] });
  });

  it('env names are the prefix and the option in upper snake case', () => {
    expect(envName('HTTPGW', 'max-transfers-per-client')).toBe('HTTPGW_MAX_TRANSFERS_PER_CLIENT');
  });
});
