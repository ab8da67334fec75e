/**
 * The three outputs of a run: a table for the terminal, a JSON document with every figure and
 * the encoded histograms, and a self-contained HTML page with plots.
 */
import { percentileSpectrum, type IntervalStats, type LatencySummary } from './recorder.js';
import type { RunResult } from './driver.js';
import { escapeXml, lineChart, type Series } from './svg-chart.js';

export interface RunEntry {
  /** e.g. "200 req/s" or "run". */
  label: string;
  /** Offered rate (open loop) or concurrency (closed loop), for the x axis of a sweep. */
  offered: number;
  result: RunResult;
}

/** The M/M/1 check of one utilisation: measured figures beside theory. */
export interface Mm1Row {
  rho: number;
  lambda: number;
  mu: number;
  theory: { meanMs: number; p50Ms: number; p99Ms: number };
  measured: { meanMs: number; p50Ms: number; p99Ms: number };
  /** The same statistics of the exact queue path the run's own draws imply (Lindley recursion). */
  path: { meanMs: number; p50Ms: number; p99Ms: number };
  /** measured - path + theory: the measurement's error on top of the theory (see README). */
  corrected: { meanMs: number; p50Ms: number; p99Ms: number };
  /** Mean of the server's service-time draws (theory: 1000/mu ms). */
  serviceMeanMs: number;
  /**
   * Kolmogorov-Smirnov distance of all the run's service draws from the exponential of rate mu,
   * scaled by sqrt(count): an exponential sample exceeds 2.3 with probability 1e-4 (2 exp(-2 x^2)).
   */
  serviceKs: number;
  samples: number;
  pass: boolean;
}

export interface Report {
  tool: string;
  date: string;
  argv: string[];
  workload: string;
  mode: string;
  runs: RunEntry[];
  slo?: { p99Ms: number; highestRate: number | undefined };
  mm1?: Mm1Row[];
}

const f = (n: number, digits = 2): string => (Number.isFinite(n) ? (Math.abs(n) >= 1000 ? n.toFixed(0) : Math.abs(n) >= 100 ? n.toFixed(1) : n.toFixed(digits)) : '-');

