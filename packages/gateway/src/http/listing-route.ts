import { createHash } from 'node:crypto';
import type { ListEntry } from '@httpgw/protocol';
import { GatewayError } from '../errors.js';
import type { GatewayContext } from './file-route.js';
import { prefersJson } from './http-app.js';
import type { ListingResult } from '../lookup/directory-lister.js';

/** Where listings come from: the DirectoryLister, or a stand-in in tests. */
export interface ListingSource {
  list(path: string): Promise<ListingResult>;
}

/** What `GET /dir/?format=json` (or with `Accept: application/json`) returns. */
export interface ListingJson {
  /** The directory's URL path, ending in '/'. */
  path: string;
  /** True when some server did not answer every page: entries may be missing. */
  incomplete: boolean;
  entries: ListEntry[];
}

/**
 * Serves a directory as an HTML index (folders first, names, sizes, dates, links) or as JSON: 404
 * when no server has it, 503 without servers. A weak ETag from the rendered body lets a browser
 * reload with 304.
 */
export function createListingRoute(source: ListingSource): (ctx: GatewayContext, path: string) => Promise<void> {
  return async (ctx, path) => {
    const result = await source.list(path);
    if (result.kind === 'no-servers') throw new GatewayError('GW_ERR_NO_SERVERS');
    if (result.kind === 'none') throw new GatewayError('GW_ERR_NOT_FOUND', 'no registered file server has this directory');
    const urlPath = directoryUrlPath(path);
    const json = prefersJson(ctx);
    const body = json ? JSON.stringify({ path: urlPath, incomplete: result.incomplete, entries: result.entries } satisfies ListingJson) : renderListingHtml(urlPath, result.entries, result.incomplete);
    ctx.status = 200;
    ctx.type = json ? 'application/json' : 'text/html';
    ctx.set('Vary', 'Accept');
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`);
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = body;
  };
}

/** '' → '/', 'a/b' → '/a/b/' (decoded: for display and JSON). */
function directoryUrlPath(path: string): string {
  return path === '' ? '/' : `/${path}/`;
}

/** An HTML index of one directory; every name is escaped and every link percent-encoded. */
export function renderListingHtml(urlPath: string, entries: ListEntry[], incomplete = false): string {
  const title = `Index of ${escapeHtml(urlPath)}`;
  const rows: string[] = [];
  if (urlPath !== '/') rows.push('<tr><td><a href="../">../</a></td><td></td><td></td></tr>');
  for (const entry of entries) {
    const directory = entry.kind === 'directory';
    // './' first: a name such as `a:b` must never read as a URL scheme.
    const href = `./${encodeURIComponent(entry.name)}${directory ? '/' : ''}`;
    const size = directory ? '<td class="size">-</td>' : `<td class="size" title="${entry.size} ${entry.size === 1 ? 'byte' : 'bytes'}">${formatSize(entry.size)}</td>`;
    const modified = new Date(entry.mtimeMs);
    rows.push(
      `<tr><td><a href="${escapeHtml(href)}">${escapeHtml(entry.name)}${directory ? '/' : ''}</a></td>${size}` +
        `<td><time datetime="${modified.toISOString()}">${modified.toISOString().slice(0, 16).replace('T', ' ')}</time></td></tr>`,
    );
  }
  const notice = incomplete ? '<p class="notice">Some file servers did not answer: entries may be missing.</p>\n' : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}th,td{padding:.15em .8em;text-align:left}td.size{text-align:right}tbody tr:hover{background:#eee}.notice{color:#a00}</style>
</head>
<body>
<h1>${title}</h1>
${notice}<table>
<thead><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<p>${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}</p>
</body>
</html>
`;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}

/** 1023 → '1023 B', 1536 → '1.5 KiB', 5 MiB + 17 → '5.0 MiB'. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
