/** Markdown tables for stdout and the JSON results file. */
import { cpus, release, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import type { Measurement } from './types.js';

export interface ScenarioOutcome {
  name: string;
  title: string;
  status: 'ok' | 'failed' | 'skipped';
  error?: string;
  notes: string[];
  durationS: number;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  os: string;
}

export function machineInfo(): MachineInfo {
  let os = 'unknown';
  try {
    os = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)"?$/m)?.[1] ?? os;
  } catch {
    /* not Linux */
  }
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    kernel: release(),
    os,
  };
}

/** Column order: the gateway first, then the peers. */
const ORDER = ['httpgw', 'nginx-direct', 'nginx-proxy', 'tftp-65464', 'tftp-1468'];
const GATEWAY = 'httpgw';

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1000) return n.toFixed(0);
  if (a >= 100) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  if (a === 0) return '0';
  return n.toPrecision(3);
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function table(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(escapeCell).join(' | ')} |`);
  return lines.join('\n');
}

/** One table per scenario: rows (case, metric), a column per target, then httpgw ÷ peer. */
export function renderScenario(outcome: ScenarioOutcome, ms: readonly Measurement[]): string {
  const out: string[] = [`### ${outcome.title} (\`${outcome.name}\`)`, ''];
  if (ms.length > 0) {
    const targets = [...new Set(ms.map((m) => m.target))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b, 'en', { numeric: true }));
    const peers = targets.filter((t) => t !== GATEWAY);
    const showRatio = targets.includes(GATEWAY) && peers.length > 0;
    const rowKeys: string[] = [];
    const rowsByKey = new Map<string, Map<string, Measurement>>();
    for (const m of ms) {
      const key = `${m.case}\u0000${m.metric}\u0000${m.unit}\u0000${m.better}`;
      if (!rowsByKey.has(key)) {
        rowsByKey.set(key, new Map());
        rowKeys.push(key);
      }
      rowsByKey.get(key)?.set(m.target, m);
    }
    const header = ['case', 'metric', ...targets, ...(showRatio ? peers.map((p) => `${GATEWAY} ÷ ${p}`) : []), 'n'];
    const rows = rowKeys.map((key) => {
      const [kase = '', metric = '', unit = '', better = ''] = key.split('\u0000');
      const cells = rowsByKey.get(key) ?? new Map<string, Measurement>();
      const gw = cells.get(GATEWAY)?.median;
      const ratios = showRatio
        ? peers.map((p) => {
            const pv = cells.get(p)?.median;
            return gw !== undefined && pv !== undefined && pv !== 0 && Number.isFinite(gw / pv) ? `${(gw / pv).toFixed(2)}×` : '—';
          })
        : [];
      const n = Math.max(...[...cells.values()].map((m) => m.samples.length));
      return [kase, `${metric} (${unit}) ${better === 'higher' ? '↑' : '↓'}`, ...targets.map((t) => fmt(cells.get(t)?.median ?? Number.NaN)), ...ratios, String(n)];
    });
    out.push(table(header, rows), '');
  }
  if (outcome.status === 'failed') out.push(`- **failed:** ${outcome.error ?? 'unknown error'}`);
  if (outcome.status === 'skipped') out.push(`- **skipped:** ${outcome.error ?? ''}`);
  for (const n of outcome.notes) out.push(`- ${n}`);
  out.push(`- took ${outcome.durationS.toFixed(0)} s`, '');
  return out.join('\n');
}

function rank(target: string): number {
  const i = ORDER.indexOf(target);
  return i < 0 ? ORDER.length : i;
}

export function renderHeader(machine: MachineInfo, date: string, quick: boolean, skipped: ReadonlyMap<string, string>, remarks: readonly string[] = []): string {
  const lines = [
    `## httpgw benchmark${quick ? ' (quick)' : ''}`,
    '',
    `${date} · ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB · ${machine.os} · kernel ${machine.kernel} · node ${machine.node}`,
    '',
    'Medians over the repetitions (n). MB = 10^6 bytes, GB = 10^9 bytes; file sizes are binary (MiB, GiB).',
    'Ratios are httpgw ÷ peer from this run: above 1 is better for ↑ metrics, below 1 is better for ↓ metrics.',
    '',
  ];
  for (const [name, why] of skipped) lines.push(`- **${name} skipped:** ${why}`);
  for (const r of remarks) lines.push(`- ${r}`);
  if (skipped.size + remarks.length > 0) lines.push('');
  return lines.join('\n');
}
