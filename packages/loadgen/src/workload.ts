/**
 * What each request asks for: one URL, a list of URLs (picked at random), or a size mix over a
 * directory listing (e.g. 90 % of requests for files near 4 KiB, 10 % near 1 MiB). Plus the method
 * (GET or HEAD), an optional byte range, and what a correct answer looks like: its length, and its
 * SHA-256 where a manifest gives one.
 */
import { readFile } from 'node:fs/promises';
import type { Uniform } from './random.js';
import { formatSize, parseSize } from './units.js';

export type Method = 'GET' | 'HEAD';

/** One request to send. */
export interface RequestSpec {
  url: URL;
  method: Method;
  /** `bytes=...` header value, if any. */
  range?: string;
  /** Body length a correct answer has, when known beforehand (else the Content-Length is checked). */
  expectBytes?: number;
  /** Hex SHA-256 of the body, when a manifest gives it (full GETs only). */
  sha256?: string;
}

export interface Workload {
  /** Picks the next request. */
  next(): RequestSpec;
  /** One line for the report, e.g. "GET 2 URLs" or "GET mix 4 KiB=9 (3 files), 1 MiB=1 (1 file)". */
  readonly description: string;
}

/** A file of a listing: its URL and size. */
export interface ListedFile {
  url: URL;
  size: number;
}

export interface WorkloadInit {
  urls: readonly URL[];
  method: Method;
  /** "START-END" (inclusive), "START-" or "-SUFFIX", as after `bytes=`. */
  range?: string;
  /** Files to draw from by size class; when given, `urls` are ignored. */
  files?: readonly ListedFile[];
  /** Size class (e.g. "4KiB") and weight; each listed file belongs to the class nearest its size. */
  mix?: ReadonlyArray<{ size: string; weight: number }>;
  /** Path suffix -> SHA-256 (hex), see readManifest. */
  manifest?: ReadonlyMap<string, string>;
  uniform: Uniform;
}

export class WorkloadError extends Error {
  override readonly name = 'WorkloadError';
}

