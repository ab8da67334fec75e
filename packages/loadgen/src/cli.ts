/**
 * httpgw-load: open-loop HTTP load (Poisson or constant arrivals, steps, ramps, sweeps), closed-loop
 * load for comparison with wrk, and the M/M/1 target and check that prove the measurement right.
 */
import { writeFile, readFile } from 'node:fs/promises';
import yargs from 'yargs';
import { runLoad, type LoadMode, type RunResult } from './driver.js';
import { parseCommandLine, runIfMain, usageError } from './cli-parse.js';
import { runMm1Check, DEFAULT_TOLERANCE, MM1_DEFAULT_MU, MM1_MAX_CONNECTIONS } from './mm1-check.js';
import { startMm1Target } from './mm1-target.js';
import { uniformSource } from './random.js';
import type { IntervalStats, LatencySummary } from './recorder.js';
import { charts, renderHtml, renderText, toJson, type Report, type RunEntry } from './report.js';
import { constantRate, rampRate, stepRates } from './schedule.js';
import { highestRateUnder, parseRates, runSweep } from './sweep.js';
import { parseDuration } from './units.js';
import { createWorkload, fetchListing, parseMix, readManifest, WorkloadError, type Method } from './workload.js';

const NAME = 'httpgw-load';
const wrap = () => Math.min(110, process.stdout.columns ?? 100);

function loadParser(argv: string[]) {
  return yargs(argv)
    .scriptName(NAME)
    .usage(
      `$0 URL... [options]\n$0 mm1-target --mu RATE [--port N]\n$0 mm1-check [--mu RATE] [--rho LIST]\n\n` +
        'Open-loop HTTP load: requests leave at intended times drawn from a Poisson process (or at a constant rate) ' +
        'whether or not earlier ones were answered, and latency runs from the intended send time, so a slow server ' +
        'cannot slow the test down and hide its own queueing. Works against any HTTP/1.1 server.',
    )
    .command('$0 [urls..]', false)
    .positional('urls', { type: 'string', array: true, describe: 'URL(s) to request (picked at random when several)' })
    .option('rate', { type: 'number', describe: 'offered load, requests per second' })
    .option('arrival', { choices: ['poisson', 'constant'] as const, default: 'poisson' as const, describe: 'inter-arrival times: exponential (Poisson process) or equal' })
    .option('steps', { type: 'string', describe: 'rates for equal parts of the run instead of --rate, e.g. 100,200,400' })
    .option('ramp', { type: 'string', describe: 'rate going linearly FROM:TO over the run instead of --rate, e.g. 100:1000' })
    .option('sweep', { type: 'string', describe: 'one run per rate (each --warmup + --duration): 100,200,400 or FROM:TO:COUNT; finds the highest rate meeting --slo-p99' })
    .option('slo-p99', { type: 'number', default: 100, describe: 'p99 target in ms for --sweep' })
    .option('stop-after-misses', { type: 'number', default: 2, describe: '--sweep stops after this many rates in a row missed the target (0: run all)' })
    .option('concurrency', { type: 'number', describe: 'closed loop instead: N connections each send, wait for the answer, send again (as wrk does; latency from the actual send)' })
    .option('duration', { type: 'string', default: '10s', describe: 'measured time per run (500ms, 10s, 2m)' })
    .option('warmup', { type: 'string', default: '2s', describe: 'load before the measured time, not counted' })
    .option('max-connections', { type: 'number', default: 512, describe: 'connection pool limit; a request due when all are busy queues (counted as "pool full", its wait included in its latency)' })
    .option('timeout', { type: 'string', default: '10s', describe: 'a request not fully answered by then counts as a timeout error' })
    .option('method', { choices: ['GET', 'HEAD'] as const, default: 'GET' as const, describe: 'request method' })
    .option('range', { type: 'string', describe: 'ask for a byte range: START-END, START- or -SUFFIX (expects 206)' })
    .option('urls-file', { type: 'string', describe: 'file with one URL per line, added to the URLs' })
    .option('listing', { type: 'string', describe: "directory URL whose JSON listing ({entries:[{name,size}]}, httpgw's format) gives the files to request" })
    .option('mix', { type: 'string', describe: 'with --listing: weights by file size, e.g. 4KiB=9,1MiB=1 (each file counts in the nearest size class)' })
    .option('manifest', { type: 'string', describe: 'sha256sum-style file ("HEX  NAME"); full GET bodies of matching URLs are checked against it' })
    .option('json', { type: 'string', describe: 'write the full report as JSON to FILE' })
    .option('html', { type: 'string', describe: 'write a self-contained HTML report with plots to FILE' })
    .option('seed', { type: 'number', describe: 'seed for arrival times and URL picks (repeatable runs)' })
    .option('quiet', { type: 'boolean', default: false, describe: 'no progress line on stderr' })
    .example('$0 http://127.0.0.1:8080/file --rate 500 --duration 30s', 'Poisson arrivals at 500 req/s for 30 s')
    .example('$0 --listing http://gw:8080/data/ --mix 4KiB=9,1MiB=1 --rate 200', 'a file-size mix over a listing')
    .example('$0 http://127.0.0.1:8080/f --sweep 100:2000:8 --slo-p99 100 --html report.html', 'the latency vs load curve and the highest rate with p99 < 100 ms')
    .example('$0 mm1-check', 'check the tool against an M/M/1 queue (about a minute)')
    .strict()
    .help()
    .version(false)
    .wrap(wrap());
}

