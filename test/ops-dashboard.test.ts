import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useCluster } from './support/fixtures.js';
import { until } from './support/wait.js';

const TOKEN = 'dashboard-test-token-91ab';
const SIZE = 48 * 1024 * 1024;
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

/** curl fetching `url` slowly to /dev/null; resolves with its exit code. */
function slowCurl(url: string, rate: string): Promise<number> {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--noproxy', '*', '--output', '/dev/null', '--limit-rate', rate, url], (error) => resolve(error && typeof error.code === 'number' ? error.code : 0));
  });
}

describe('the dashboard in headless Chromium', () => {
  const fixture = useCluster({ 'videos/launch.mp4': SIZE, 'docs/readme.txt': 'hello\n' }, { servers: 3, gateway: { admin: { port: 0, token: TOKEN } } });
  let browser: Browser;

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('asks for the token, shows the servers, and its throughput moves while a download runs', async () => {
    const { cluster } = fixture;
    const page = await browser.newPage({ viewport: { width: 1400, height: 1050 } });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`requestfailed: ${request.url()}`));

    await page.goto(`http://127.0.0.1:${cluster.gateway.admin!.address.port}/`);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#token', TOKEN);
    await page.click('#login button[type=submit]');
    await page.locator('#main').waitFor({ state: 'visible' });
    const rows = page.locator('#servers tr[data-server]');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(3);
    const names = await Promise.all((await rows.all()).map((row) => row.getAttribute('data-server')));
    expect(names.sort()).toEqual(cluster.gateway.pool.list().map((server) => server.key).sort());
    // The cache is on (the default) but has answered nothing yet.
    expect(await page.textContent('#cache')).toBe('–');

    // A few small requests for the request-rate chart, then two slow downloads.
    for (let i = 0; i < 5; i++) await (await fetch(cluster.url('docs/readme.txt'))).text();
    // One miss, then hits: the hit ratio shows.
    await expect.poll(() => page.textContent('#cache'), { timeout: 10_000 }).toMatch(/^\d+(\.\d)? %$/);
    const downloads = [slowCurl(cluster.url('videos/launch.mp4'), '6M'), slowCurl(cluster.url('videos/launch.mp4'), '4M')];
    const figures = new Set<string>();
    await until(() => cluster.gateway.activity.inProgress === 2, 10_000, 'both downloads to start');
    const deadline = performance.now() + 15_000;
    while (performance.now() < deadline && figures.size < 3) {
      const figure = await page.textContent('#throughput');
      if (figure && !/^0 B\/s$/.test(figure)) figures.add(figure);
      await page.waitForTimeout(500);
    }
    expect(figures.size, [...figures].join(' | ')).toBeGreaterThanOrEqual(3);
    const transfers = page.locator('#transfers tbody tr');
    await expect.poll(() => transfers.count(), { timeout: 10_000 }).toBe(2);
    await page.waitForTimeout(1_000);
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });

    expect(await Promise.all(downloads)).toEqual([0, 0]);
    await expect.poll(() => transfers.count(), { timeout: 10_000 }).toBe(0);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-idle.png`, fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});
