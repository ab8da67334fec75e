/** Parsing of the human units the command line takes: durations ("10s", "500ms", "2m") and sizes ("4KiB"). */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from "250ms", "10s", "1.5m", "1h" or a bare number of seconds; throws on anything else. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text) || text < 0) throw new RangeError(`invalid duration ${text}`);
    return text * 1000;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m?.[1]) throw new RangeError(`invalid duration "${text}" (e.g. 500ms, 10s, 2m)`);
  return Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] ?? 1000);
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1e6, mib: 1024 ** 2, g: 1024 ** 3, gb: 1e9, gib: 1024 ** 3 };

/** Bytes from "4KiB", "1MiB", "1.5MB", "512"; throws on anything else. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const scale = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m?.[1] || scale === undefined) throw new RangeError(`invalid size "${text}" (e.g. 4KiB, 1MiB)`);
  return Math.round(Number(m[1]) * scale);
}

/** "4 KiB", "1 MiB", "812 B": binary units, as file sizes are usually quoted. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
