import { describe, expect, it } from 'vitest';
import { runBin } from './run-bin.js';

describe('httpgw-load usage errors', () => {
  it.each([
    [['http://127.0.0.1:1/'], /give the load: --rate/],
    [['--rate', '10'], /no URL given/],
    [['http://127.0.0.1:1/', '--rate', '0'], /--rate must be positive/],
    [['http://127.0.0.1:1/', '--rate', '10', '--concurrency', '4'], /--rate and --concurrency exclude each other/],
    [['http://127.0.0.1:1/', '--rate', '10', '--duration', 'soon'], /invalid duration "soon"/],
    [['http://127.0.0.1:1/', '--rate', '10', '--max-connections', '0'], /--max-connections must be a positive integer/],
    [['http://127.0.0.1:1/', '--sweep', '100,x'], /invalid rates "100,x"/],
    [['http://127.0.0.1:1/', '--ramp', '100'], /invalid --ramp "100"/],
    [['ftp://127.0.0.1/f', '--rate', '10'], /not an http\(s\) URL/],
    [['not a url', '--rate', '10'], /Invalid URL/],
    [['http://127.0.0.1:1/', '--rate', '10', '--range', 'abc'], /invalid range "abc"/],
    [['http://127.0.0.1:1/', '--rate', '10', '--mix', '4KiB=1'], /--mix needs --listing/],
    [['--listing', 'http://127.0.0.1:1/', '--rate', '10', '--mix', '4KiB=x'], /invalid mix entry/],
    [['http://127.0.0.1:1/', '--rate', '10', '--method', 'POST'], /Invalid values/],
    [['http://127.0.0.1:1/', '--rate', '10', '--no-such-flag'], /Unknown argument/],
    [['mm1-target', '--mu', '-5'], /--mu must be positive/],
    [['mm1-check', '--rho', '0.3,1.2'], /--rho values must be between 0 and 1/],
  ])('%j', async (args, message) => {
    const r = await runBin(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain("Try 'httpgw-load --help'.");
    expect(r.stdout).toBe('');
  });

  it('--help lists the options and exits 0', async () => {
    const r = await runBin(['--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--rate', '--sweep', '--slo-p99', '--max-connections', '--listing', '--mix', '--manifest', '--json', '--html', 'mm1-target']) expect(r.stdout).toContain(flag);
  });

  it('a server that refuses connections gives connect errors, not a crash', async () => {
    const r = await runBin(['http://127.0.0.1:1/', '--rate', '50', '--duration', '1s', '--warmup', '0s', '--quiet']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/connect \d+/);
  });
});
