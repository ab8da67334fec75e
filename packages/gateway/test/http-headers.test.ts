import { describe, expect, it } from 'vitest';
import { MAX_RANGE_PARTS, asciiFallback, chooseRange, etagOf, ifRangeMatches, preconditionsHold } from '../src/http/file-route.js';
import { encodePath, requestPath } from '../src/http/http-app.js';
import { escapeHtml, formatSize, renderListingHtml } from '../src/http/listing-route.js';
import { isServableName, mergeListings } from '../src/lookup/directory-lister.js';

const MTIME = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const file = { size: 1000, version: 'v1', mtimeMs: MTIME };
const lastModified = new Date(MTIME).toUTCString();

describe('chooseRange', () => {
  it.each([
    ['no Range', {}, { status: 200, start: 0, end: 999 }],
    ['a-b', { range: 'bytes=10-19' }, { status: 206, start: 10, end: 19 }],
    ['a-', { range: 'bytes=990-' }, { status: 206, start: 990, end: 999 }],
    ['-n', { range: 'bytes=-10' }, { status: 206, start: 990, end: 999 }],
    ['-n longer than the file', { range: 'bytes=-5000' }, { status: 206, start: 0, end: 999 }],
    ['a-b past the end', { range: 'bytes=500-5000' }, { status: 206, start: 500, end: 999 }],
    ['overlapping ranges, combined', { range: 'bytes=0-10,5-20' }, { status: 206, start: 0, end: 20 }],
    ['adjacent ranges, combined', { range: 'bytes=0-9,10-19' }, { status: 206, start: 0, end: 19 }],
    ['several disjoint ranges: multipart', { range: 'bytes=0-1,5-6' }, { status: 206, parts: [{ start: 0, end: 1 }, { start: 5, end: 6 }] }],
    ['multipart parts in the order asked', { range: 'bytes=500-509,0-9' }, { status: 206, parts: [{ start: 500, end: 509 }, { start: 0, end: 9 }] }],
    ['multipart: overlapping ones combined, the rest kept', { range: 'bytes=0-9,5-14,100-109' }, { status: 206, parts: [{ start: 0, end: 14 }, { start: 100, end: 109 }] }],
    ['an unsatisfiable range among others is dropped', { range: 'bytes=0-9,5000-6000' }, { status: 206, start: 0, end: 9 }],
    ['start past the end', { range: 'bytes=1000-' }, { status: 416 }],
    ['every range past the end', { range: 'bytes=2000-3000,4000-5000' }, { status: 416 }],
    ['malformed: ignored', { range: 'bytes=x-y' }, { status: 200, start: 0, end: 999 }],
    ['another unit: ignored', { range: 'items=0-5' }, { status: 200, start: 0, end: 999 }],
    ['If-Range with the ETag', { range: 'bytes=0-9', ifRange: '"v1"' }, { status: 206, start: 0, end: 9 }],
    ['If-Range with another ETag', { range: 'bytes=0-9', ifRange: '"v0"' }, { status: 200, start: 0, end: 999 }],
    ['If-Range with a weak ETag', { range: 'bytes=0-9', ifRange: 'W/"v1"' }, { status: 200, start: 0, end: 999 }],
    ['If-Range with the Last-Modified date', { range: 'bytes=0-9', ifRange: lastModified }, { status: 206, start: 0, end: 9 }],
    ['If-Range with an older date', { range: 'bytes=0-9', ifRange: new Date(MTIME - 5_000).toUTCString() }, { status: 200, start: 0, end: 999 }],
    ['If-Range with a later date', { range: 'bytes=0-9', ifRange: new Date(MTIME + 5_000).toUTCString() }, { status: 200, start: 0, end: 999 }],
    ['If-Range garbage', { range: 'bytes=0-9', ifRange: 'yesterday' }, { status: 200, start: 0, end: 999 }],
    ['If-Range without Range', { ifRange: '"v0"' }, { status: 200, start: 0, end: 999 }],
  ])('%s', (_name, headers, expected) => {
    expect(chooseRange(headers, file)).toEqual(expected);
  });

  it(`up to ${MAX_RANGE_PARTS} disjoint ranges are a multipart answer; more get the whole file`, () => {
    const ranges = (count: number) => `bytes=${Array.from({ length: count }, (_, i) => `${i * 20}-${i * 20 + 9}`).join(',')}`;
    const big = { ...file, size: 100_000 };
    expect(chooseRange({ range: ranges(MAX_RANGE_PARTS) }, big)).toEqual({ status: 206, parts: Array.from({ length: MAX_RANGE_PARTS }, (_, i) => ({ start: i * 20, end: i * 20 + 9 })) });
    expect(chooseRange({ range: ranges(MAX_RANGE_PARTS + 1) }, big)).toEqual({ status: 200, start: 0, end: 99_999 });
  });

  it('many overlapping ranges are combined into one before the limit applies', () => {
    const range = `bytes=${Array.from({ length: 500 }, (_, i) => `${i}-${i + 50}`).join(',')}`;
    expect(chooseRange({ range }, file)).toEqual({ status: 206, start: 0, end: 549 });
  });

  it('a multipart body no smaller than the file itself: the whole file instead', () => {
    const small = { ...file, size: 100 };
    expect(chooseRange({ range: 'bytes=0-1,5-6' }, small)).toEqual({ status: 200, start: 0, end: 99 });
    // The parts' Content-Type counts: a longer type makes the multipart body longer.
    const edge = { ...file, size: 400 };
    expect(chooseRange({ range: 'bytes=0-1,5-6' }, edge, 'text/plain')).toMatchObject({ status: 206 });
    expect(chooseRange({ range: 'bytes=0-1,5-6' }, edge, `application/${'x'.repeat(200)}`)).toMatchObject({ status: 200 });
  });

  it('an empty file has no satisfiable range', () => {
    expect(chooseRange({}, { ...file, size: 0 })).toEqual({ status: 200, start: 0, end: -1 });
    expect(chooseRange({ range: 'bytes=0-' }, { ...file, size: 0 })).toEqual({ status: 416 });
  });
});