/** The bytes a range asks of a body of `size` bytes, or undefined when it cannot be told. */
export function rangeLength(range: string, size: number): number | undefined {
  const m = /^(\d*)-(\d*)$/.exec(range.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') return Math.min(size, Number(b));
  const start = Number(a);
  if (start >= size) return undefined;
  const end = b === '' ? size - 1 : Math.min(size - 1, Number(b));
  return end >= start ? end - start + 1 : undefined;
}

export function createWorkload(init: WorkloadInit): Workload {
  if (init.range !== undefined && !/^(\d+-\d*|-\d+)$/.test(init.range)) throw new WorkloadError(`invalid range "${init.range}" (START-END, START- or -SUFFIX)`);
  const pickFrom = init.files ? sizeMixPicker(init.files, init.mix ?? [], init.uniform) : undefined;
  const urls = init.urls;
  if (!pickFrom && urls.length === 0) throw new WorkloadError('no URL to load');
  const hashFor = (url: URL): string | undefined => {
    if (!init.manifest || init.method !== 'GET' || init.range !== undefined) return undefined;
    for (const [suffix, hash] of init.manifest) if (decodeURIComponent(url.pathname).endsWith(suffix)) return hash;
    return undefined;
  };
  const spec = (url: URL, size: number | undefined): RequestSpec => {
    const s: RequestSpec = { url, method: init.method };
    if (init.range !== undefined) s.range = `bytes=${init.range}`;
    if (size !== undefined) {
      const body = init.method === 'HEAD' ? 0 : init.range !== undefined ? rangeLength(init.range, size) : size;
      if (body !== undefined) s.expectBytes = body;
    }
    const hash = hashFor(url);
    if (hash !== undefined) s.sha256 = hash;
    return s;
  };
  const what = `${init.method}${init.range ? ` bytes=${init.range}` : ''}`;
  if (pickFrom) return { next: () => spec(...pickFrom.next()), description: `${what} ${pickFrom.description}` };
  const only = urls[0] as URL;
  return {
    next: () => spec(urls.length === 1 ? only : (urls[Math.floor(init.uniform() * urls.length)] as URL), undefined),
    description: urls.length === 1 ? `${what} ${only.href}` : `${what} ${urls.length} URLs`,
  };
}

function sizeMixPicker(files: readonly ListedFile[], mix: ReadonlyArray<{ size: string; weight: number }>, uniform: Uniform): { next(): [URL, number]; description: string } {
  if (files.length === 0) throw new WorkloadError('the listing has no files');
  const classes = mix.length > 0 ? mix.map((m) => ({ ...m, bytes: parseSize(m.size) })) : [{ size: 'any', weight: 1, bytes: Number.NaN }];
  const members = classes.map(() => [] as ListedFile[]);
  for (const f of files) {
    if (classes.length === 1) members[0]?.push(f);
    else {
      // Nearest class on a log scale: 3 KiB is nearer 4 KiB than 1 MiB.
      let best = 0;
      classes.forEach((c, i) => {
        const d = Math.abs(Math.log((f.size + 1) / (c.bytes + 1)));
        if (d < Math.abs(Math.log((f.size + 1) / ((classes[best]?.bytes ?? 0) + 1)))) best = i;
      });
      members[best]?.push(f);
    }
  }
  const empty = classes.filter((_, i) => members[i]?.length === 0).map((c) => c.size);
  if (empty.length > 0) throw new WorkloadError(`no listed file near ${empty.join(', ')}`);
  const total = classes.reduce((a, c) => a + c.weight, 0);
  if (!(total > 0)) throw new WorkloadError('mix weights must add up to more than 0');
  return {
    next: () => {
      let r = uniform() * total;
      let i = 0;
      while (i < classes.length - 1 && r >= (classes[i]?.weight ?? 0)) r -= classes[i++]?.weight ?? 0;
      const list = members[i] as ListedFile[];
      const f = list[Math.floor(uniform() * list.length)] as ListedFile;
      return [f.url, f.size];
    },
    description: `mix ${classes.map((c, i) => `${Number.isNaN(c.bytes) ? 'any size' : formatSize(c.bytes)}=${c.weight} (${members[i]?.length} file${members[i]?.length === 1 ? '' : 's'})`).join(', ')}`,
  };
}

/** "4KiB=9,1MiB=1" -> [{size: "4KiB", weight: 9}, ...]. */
export function parseMix(text: string): Array<{ size: string; weight: number }> {
  return text.split(',').map((part) => {
    const [size = '', weight = ''] = part.split('=').map((s) => s.trim());
    const w = Number(weight);
    parseSize(size);
    if (weight === '' || !Number.isFinite(w) || w < 0) throw new WorkloadError(`invalid mix entry "${part}" (SIZE=WEIGHT, e.g. 4KiB=9)`);
    return { size, weight: w };
  });
}

/**
 * The files of a directory listing: httpgw's JSON listing (`{ entries: [{ name, kind, size }] }`,
 * asked for with `Accept: application/json`), or any server answering that shape.
 */
export async function fetchListing(dirUrl: URL): Promise<ListedFile[]> {
  const res = await fetch(dirUrl, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new WorkloadError(`listing ${dirUrl.href}: HTTP ${res.status}`);
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new WorkloadError(`listing ${dirUrl.href}: not JSON`);
  }
  const entries = typeof body === 'object' && body !== null && 'entries' in body ? body.entries : undefined;
  if (!Array.isArray(entries)) throw new WorkloadError(`listing ${dirUrl.href}: no "entries" array`);
  const base = dirUrl.href.endsWith('/') ? dirUrl : new URL(`${dirUrl.href}/`);
  const files: ListedFile[] = [];
  for (const e of entries as unknown[]) {
    if (typeof e !== 'object' || e === null) continue;
    const { name, kind, size } = e as Record<string, unknown>;
    if (typeof name !== 'string' || typeof size !== 'number' || (kind !== undefined && kind !== 'file')) continue;
    files.push({ url: new URL(`./${encodeURIComponent(name)}`, base), size });
  }
  return files;
}

/** A sha256sum-style manifest ("HEX  NAME" per line) as NAME -> HEX; NAME matches the end of a URL path. */
export async function readManifest(path: string): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const [i, line] of (await readFile(path, 'utf8')).split('\n').entries()) {
    if (line.trim() === '') continue;
    const m = /^([0-9a-fA-F]{64})\s+\*?(.+)$/.exec(line.trim());
    if (!m?.[1] || !m[2]) throw new WorkloadError(`${path}:${i + 1}: expected "SHA256  NAME"`);
    map.set(m[2].startsWith('/') ? m[2] : `/${m[2].replace(/^\.\//, '')}`, m[1].toLowerCase());
  }
  return map;
}
