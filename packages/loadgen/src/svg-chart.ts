/**
 * Line charts as inline SVG: no script, no library, so a report opens from disk in any browser and
 * the same markup can be saved as an .svg image for the docs.
 */

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  /** Dashed line (e.g. a theoretical curve). */
  dashed?: boolean;
  /** Draw dots at the points. */
  dots?: boolean;
  /** Line colour (default: the next of the palette), e.g. to pair a measured series with its theory. */
  color?: string;
}

export interface ChartInit {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** x axis of a percentile spectrum: 1/(1 - p) on a log scale, so 90, 99, 99.9 are evenly spaced. */
  xPercentile?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  /** Horizontal reference line, e.g. the p99 target. */
  hLine?: { y: number; label: string };
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export const escapeXml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const fmtTick = (v: number): string => (Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

export function lineChart(init: ChartInit): string {
  const width = init.width ?? 720;
  const height = init.height ?? 360;
  const legendRows = Math.ceil(init.series.length / 4);
  const m = { left: 64, right: 16, top: 32, bottom: 44 + 16 * legendRows };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const xOf = (x: number) => (init.xPercentile ? Math.log10(1 / Math.max(1e-9, 1 - Math.min(x, 99.9999) / 100)) : x);
  const yOf = (y: number) => (init.logY ? Math.log10(Math.max(y, 1e-3)) : y);
  const pts = init.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = pts.map(([x]) => xOf(x));
  const ys = pts.map(([, y]) => yOf(y));
  if (init.hLine) ys.push(yOf(init.hLine.y));
  let [x0, x1] = [Math.min(...xs, init.xPercentile ? 0 : Infinity), Math.max(...xs)];
  let [y0, y1] = [init.logY ? Math.min(...ys) : Math.min(0, ...ys), Math.max(...ys)];
  if (!Number.isFinite(x0) || !Number.isFinite(x1)) [x0, x1] = [0, 1];
  if (!Number.isFinite(y0) || !Number.isFinite(y1)) [y0, y1] = [0, 1];
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  if (!init.logY) y1 *= 1.05;
  const px = (x: number) => m.left + ((xOf(x) - x0) / (x1 - x0)) * pw;
  const py = (y: number) => m.top + ph - ((yOf(y) - y0) / (y1 - y0)) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="system-ui,sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(init.title)}</text>`,
  ];
  const xTicks = init.xPercentile ? [0, 90, 99, 99.9, 99.99, 99.999].filter((p) => xOf(p) <= x1 + 1e-9) : niceTicks(x0, x1);
  for (const t of xTicks) {
    const x = px(t);
    out.push(`<line x1="${x.toFixed(1)}" y1="${m.top}" x2="${x.toFixed(1)}" y2="${m.top + ph}" stroke="#eee"/>`, `<text x="${x.toFixed(1)}" y="${m.top + ph + 16}" text-anchor="middle">${init.xPercentile ? `${t}%` : fmtTick(t)}</text>`);
  }
  const yTicks = init.logY ? niceTicks(Math.floor(y0), Math.ceil(y1), Math.ceil(y1) - Math.floor(y0)).filter(Number.isInteger).map((e) => 10 ** e) : niceTicks(y0, y1);
  for (const t of yTicks) {
    if (yOf(t) < y0 - 1e-9 || yOf(t) > y1 + 1e-9) continue;
    const y = py(t);
    out.push(`<line x1="${m.left}" y1="${y.toFixed(1)}" x2="${m.left + pw}" y2="${y.toFixed(1)}" stroke="#eee"/>`, `<text x="${m.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  out.push(
    `<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${m.left + pw / 2}" y="${m.top + ph + 32}" text-anchor="middle">${escapeXml(init.xLabel)}</text>`,
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(init.yLabel)}</text>`,
  );
  if (init.hLine) {
    const y = py(init.hLine.y).toFixed(1);
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#999" stroke-dasharray="2 3"/>`, `<text x="${m.left + pw - 4}" y="${Number(y) - 4}" text-anchor="end" fill="#666">${escapeXml(init.hLine.label)}</text>`);
  }
  init.series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length];
    const d = s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
      .map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join('');
    if (d) out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (s.dots) for (const [x, y] of s.points) if (Number.isFinite(x) && Number.isFinite(y)) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`);
    const lx = m.left + (i % 4) * (pw / 4);
    const ly = m.top + ph + 52 + Math.floor(i / 4) * 16;
    out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`, `<text x="${lx + 22}" y="${ly}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