describe('validators', () => {
  it('the ETag is the version, strong', () => {
    expect(etagOf({ version: '34dg1-hoe1vonqk1' })).toBe('"34dg1-hoe1vonqk1"');
  });

  it('a version an entity tag cannot carry is hashed into one', () => {
    const etag = etagOf({ version: 'bad"version\r\n' });
    expect(etag).toMatch(/^"h-[A-Za-z0-9_-]{27}"$/);
    expect(etagOf({ version: 'bad"version\r\n' })).toBe(etag);
  });

  it('If-Range absent always matches', () => {
    expect(ifRangeMatches(undefined, file)).toBe(true);
    expect(ifRangeMatches('', file)).toBe(true);
  });
});

describe('preconditionsHold (RFC 9110 §13.1.1, §13.1.4, §13.2.2 steps 1–2)', () => {
  const earlier = new Date(MTIME - 5_000).toUTCString();
  const later = new Date(MTIME + 5_000).toUTCString();
  it.each([
    [true, 'no preconditions', {}],
    [true, 'If-Match with the ETag', { ifMatch: '"v1"' }],
    [false, 'If-Match with another ETag', { ifMatch: '"v0"' }],
    [true, 'If-Match: *', { ifMatch: '*' }],
    [true, 'If-Match: * with spaces', { ifMatch: ' * ' }],
    [false, 'If-Match with the weak ETag (strong comparison)', { ifMatch: 'W/"v1"' }],
    [true, 'If-Match in a list', { ifMatch: '"a", W/"b","v1"' }],
    [false, 'If-Match list without it', { ifMatch: '"a", W/"v1", "v0"' }],
    [false, 'If-Match unquoted (malformed)', { ifMatch: 'v1' }],
    [true, 'If-Unmodified-Since the Last-Modified (whole seconds)', { ifUnmodifiedSince: lastModified }],
    [true, 'If-Unmodified-Since later', { ifUnmodifiedSince: later }],
    [false, 'If-Unmodified-Since earlier', { ifUnmodifiedSince: earlier }],
    [true, 'If-Unmodified-Since not a date: ignored', { ifUnmodifiedSince: 'yesterday' }],
    [true, 'If-Match matching beats an earlier If-Unmodified-Since', { ifMatch: '"v1"', ifUnmodifiedSince: earlier }],
    [false, 'If-Match failing beats a later If-Unmodified-Since', { ifMatch: '"v0"', ifUnmodifiedSince: later }],
  ])('%s: %s', (holds, _name, headers) => {
    expect(preconditionsHold(headers, file)).toBe(holds);
  });

  it('an entity tag with a comma in it matches whole', () => {
    const commas = { version: 'a,b', mtimeMs: MTIME };
    expect(preconditionsHold({ ifMatch: '"x", "a,b"' }, commas)).toBe(true);
    expect(preconditionsHold({ ifMatch: '"a", "b"' }, commas)).toBe(false);
  });
});

