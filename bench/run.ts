/**
 * `pnpm bench` driver: benchmarks httpgw beside nginx (direct and as a reverse proxy) and
 * tftpd-hpa in one run. See bench/README.md.
 *
 *   npx tsx bench/run.ts [--quick] [--only NAME[,NAME...]] [--out FILE]
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchFiles } from './files.js';
import { REPO_ROOT, createHttpgwLauncher } from './httpgw.js';
import { initClockTicks, median } from './measure.js';
import { ensureTools, startPeers, toolVersions } from './peers.js';
import { cleanup, installSignalHandlers, onCleanup } from './proc.js';
import { machineInfo, renderHeader, renderScenario, type ScenarioOutcome } from './report.js';
import { SCENARIOS } from './scenarios/index.js';
import { SkipScenario, warmUp } from './scenarios/common.js';
import type { BenchContext, HttpgwInstance, Measurement, MeasurementInput, Scenario } from './types.js';

const USAGE = `usage: npx tsx bench/run.ts [--quick] [--only NAME[,NAME...]] [--out FILE]
  --quick   fewer repetitions and smaller files (about 2 minutes)
  --only    run only these scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}
  --out     JSON results file (default bench/results/latest.json)`;

interface Options {
  quick: boolean;
  only: Scenario[];
  out: string;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string', multiple: true },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const names = (values.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')}\n${USAGE}`);
  return {
    quick: values.quick,
    only: names.length === 0 ? [...SCENARIOS] : SCENARIOS.filter((s) => names.includes(s.name)),
    out: resolve(values.out ?? join(REPO_ROOT, 'bench/results/latest.json')),
  };
}

/** One status line on stderr, rewritten in place on a terminal. */
class Progress {
  private readonly start = Date.now();
  private readonly tty = process.stderr.isTTY;
  private open = false;
  prefix = '';

  elapsedS(): number {
    return (Date.now() - this.start) / 1000;
  }