function mm1TargetParser(argv: string[]) {
  return yargs(argv)
    .scriptName(`${NAME} mm1-target`)
    .usage('$0 --mu RATE [--port N]\n\nAn HTTP server with one worker, FIFO, exponential service times of rate mu: with Poisson arrivals, an M/M/1 queue. Prints "listening on URL".')
    .option('mu', { type: 'number', default: MM1_DEFAULT_MU, describe: 'service rate, requests per second' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
    .option('port', { type: 'number', default: 0, describe: 'TCP port (0: any free port)' })
    .option('seed', { type: 'number', describe: 'seed for the service times' })
    .strict()
    .help()
    .version(false)
    .wrap(wrap());
}

function mm1CheckParser(argv: string[]) {
  return yargs(argv)
    .scriptName(`${NAME} mm1-check`)
    .usage('$0 [options]\n\nRuns Poisson load at rho * mu against mm1-target (its own process) for each rho, and compares the response times with M/M/1 theory: mean 1/(mu-lambda), p50 ln(2)/(mu-lambda), p99 ln(100)/(mu-lambda). Exit code 1 when a rho misses the tolerance (mean 10 %, p50 and p99 15 %, on measured - exact queue path + theory) or the service times are not exponential.')
    .option('mu', { type: 'number', default: MM1_DEFAULT_MU, describe: 'service rate of the target (low enough that a loopback round trip, about 1-5 ms, is small beside 1/(mu-lambda))' })
    .option('rho', { type: 'string', default: '0.3,0.5,0.7,0.9', describe: 'utilisations to check' })
    .option('max-connections', { type: 'number', default: MM1_MAX_CONNECTIONS, describe: 'connection pool of the generator; small, so that at high rho requests wait for a connection and the check proves that wait is measured' })
    .option('duration', { type: 'string', default: '10s', describe: 'measured time per rho' })
    .option('warmup', { type: 'string', default: '1s', describe: 'time before measuring, per rho' })
    .option('seed', { type: 'number', describe: 'seed for arrivals and service times' })
    .option('json', { type: 'string', describe: 'write the report as JSON to FILE' })
    .option('html', { type: 'string', describe: 'write the HTML report (table and measured-vs-theory plot) to FILE' })
    .option('svg', { type: 'string', describe: 'write the measured-vs-theory plot alone to FILE' })
    .strict()
    .help()
    .version(false)
    .wrap(wrap());
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'mm1-target') return mm1TargetMain(argv.slice(1));
  if (argv[0] === 'mm1-check') return mm1CheckMain(argv.slice(1));
  return loadMain(argv);
}

async function mm1TargetMain(argv: string[]): Promise<number> {
  const parsed = await parseCommandLine(`${NAME} mm1-target`, mm1TargetParser(argv));
  if ('exitCode' in parsed) return parsed.exitCode;
  const { mu, host, port, seed } = parsed.args;
  if (!(mu > 0)) return usageError(NAME, '--mu must be positive');
  if (!Number.isInteger(port) || port < 0 || port > 65_535) return usageError(NAME, '--port must be 0..65535');
  const target = await startMm1Target({ mu, host, port, ...(seed === undefined ? {} : { seed }) });
  process.stdout.write(`mm1-target: mu ${mu}/s, listening on ${target.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => void target.close().then(resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

async function mm1CheckMain(argv: string[]): Promise<number> {
  const parsed = await parseCommandLine(`${NAME} mm1-check`, mm1CheckParser(argv));
  if ('exitCode' in parsed) return parsed.exitCode;
  const a = parsed.args;
  let rhos: number[];
  let durationMs: number;
  let warmupMs: number;
  try {
    rhos = a.rho.split(',').map((s) => Number(s.trim()));
    if (rhos.some((r) => !(r > 0 && r < 1))) throw new RangeError('--rho values must be between 0 and 1');
    if (!(a.mu > 0)) throw new RangeError('--mu must be positive');
    if (!Number.isInteger(a.maxConnections) || a.maxConnections < 1) throw new RangeError('--max-connections must be a positive integer');
    durationMs = parseDuration(a.duration);
    warmupMs = parseDuration(a.warmup);
  } catch (err) {
    return usageError(NAME, err instanceof Error ? err.message : String(err));
  }
  const { rows, runs } = await runMm1Check({ mu: a.mu, rhos, durationMs, warmupMs, maxConnections: a.maxConnections, ...(a.seed === undefined ? {} : { seed: a.seed }), log: (l) => process.stderr.write(`${l}\n`) });
  const report: Report = { tool: NAME, date: new Date().toISOString(), argv: ['mm1-check', ...argv], workload: `GET mm1-target (mu ${a.mu}/s)`, mode: `open loop, Poisson, rho ${rhos.join(', ')}`, runs, mm1: rows };
  process.stdout.write(renderText(report));
  process.stdout.write(`tolerance: mean ${DEFAULT_TOLERANCE.mean * 100} %, p50 and p99 ${DEFAULT_TOLERANCE.p50 * 100} % of theory, on the corrected figures (measured - exact path + theory)\n`);
  await writeOutputs(report, a.json, a.html);
  if (a.svg) await writeFile(a.svg, `${charts(report).find((c) => c.id === 'mm1')?.svg ?? ''}\n`);
  return rows.every((r) => r.pass) ? 0 : 1;
}

async function writeOutputs(report: Report, json: string | undefined, html: string | undefined): Promise<void> {
  if (json) await writeFile(json, `${JSON.stringify(toJson(report), null, 2)}\n`);
  if (html) await writeFile(html, renderHtml(report));
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

function progressLine(prefix: string, s: IntervalStats, soFar: LatencySummary, errors: number): string {
  return `${prefix}[${String(s.t).padStart(4)} s] offered ${s.offered}/s achieved ${s.completed}/s in flight ${s.inFlight} p99 ${f1(s.warmup ? s.p99Ms : soFar.p99Ms)} ms errors ${errors}${s.warmup ? ' (warm-up)' : ''}`;
}

async function loadMain(argv: string[]): Promise<number> {
  const parsed = await parseCommandLine(NAME, loadParser(argv));
  if ('exitCode' in parsed) return parsed.exitCode;
  const a = parsed.args;
  const uniform = uniformSource(a.seed);
  let durationMs: number;
  let warmupMs: number;
  let timeoutMs: number;
  let mode: LoadMode | undefined;
  let sweepRates: number[] | undefined;
  let workloadInit;
  try {
    durationMs = parseDuration(a.duration);
    warmupMs = parseDuration(a.warmup);
    timeoutMs = parseDuration(a.timeout);
    if (durationMs <= 0) throw new RangeError('--duration must be positive');
    if (!Number.isInteger(a.maxConnections) || a.maxConnections < 1) throw new RangeError('--max-connections must be a positive integer');
    const given = [a.rate !== undefined && '--rate', a.steps !== undefined && '--steps', a.ramp !== undefined && '--ramp', a.sweep !== undefined && '--sweep', a.concurrency !== undefined && '--concurrency'].filter(Boolean);
    if (given.length === 0) throw new RangeError('give the load: --rate, --steps, --ramp, --sweep or --concurrency');
    if (given.length > 1) throw new RangeError(`${given.join(' and ')} exclude each other`);
    if (a.rate !== undefined) {
      if (!(a.rate > 0)) throw new RangeError('--rate must be positive');
      mode = { kind: 'open', arrival: a.arrival, rate: constantRate(a.rate) };
    } else if (a.steps !== undefined) mode = { kind: 'open', arrival: a.arrival, rate: stepRates(parseRates(a.steps), durationMs) };
    else if (a.ramp !== undefined) {
      const [from, to] = a.ramp.split(':').map(Number);
      if (!(from !== undefined && to !== undefined && from > 0 && to > 0)) throw new RangeError(`invalid --ramp "${a.ramp}" (FROM:TO, e.g. 100:1000)`);
      mode = { kind: 'open', arrival: a.arrival, rate: rampRate(from, to, durationMs) };
    } else if (a.concurrency !== undefined) {
      if (!Number.isInteger(a.concurrency) || a.concurrency < 1) throw new RangeError('--concurrency must be a positive integer');
      mode = { kind: 'closed', concurrency: a.concurrency };
    } else if (a.sweep !== undefined) sweepRates = parseRates(a.sweep);
    const urls = [...(a.urls ?? [])];
    if (a.urlsFile) urls.push(...(await readFile(a.urlsFile, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
    if (urls.length === 0 && !a.listing) throw new RangeError('no URL given');
    if (a.mix && !a.listing) throw new RangeError('--mix needs --listing');
    const parsedUrls = urls.map((u) => {
      const url = new URL(u);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`not an http(s) URL: ${u}`);
      return url;
    });
    workloadInit = { urls: parsedUrls, method: a.method as Method, uniform, ...(a.range ? { range: a.range } : {}), ...(a.mix ? { mix: parseMix(a.mix) } : {}) };
    if (a.listing) new URL(a.listing);
    createWorkload(a.listing ? { ...workloadInit, urls: [new URL(a.listing)] } : workloadInit);
  } catch (err) {
    return usageError(NAME, err instanceof Error ? err.message : String(err));
  }

  let workload;
  try {
    const files = a.listing ? await fetchListing(new URL(a.listing)) : undefined;
    const manifest = a.manifest ? await readManifest(a.manifest) : undefined;
    workload = createWorkload({ ...workloadInit, ...(files ? { files } : {}), ...(manifest ? { manifest } : {}) });
  } catch (err) {
    process.stderr.write(`${NAME}: ${err instanceof WorkloadError || err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  let prefix = '';
  const onSecond = a.quiet ? undefined : (s: IntervalStats, soFar: LatencySummary, errors: number) => process.stderr.write(`${progressLine(prefix, s, soFar, errors)}\n`);
  const common = { workload, durationMs, warmupMs, maxConnections: a.maxConnections, timeoutMs, uniform, ...(onSecond ? { onSecond } : {}) };
  let runs: RunEntry[];
  let modeText: string;
  if (sweepRates) {
    runs = await runSweep({ ...common, rates: sweepRates, arrival: a.arrival, p99Ms: a.sloP99, stopAfterMisses: a.stopAfterMisses, onRate: (r) => (prefix = `${r} req/s `) });
    modeText = `open loop, ${a.arrival}, sweep ${sweepRates.join(', ')} req/s`;
  } else if (mode) {
    const result: RunResult = await runLoad({ ...common, mode });
    const label = mode.kind === 'closed' ? `${mode.concurrency} conns` : a.rate !== undefined ? `${a.rate} req/s` : (a.steps ?? a.ramp ?? '');
    runs = [{ label, offered: mode.kind === 'closed' ? mode.concurrency : result.offeredRps, result }];
    modeText = mode.kind === 'closed' ? `closed loop, ${mode.concurrency} connections` : `open loop, ${a.arrival}, ${a.steps ? `steps ${a.steps}` : a.ramp ? `ramp ${a.ramp}` : `${a.rate} req/s`}`;
  } else return usageError(NAME, 'no load given');
  modeText += `, ${durationMs / 1000} s measured after ${warmupMs / 1000} s warm-up, up to ${a.maxConnections} connections`;
  const report: Report = { tool: NAME, date: new Date().toISOString(), argv, workload: workload.description, mode: modeText, runs };
  if (sweepRates) report.slo = { p99Ms: a.sloP99, highestRate: highestRateUnder(runs, a.sloP99) };
  process.stdout.write(renderText(report));
  await writeOutputs(report, a.json, a.html);
  return 0;
}

await runIfMain(import.meta.url, main);