describe('names', () => {
  it.each([
    ['plain.txt', 'plain.txt'],
    ['café.txt', 'cafe.txt'],
    ['ünïcødé 文件 #1.txt', 'unicøde __ #1.txt'.replace('ø', '_')],
    ['emoji 😀.bin', 'emoji __.bin'],
  ])('ASCII fallback of %s', (name, fallback) => {
    expect(asciiFallback(name)).toBe(fallback);
    expect(asciiFallback(name)).toMatch(/^[\x20-\x7e]*$/);
  });

  it('request paths decode, and refuse malformed encoding, NUL and traversal', () => {
    expect(requestPath('/a%20b/%E6%96%87.txt')).toEqual({ path: 'a b/文.txt', isDirectory: false });
    expect(requestPath('/dir/')).toEqual({ path: 'dir', isDirectory: true });
    expect(requestPath('/')).toEqual({ path: '', isDirectory: true });
    for (const bad of ['/%E0%A4%A', '/a%00b', '/%2e%2e/x', '/a%5cb']) expect(() => requestPath(bad), bad).toThrow(expect.objectContaining({ code: 'GW_ERR_BAD_PATH' }));
    expect(() => requestPath('/.env')).toThrow(expect.objectContaining({ code: 'GW_ERR_NOT_FOUND' }));
  });

  it('URL paths encode every segment', () => {
    expect(encodePath('')).toBe('/');
    expect(encodePath('a b/#%/文')).toBe('/a%20b/%23%25/%E6%96%87');
  });
});

describe('listings', () => {
  const entry = (name: string, kind: 'file' | 'directory', size: number, mtimeMs: number) => ({ name, kind, size, mtimeMs });

  it('merges by name: one entry per name, the newest version, a file over a folder; folders first', () => {
    const merged = mergeListings([
      [entry('b.txt', 'file', 5, 100), entry('same.txt', 'file', 3, 50), entry('z', 'directory', 0, 10), entry('both', 'directory', 0, 1)],
      [entry('b.txt', 'file', 9, 200), entry('same.txt', 'file', 3, 50), entry('a', 'directory', 0, 20), entry('both', 'file', 7, 1)],
      [entry('b.txt', 'file', 7, 150), entry('A.txt', 'file', 1, 1)],
    ]);
    expect(merged).toEqual([
      entry('a', 'directory', 0, 20),
      entry('z', 'directory', 0, 10),
      entry('A.txt', 'file', 1, 1),
      entry('b.txt', 'file', 9, 200),
      entry('both', 'file', 7, 1),
      entry('same.txt', 'file', 3, 50),
    ]);
  });

  it('lists only names the gateway would serve', () => {
    for (const good of ['a.txt', 'with space', '文件', '#%']) expect(isServableName(good), good).toBe(true);
    for (const bad of ['', '.', '..', '.hidden', 'a/b', 'a\\b', 'nul\0', 'bell\u0007']) expect(isServableName(bad), JSON.stringify(bad)).toBe(false);
  });

  it('escapes HTML and percent-encodes links', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const html = renderListingHtml('/d <i>/', [entry('sub dir', 'directory', 0, MTIME), entry('<b>&"q\'#%文.txt', 'file', 1536, MTIME), entry('a:b', 'file', 1, MTIME)]);
    expect(html).toContain('<title>Index of /d &lt;i&gt;/</title>');
    expect(html).toContain('<a href="../">../</a>');
    expect(html).toContain('<a href="./sub%20dir/">sub dir/</a>');
    expect(html).toContain(`<a href="./%3Cb%3E%26%22q'%23%25%E6%96%87.txt">&lt;b&gt;&amp;&quot;q&#39;#%文.txt</a>`.replace("q'%23", 'q&#39;%23'));
    expect(html).toContain('<a href="./a%3Ab">');
    expect(html).toContain('title="1536 bytes">1.5 KiB<');
    expect(html).toContain(`<time datetime="${new Date(MTIME).toISOString()}">2026-01-02 03:04</time>`);
    expect(html).not.toMatch(/<b>|<i>/);
    expect(renderListingHtml('/', [])).not.toContain('href="../"');
  });

  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [5 * 1024 * 1024 + 17, '5.0 MiB'],
    [300 * 1024 * 1024, '300 MiB'],
    [3 * 1024 ** 4, '3.0 TiB'],
  ])('formats %d bytes as %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });
});