  update(text: string): void {
    const line = `[${this.elapsedS().toFixed(0).padStart(4)} s] ${this.prefix}${text}`;
    if (this.tty) {
      const width = process.stderr.columns > 10 ? process.stderr.columns - 1 : 120;
      process.stderr.write(`\r\x1b[K${line.slice(0, width)}`);
      this.open = true;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  log(text: string): void {
    if (this.open) process.stderr.write('\r\x1b[K');
    this.open = false;
    process.stderr.write(`${text}\n`);
  }
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  installSignalHandlers();
  const progress = new Progress();
  const date = new Date().toISOString();
  await initClockTicks();

  // Temp dir: files/ (served by every peer) and one dir per daemon. World-readable because
  // nginx workers and in.tftpd drop privileges to nobody.
  const tmp = mkdtempSync(join(tmpdir(), 'httpgw-bench-'));
  chmodSync(tmp, 0o755);
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const filesDir = join(tmp, 'files');
  mkdirSync(filesDir, { mode: 0o755 });
  chmodSync(filesDir, 0o755);
  const files = new BenchFiles(filesDir, (t) => progress.update(t));

  progress.log(`httpgw bench${options.quick ? ' (quick)' : ''}: ${options.only.map((s) => s.name).join(', ')}; temp dir ${tmp}`);
  const tools = await ensureTools((t) => progress.log(t));
  const versions = await toolVersions(tools);
  const probeFile = await files.ensure('4 KiB');
  const peers = await startPeers({ tools, workDir: tmp, filesDir, probeFile, log: (t) => progress.update(t) });
  for (const [name, why] of peers.skipped) progress.log(`${name} skipped: ${why}`);
  const { launcher: httpgw, extraArgs: httpgwArgs } = await createHttpgwLauncher(filesDir);
  if (httpgw.unavailable !== undefined) progress.log(`httpgw skipped: ${httpgw.unavailable}`);
  else if (httpgwArgs.length > 0) progress.log(`httpgw started with ${httpgwArgs.join(' ')} (all load comes from one address)`);

  const skipped = new Map(peers.skipped);
  if (httpgw.unavailable !== undefined) skipped.set('httpgw', httpgw.unavailable);
  if (tools.missing.has('wrk')) skipped.set('wrk', tools.missing.get('wrk') ?? '');

  let shared: HttpgwInstance | undefined;
  const measurements: Measurement[] = [];
  const outcomes: ScenarioOutcome[] = [];
  const sections: string[] = [];

  for (const scenario of options.only) {
    const started = Date.now();
    const outcome: ScenarioOutcome = { name: scenario.name, title: scenario.title, status: 'ok', notes: [], durationS: 0 };
    const mine: Measurement[] = [];
    progress.prefix = `${scenario.name}: `;
    const ctx: BenchContext = {
      quick: options.quick,
      files,
      peers,
      httpgw,
      sharedHttpgw: async () => {
        if (shared && !shared.alive()) {
          outcome.notes.push('the shared httpgw had exited; restarted it');
          await shared.stop();
          shared = undefined;
        }
        if (!shared) {
          progress.update('starting httpgw (3 file servers)');
          shared = await httpgw.start({ servers: 3 });
          await warmUp(shared, files, (text) => progress.update(text));
        }
        return shared;
      },
      stopSharedHttpgw: async () => {
        await shared?.stop();
        shared = undefined;
      },
      record: (m: MeasurementInput) => {
        const found = mine.find((x) => x.case === m.case && x.metric === m.metric && x.target === m.target && x.unit === m.unit);
        if (found) {
          found.samples.push(...m.samples);
          found.median = median(found.samples);
          if (m.details) found.details.push(m.details);
          return;
        }
        const { details, ...rest } = m;
        const entry: Measurement = { ...rest, samples: [...m.samples], scenario: scenario.name, median: median(m.samples), details: details ? [details] : [] };
        mine.push(entry);
        measurements.push(entry);
      },
      note: (text) => outcome.notes.push(text),
      progress: (text) => progress.update(text),
    };
    try {
      if (scenario.name === 'wrk' && tools.missing.has('wrk')) throw new SkipScenario(tools.missing.get('wrk'));
      await scenario.run(ctx);
    } catch (err) {
      outcome.status = err instanceof SkipScenario ? 'skipped' : 'failed';
      outcome.error = err instanceof Error ? err.message : String(err);
    }
    outcome.durationS = (Date.now() - started) / 1000;
    outcomes.push(outcome);
    const section = renderScenario(outcome, mine);
    sections.push(section);
    progress.prefix = '';
    progress.log(`${scenario.name}: ${outcome.status} in ${outcome.durationS.toFixed(0)} s`);
  }

  const machine = machineInfo();
  const remarks = httpgwArgs.length > 0 ? [`httpgw runs with \`${httpgwArgs.join(' ')}\`: all load comes from 127.0.0.1, so per-client limits would cap it`] : [];
  remarks.push('the shared httpgw is warmed up after it starts (8 x 64 MiB, 32 x 1 MiB, 100 x 4 KiB): its processes are JIT-compiled, and a gateway in service is warm; the cost scenario meters the first download after a start on its own');
  process.stdout.write(`${renderHeader(machine, date, options.quick, skipped, remarks)}\n${sections.join('\n')}\n`);
  const json = {
    date,
    durationS: progress.elapsedS(),
    argv: process.argv.slice(2),
    quick: options.quick,
    machine,
    tools: versions,
    httpgwArgs,
    skipped: Object.fromEntries(skipped),
    scenarios: outcomes,
    measurements,
  };
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(json, null, 2)}\n`);
  progress.log(`wrote ${options.out}; total ${progress.elapsedS().toFixed(0)} s`);
  return outcomes.some((o) => o.status === 'failed') ? 1 : 0;
}

main()
  .then(async (code) => {
    await cleanup();
    process.exitCode = code;
  })
  .catch(async (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanup();
    process.exitCode = 1;
  });