function errorsText(r: RunResult): string {
  const parts = Object.entries(r.errors)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`);
  return parts.length === 0 ? '0' : parts.join(', ');
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

const RUN_HEADER = ['offered', 'req/s', 'MB/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'mean ms', 'errors', 'pool full'];

function runRow(e: RunEntry): string[] {
  const r = e.result;
  const l = r.latency;
  return [e.label, f(r.achievedRps, 1), f(r.bytesPerS / 1e6), f(l.p50Ms), f(l.p90Ms), f(l.p99Ms), f(l.p999Ms), f(l.maxMs), f(l.meanMs), errorsText(r), String(r.poolExhausted)];
}

/** The end-of-run table (markdown, so it pastes into a README). */
export function renderText(report: Report): string {
  const out = [`${report.workload} — ${report.mode}`, '', table(RUN_HEADER, report.runs.map(runRow))];
  const lag = Math.max(...report.runs.map((e) => e.result.maxSendLagMs));
  const conns = Math.max(...report.runs.map((e) => e.result.peakConnections));
  out.push('', `peak connections ${conns}; largest send lag ${f(lag)} ms (the generator's own delay, included in the latencies)`);
  if (report.slo) out.push(report.slo.highestRate === undefined ? `no rate kept p99 under ${report.slo.p99Ms} ms without errors` : `highest rate with p99 < ${report.slo.p99Ms} ms and no errors: ${f(report.slo.highestRate, 1)} req/s`);
  if (report.mm1) out.push('', renderMm1Table(report.mm1));
  return `${out.join('\n')}\n`;
}

export function renderMm1Table(rows: readonly Mm1Row[]): string {
  const pct = (a: number, b: number) => `${a >= b ? '+' : ''}${(((a - b) / b) * 100).toFixed(1)} %`;
  return table(
    ['rho', 'λ/s', 'n', 'mean ms: theory', 'measured', 'corrected (err)', 'p50: theory', 'measured', 'corrected (err)', 'p99: theory', 'measured', 'corrected (err)', 'pass'],
    rows.map((r) => [
      String(r.rho),
      String(Math.round(r.lambda)),
      String(r.samples),
      f(r.theory.meanMs),
      f(r.measured.meanMs),
      `${f(r.corrected.meanMs)} (${pct(r.corrected.meanMs, r.theory.meanMs)})`,
      f(r.theory.p50Ms),
      f(r.measured.p50Ms),
      `${f(r.corrected.p50Ms)} (${pct(r.corrected.p50Ms, r.theory.p50Ms)})`,
      f(r.theory.p99Ms),
      f(r.measured.p99Ms),
      `${f(r.corrected.p99Ms)} (${pct(r.corrected.p99Ms, r.theory.p99Ms)})`,
      r.pass ? 'yes' : 'NO',
    ]),
  );
}

/** Everything as plain data (the histograms in HdrHistogram's compressed base64 form). */
export function toJson(report: Report): unknown {
  return {
    ...report,
    runs: report.runs.map((e) => {
      const { recorder, ...rest } = e.result;
      return { label: e.label, offeredRate: e.offered, ...rest, spectrum: percentileSpectrum(recorder.total) };
    }),
  };
}

const overTime = (intervals: readonly IntervalStats[], pick: (i: IntervalStats) => number): Array<[number, number]> => intervals.map((i) => [i.t, pick(i)]);

/** The plots of a report, as SVG strings (also used to export the M/M/1 plot to docs/). */
export function charts(report: Report): Array<{ id: string; svg: string }> {
  const out: Array<{ id: string; svg: string }> = [];
  const single = report.runs.length === 1 ? report.runs[0] : undefined;
  if (single) {
    const iv = single.result.intervals;
    out.push({
      id: 'over-time',
      svg: lineChart({
        title: 'Latency percentiles over time (per second, by completion)',
        xLabel: 'seconds since start (warm-up included)',
        yLabel: 'latency (ms)',
        series: [
          { name: 'p50', points: overTime(iv, (i) => i.p50Ms) },
          { name: 'p90', points: overTime(iv, (i) => i.p90Ms) },
          { name: 'p99', points: overTime(iv, (i) => i.p99Ms) },
          { name: 'max', points: overTime(iv, (i) => i.maxMs) },
        ],
      }),
    });
    out.push({
      id: 'rate',
      svg: lineChart({
        title: 'Achieved vs offered rate',
        xLabel: 'seconds since start',
        yLabel: 'requests per second',
        series: [
          { name: 'offered (intended sends)', points: overTime(iv, (i) => i.offered), dashed: true },
          { name: 'achieved (answers)', points: overTime(iv, (i) => i.completed) },
          { name: 'in flight', points: overTime(iv, (i) => i.inFlight) },
        ],
      }),
    });
  }
  out.push({
    id: 'distribution',
    svg: lineChart({
      title: 'Latency distribution (percentile spectrum)',
      xLabel: 'percentile',
      yLabel: 'latency (ms)',
      xPercentile: true,
      logY: true,
      series: report.runs.slice(-8).map((e) => ({ name: e.label, points: percentileSpectrum(e.result.recorder.total) })),
    }),
  });
  if (report.runs.length > 1) {
    const pts = (pick: (l: LatencySummary) => number) => report.runs.map((e): [number, number] => [e.offered, pick(e.result.latency)]);
    out.push({
      id: 'hockey-stick',
      svg: lineChart({
        title: 'Latency vs offered load',
        xLabel: report.mode.startsWith('closed') ? 'connections' : 'offered rate (req/s)',
        yLabel: 'latency (ms)',
        logY: true,
        series: [
          { name: 'p50', points: pts((l) => l.p50Ms), dots: true },
          { name: 'p99', points: pts((l) => l.p99Ms), dots: true },
          { name: 'max', points: pts((l) => l.maxMs), dots: true },
        ],
        ...(report.slo ? { hLine: { y: report.slo.p99Ms, label: `p99 target ${report.slo.p99Ms} ms` } } : {}),
      }),
    });
    out.push({
      id: 'achieved',
      svg: lineChart({
        title: 'Achieved vs offered rate',
        xLabel: 'offered rate (req/s)',
        yLabel: 'answers per second',
        series: [
          { name: 'achieved', points: report.runs.map((e) => [e.offered, e.result.achievedRps]), dots: true },
          { name: 'offered', points: report.runs.map((e) => [e.offered, e.result.offeredRps]), dashed: true },
        ],
      }),
    });
  }
  if (report.mm1) out.push({ id: 'mm1', svg: mm1Chart(report.mm1) });
  return out;
}

const [MEAN, P50, P99] = ['#1f77b4', '#2ca02c', '#d62728'];

/** Measured vs theoretical response time across utilisations (and the corrected mean, in grey). */
export function mm1Chart(rows: readonly Mm1Row[]): string {
  const mu = rows[0]?.mu ?? 0;
  const curve = (q: number): Array<[number, number]> => Array.from({ length: 46 }, (_, i) => 0.05 + i * 0.02).map((rho) => [rho, (q / (mu * (1 - rho))) * 1000]);
  const measured = (pick: (r: Mm1Row) => number): Array<[number, number]> => rows.map((r) => [r.rho, pick(r)]);
  return lineChart({
    title: `M/M/1, μ = ${mu}/s: measured vs theory`,
    xLabel: 'utilisation ρ = λ/μ',
    yLabel: 'response time (ms)',
    logY: true,
    series: [
      { name: 'mean theory', points: curve(1), dashed: true, color: MEAN },
      { name: 'p50 theory', points: curve(Math.LN2), dashed: true, color: P50 },
      { name: 'p99 theory', points: curve(Math.log(100)), dashed: true, color: P99 },
      { name: 'mean corrected', points: measured((r) => r.corrected.meanMs), color: '#777', dots: true },
      { name: 'mean measured', points: measured((r) => r.measured.meanMs), dots: true, color: MEAN },
      { name: 'p50 measured', points: measured((r) => r.measured.p50Ms), dots: true, color: P50 },
      { name: 'p99 measured', points: measured((r) => r.measured.p99Ms), dots: true, color: P99 },
    ],
  });
}

/** One HTML file: inline CSS and SVG, no script, nothing fetched. */
export function renderHtml(report: Report): string {
  const rows = report.runs.map(runRow);
  const th = RUN_HEADER.map((h) => `<th>${escapeXml(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('\n');
  const extra: string[] = [];
  if (report.slo) extra.push(`<p>${report.slo.highestRate === undefined ? `No rate kept p99 under ${report.slo.p99Ms} ms without errors.` : `Highest rate with p99 &lt; ${report.slo.p99Ms} ms and no errors: <b>${f(report.slo.highestRate, 1)} req/s</b>.`}</p>`);
  if (report.mm1) extra.push(`<h2>M/M/1 check</h2><pre>${escapeXml(renderMm1Table(report.mm1))}</pre>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>httpgw-load report</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px}table{border-collapse:collapse}th,td{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}figure{margin:1em 0}code,pre{background:#f6f6f6}</style>
</head><body>
<h1>httpgw-load report</h1>
<p>${escapeXml(report.date)} · <code>${escapeXml(['httpgw-load', ...report.argv].join(' '))}</code></p>
<p>${escapeXml(report.workload)} — ${escapeXml(report.mode)}</p>
<p>Latency runs from each request's intended send time (open loop), so queueing in the generator or the server is included. Errors: ${escapeXml(report.runs.map((e) => `${e.label}: ${errorsText(e.result)}`).join('; '))}.</p>
<table><thead><tr>${th}</tr></thead><tbody>
${tr}
</tbody></table>
${extra.join('\n')}
${charts(report)
  .map((c) => `<figure id="${c.id}">${c.svg}</figure>`)
  .join('\n')}
</body></html>
`;
}
