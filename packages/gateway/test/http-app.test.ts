import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { type ListEntry } from '@httpgw/protocol';
import { createLogger, silentLogger, type Logger } from '@httpgw/runtime';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import type { FileVersion, LookupResult } from '../src/lookup/file-lookup.js';
import type { FileRouteDeps } from '../src/http/file-route.js';
import { createHttpApp } from '../src/http/http-app.js';
import { withAccessLog } from '../src/http/access-log.js';
import { createListingRoute, type ListingJson } from '../src/http/listing-route.js';
import type { ListingResult } from '../src/lookup/directory-lister.js';

// The HTTP app over stand-ins for the lookup, the transfers and the lister: no UDP, no file server.
// Each server listens on 127.0.0.1, port 0.

const MTIME = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

interface FakeFile {
  data: Buffer;
  version: string;
  /** Makes the transfer fail before its first chunk. */
  failure?: Error;
  /** Holds the first chunk back until it settles. */
  beforeFirst?: Promise<void>;
  /** Set once the transfer's generator has finished, however it ended. */
  ended?: boolean;
  /** Makes the transfer that starts at this byte fail before its first chunk (a part of a multipart answer). */
  failAt?: { byte: number; error: Error };
  /** Holds the first chunk of the transfer that starts at this byte back until it settles. */
  holdAt?: { byte: number; until: Promise<void> };
  /** Makes every transfer end, without an error, this many bytes short. */
  shortBy?: number;
}

const files = new Map<string, FakeFile>();
const directories = new Set<string>();
const listings = new Map<string, ListingResult>();
let noServers = false;
/** Ranges the fake transfers were asked for: [path, first byte, last byte]. */
const fetched: Array<[string, number, number]> = [];
/** Ranges whose fake transfer was cancelled (its client left). */
const cancelled: Array<[string, number, number]> = [];

const fileVersion = (path: string, file: FakeFile): FileVersion => ({ path, size: file.data.length, mtimeMs: MTIME, version: file.version, servers: ['127.0.0.1:1'] });

const deps: FileRouteDeps = {
  lookup: {
    async lookup(path: string): Promise<LookupResult> {
      if (noServers) return { kind: 'no-servers' };
      const file = files.get(path);
      if (file) return { kind: 'file', file: fileVersion(path, file) };
      return directories.has(path) ? { kind: 'directory', servers: ['127.0.0.1:1'], mtimeMs: MTIME } : { kind: 'none' };
    },
    forget() {},
  },
  transfers: {
    fetch(file, firstByte, lastByte, signal) {
      fetched.push([file.path, firstByte, lastByte]);
      const fake = files.get(file.path)!;
      const fetcher = { bytesDelivered: 0, serversUsed: new Set<string>() };
      const cancel = () => cancelled.push([file.path, firstByte, lastByte]);
      signal.addEventListener('abort', cancel);
      async function* chunks(): AsyncGenerator<Buffer, void, undefined> {
        try {
          await fake.beforeFirst;
          if (fake.holdAt?.byte === firstByte) await fake.holdAt.until;
          if (fake.failure) throw fake.failure;
          if (fake.failAt?.byte === firstByte) throw fake.failAt.error;
          const piece = fake.data.subarray(firstByte, lastByte + 1 - (fake.shortBy ?? 0));
          fetcher.bytesDelivered += piece.length;
          fetcher.serversUsed.add(`127.0.0.1:${1000 + firstByte}`);
          yield piece;
        } finally {
          signal.removeEventListener('abort', cancel);
          fake.ended = true;
        }
      }
      return { fetcher, chunks: chunks() };
    },
  },
};

const listingSource = {
  async list(path: string): Promise<ListingResult> {
    if (noServers) return { kind: 'no-servers' };
    return listings.get(path) ?? { kind: 'none' };
  },
};

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

function request(port: number, target: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path: target, method: init.method ?? 'GET', headers: init.headers, agent: false }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => {
        const body = Buffer.concat(parts);
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, text: body.toString() });
      });
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Serves `app`, through the access log (as the gateway does) when given its logger. */
async function listen(app: ReturnType<typeof createHttpApp>, accessLogger?: Logger): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer(accessLogger ? withAccessLog(app.callback(), accessLogger, { enabled: true }) : app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The parts of a multipart/byteranges answer: each one's headers (lower-case names) and bytes. */
function parseMultipart(answer: Answer): Array<{ headers: Record<string, string>; body: Buffer }> {
  const boundary = /^multipart\/byteranges; boundary=([0-9a-f]+)$/.exec(String(answer.headers['content-type']))?.[1];
  if (!boundary) throw new Error(`not a multipart/byteranges answer: ${String(answer.headers['content-type'])}`);
  const body = answer.body.toString('latin1');
  const close = `\r\n--${boundary}--\r\n`;
  if (!body.startsWith(`--${boundary}\r\n`) || !body.endsWith(close)) throw new Error('the body does not start and end with the boundary');
  return `\r\n${body.slice(0, -close.length)}`
    .split(`\r\n--${boundary}\r\n`)
    .slice(1)
    .map((part) => {
      const split = part.indexOf('\r\n\r\n');
      const headers: Record<string, string> = {};
      for (const line of part.slice(0, split).split('\r\n')) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      return { headers, body: Buffer.from(part.slice(split + 4), 'latin1') };
    });
}

/** How `expect.poll` waits here for what the server does in the background (its default is 1 s every 50 ms). */
const SOON = { timeout: 2_000, interval: 10 };

let port: number;
let close: () => Promise<void>;
const get = (target: string, headers: Record<string, string> = {}) => request(port, target, { headers });

beforeAll(async () => {
  ({ port, close } = await listen(createHttpApp({ ...deps, logger: silentLogger, serveListing: createListingRoute(listingSource), maxUrlBytes: 2_048 })));
});
afterAll(() => close());

beforeEach(() => {
  files.clear();
  directories.clear();
  listings.clear();
  fetched.length = 0;
  cancelled.length = 0;
  noServers = false;
  files.set('hello.txt', { data: Buffer.from('hello world\n'), version: 'v-hello' });
  files.set('big.bin', { data: Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251)), version: 'v-big' });
});

describe('types and names', () => {
  it.each([
    ['a.txt', 'text/plain; charset=utf-8'],
    ['a.html', 'text/html; charset=utf-8'],
    ['a.json', 'application/json; charset=utf-8'],
    ['a.png', 'image/png'],
    ['a.tar.gz', 'application/gzip'],
    ['a.unknownext', 'application/octet-stream'],
    ['noext', 'application/octet-stream'],
    ['html', 'application/octet-stream'],
    ['trailing.', 'application/octet-stream'],
  ])('%s is served as %s, with nosniff', async (name, type) => {
    files.set(name, { data: Buffer.from('x'), version: 'v' });
    const answer = await get(`/${name}`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe(type);
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
  });

  it('?download names the file in Content-Disposition: ASCII filename and RFC 5987 filename*', async () => {
    files.set('dir/ünï 文件 #1.txt', { data: Buffer.from('u'), version: 'v' });
    const unicode = await get('/dir/%C3%BCn%C3%AF%20%E6%96%87%E4%BB%B6%20%231.txt?download');
    expect(unicode.headers['content-disposition']).toBe(`attachment; filename="uni __ #1.txt"; filename*=UTF-8''%C3%BCn%C3%AF%20%E6%96%87%E4%BB%B6%20%231.txt`);
    expect(unicode.headers['content-type']).toBe('text/plain; charset=utf-8');
    const plain = await get('/hello.txt?download');
    expect(plain.headers['content-disposition']).toBe('attachment; filename="hello.txt"');
    expect((await get('/hello.txt')).headers['content-disposition']).toBeUndefined();
  });
});

describe('ranges', () => {
  it.each([
    ['bytes=100-199', 100, 199],
    ['bytes=9990-', 9990, 9999],
    ['bytes=-10', 9990, 9999],
    ['bytes=-20000', 0, 9999],
  ])('%s → 206 with Content-Range, fetching only that range', async (range, first, last) => {
    const answer = await get('/big.bin', { Range: range });
    expect(answer.status).toBe(206);
    expect(answer.headers['content-range']).toBe(`bytes ${first}-${last}/10000`);
    expect(answer.headers['content-length']).toBe(String(last - first + 1));
    expect(answer.body.equals(files.get('big.bin')!.data.subarray(first, last + 1))).toBe(true);
    expect(fetched).toEqual([['big.bin', first, last]]);
  });

  it('no Range → 200 with Accept-Ranges, never 206', async () => {
    const answer = await get('/big.bin');
    expect(answer.status).toBe(200);
    expect(answer.headers['accept-ranges']).toBe('bytes');
    expect(answer.headers['content-range']).toBeUndefined();
    expect(answer.body.length).toBe(10_000);
  });

  it('several disjoint ranges → 206 multipart/byteranges: each part its type, Content-Range and bytes, fetched one after another', async () => {
    const data = files.get('big.bin')!.data;
    const answer = await get('/big.bin', { Range: 'bytes=5000-5099,0-9,9990-' });
    expect(answer.status).toBe(206);
    expect(answer.headers['content-range']).toBeUndefined();
    expect(answer.headers['content-length']).toBe(String(answer.body.length));
    const parts = parseMultipart(answer);
    expect(parts.map((part) => part.headers)).toEqual([
      { 'content-type': 'application/octet-stream', 'content-range': 'bytes 5000-5099/10000' },
      { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-9/10000' },
      { 'content-type': 'application/octet-stream', 'content-range': 'bytes 9990-9999/10000' },
    ]);
    expect(parts.map((part) => part.body)).toEqual([data.subarray(5000, 5100), data.subarray(0, 10), data.subarray(9990)]);
    expect(fetched).toEqual([
      ['big.bin', 5000, 5099],
      ['big.bin', 0, 9],
      ['big.bin', 9990, 9999],
    ]);
  });

  it('multipart parts carry the file type; HEAD has the same status, type and length, and fetches nothing', async () => {
    files.set('notes.txt', { data: Buffer.from('x'.repeat(5_000)), version: 'v-notes' });
    const answer = await get('/notes.txt', { Range: 'bytes=0-9,100-109' });
    expect(parseMultipart(answer).map((part) => part.headers['content-type'])).toEqual(['text/plain; charset=utf-8', 'text/plain; charset=utf-8']);
    fetched.length = 0;
    const head = await request(port, '/notes.txt', { method: 'HEAD', headers: { Range: 'bytes=0-9,100-109' } });
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([206, answer.headers['content-length'], 0]);
    expect(head.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=[0-9a-f]{24}$/);
    expect(fetched).toEqual([]);
  });

  it('adjacent or overlapping ranges → one 206, one transfer', async () => {
    const answer = await get('/big.bin', { Range: 'bytes=0-9,10-19,15-29' });
    expect([answer.status, answer.headers['content-range'], answer.body.length]).toEqual([206, 'bytes 0-29/10000', 30]);
    expect(fetched).toEqual([['big.bin', 0, 29]]);
  });

  it('more than 16 disjoint ranges, or a multipart body no smaller than the file → the whole file with 200', async () => {
    const many = `bytes=${Array.from({ length: 17 }, (_, i) => `${i * 100}-${i * 100 + 9}`).join(',')}`;
    const answer = await get('/big.bin', { Range: many });
    expect([answer.status, answer.body.length]).toEqual([200, 10_000]);
    const small = await get('/hello.txt', { Range: 'bytes=0-1,5-6' });
    expect([small.status, small.text]).toEqual([200, 'hello world\n']);
  });

  it('a part that fails after the status line went out cuts the connection, never ends the body cleanly', async () => {
    files.get('big.bin')!.failAt = { byte: 100, error: new GatewayError('GW_ERR_SOURCES_GONE') };
    await expect(get('/big.bin', { Range: 'bytes=0-9,100-109,200-209' })).rejects.toThrow();
    expect(fetched).toEqual([
      ['big.bin', 0, 9],
      ['big.bin', 100, 109],
    ]);
  });

  it('a failure before the first part is an honest error status', async () => {
    files.get('big.bin')!.failAt = { byte: 0, error: new GatewayError('GW_ERR_SOURCES_GONE') };
    const answer = await get('/big.bin', { Range: 'bytes=0-9,100-109' });
    expect(answer.status).toBe(502);
    expect(answer.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it('a transfer that ends short without an error cuts the connection, one range or several', async () => {
    files.get('big.bin')!.shortBy = 1;
    await expect(get('/big.bin', { Range: 'bytes=0-99' })).rejects.toThrow();
    await expect(get('/big.bin', { Range: 'bytes=0-9,100-109' })).rejects.toThrow();
    await expect(get('/big.bin')).rejects.toThrow();
  });

  it('unsatisfiable → 416 with Content-Range: bytes */SIZE and a short body, nothing fetched', async () => {
    const answer = await get('/big.bin', { Range: 'bytes=10000-' });
    expect(answer.status).toBe(416);
    expect(answer.headers['content-range']).toBe('bytes */10000');
    expect(answer.text).toBe('416 range not satisfiable\n');
    expect(fetched).toEqual([]);
  });

  it('If-Range: the current ETag or date keeps the range, another one gets the whole file', async () => {
    const lastModified = new Date(MTIME).toUTCString();
    expect((await get('/big.bin', { Range: 'bytes=0-9', 'If-Range': '"v-big"' })).status).toBe(206);
    expect((await get('/big.bin', { Range: 'bytes=0-9', 'If-Range': lastModified })).status).toBe(206);
    const changed = await get('/big.bin', { Range: 'bytes=0-9', 'If-Range': '"v-old"' });
    expect(changed.status).toBe(200);
    expect(changed.body.length).toBe(10_000);
  });

  it('an empty file is 200 with no body; a range of it is 416', async () => {
    files.set('empty.bin', { data: Buffer.alloc(0), version: 'v0' });
    const whole = await get('/empty.bin');
    expect([whole.status, whole.headers['content-length'], whole.body.length]).toEqual([200, '0', 0]);
    const range = await get('/empty.bin', { Range: 'bytes=0-' });
    expect([range.status, range.headers['content-range']]).toEqual([416, 'bytes */0']);
  });
});

describe('a client that leaves', () => {
  it('before the first chunk arrives: the response is wound up, not left waiting for a drain that never comes', async () => {
    let release = () => {};
    const file: FakeFile = { data: Buffer.alloc(100_000, 1), version: 'v-late', beforeFirst: new Promise((resolve) => (release = resolve)) };
    files.set('late.bin', file);
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    client.write('GET /late.bin HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect.poll(() => fetched.map(([path]) => path), SOON).toContain('late.bin');
    client.destroy();
    // The server sees the close: the response's 'close' cancels the transfer.
    await expect.poll(() => cancelled.map(([path]) => path), SOON).toContain('late.bin');
    release(); // the first chunk comes to a closed response
    await expect.poll(() => file.ended, SOON).toBe(true);
  });
});

describe('a client that leaves a multipart answer', () => {
  it('cancels the part in progress and starts no other', async () => {
    let release = () => {};
    const file = files.get('big.bin')!;
    file.holdAt = { byte: 100, until: new Promise((resolve) => (release = resolve)) };
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    let received = '';
    client.on('data', (data: Buffer) => (received += data.toString('latin1')));
    client.write('GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,100-109,200-209\r\n\r\n');
    await expect.poll(() => fetched.length, SOON).toBe(2);
    await expect.poll(() => received, SOON).toContain('Content-Range: bytes 0-9/10000');
    client.destroy();
    await expect.poll(() => cancelled.map(([, first]) => first), SOON).toContain(100);
    release();
    await expect.poll(() => file.ended, SOON).toBe(true);
    // The next part would be asked for as the ended one's writer returns, within the promise jobs
    // already queued: one turn of the event loop runs them all.
    await new Promise((resolve) => setImmediate(resolve));
    expect(fetched.map(([, first]) => first)).toEqual([0, 100]);
  });
});

describe('the access log of a multipart answer', () => {
  it('counts the bytes and servers of every part', async () => {
    const lines: string[] = [];
    const logger = createLogger({ name: 'gw', level: 'info', write: (line) => lines.push(line) });
    const logged = await listen(createHttpApp({ ...deps, logger }), logger);
    try {
      const answer = await request(logged.port, '/big.bin', { headers: { Range: 'bytes=0-9,100-119' } });
      expect(answer.status).toBe(206);
      // The access line is written when the response closes, which may come after the client has read it all.
      const accessLine = () => lines.find((each) => each.includes('GET /big.bin'));
      await expect.poll(accessLine, SOON).toBeDefined();
      const line = accessLine()!;
      expect(line).toContain('status=206');
      expect(line).toContain('bytes=30');
      expect(line).toContain('servers=127.0.0.1:1000,127.0.0.1:1100');
    } finally {
      await logged.close();
    }
  });
});

describe('HEAD', () => {
  it('has the headers of GET and no body, and fetches nothing', async () => {
    for (const headers of [{}, { Range: 'bytes=5-9' }] as Array<Record<string, string>>) {
      const got = await get('/big.bin?download', headers);
      fetched.length = 0;
      const head = await request(port, '/big.bin?download', { method: 'HEAD', headers });
      expect(head.status).toBe(got.status);
      expect(head.body.length).toBe(0);
      for (const name of ['content-type', 'content-length', 'content-range', 'etag', 'last-modified', 'accept-ranges', 'content-disposition', 'x-content-type-options']) {
        expect(head.headers[name], name).toBe(got.headers[name]);
      }
      expect(fetched).toEqual([]);
    }
  });
});

describe('validators', () => {
  it('ETag from the version and Last-Modified from the mtime', async () => {
    const answer = await get('/hello.txt');
    expect(answer.headers.etag).toBe('"v-hello"');
    expect(answer.headers['last-modified']).toBe(new Date(MTIME).toUTCString());
  });

  it.each([
    [304, 'If-None-Match with the ETag', { 'If-None-Match': '"v-hello"' }],
    [304, 'If-None-Match in a list, weak', { 'If-None-Match': '"x", W/"v-hello"' }],
    [304, 'If-None-Match: *', { 'If-None-Match': '*' }],
    [200, 'If-None-Match with another ETag', { 'If-None-Match': '"v-old"' }],
    [304, 'If-Modified-Since the Last-Modified', { 'If-Modified-Since': new Date(MTIME).toUTCString() }],
    [304, 'If-Modified-Since later', { 'If-Modified-Since': new Date(MTIME + 60_000).toUTCString() }],
    [200, 'If-Modified-Since earlier', { 'If-Modified-Since': new Date(MTIME - 60_000).toUTCString() }],
    [200, 'If-None-Match wins over If-Modified-Since', { 'If-None-Match': '"v-old"', 'If-Modified-Since': new Date(MTIME).toUTCString() }],
    [200, 'If-Match with the ETag', { 'If-Match': '"v-hello"' }],
    [200, 'If-Match in a list', { 'If-Match': '"v-old", "v-hello"' }],
    [200, 'If-Match: *', { 'If-Match': '*' }],
    [412, 'If-Match with another ETag', { 'If-Match': '"v-old"' }],
    [412, 'If-Match with the weak ETag (strong comparison)', { 'If-Match': 'W/"v-hello"' }],
    [200, 'If-Unmodified-Since the Last-Modified', { 'If-Unmodified-Since': new Date(MTIME).toUTCString() }],
    [200, 'If-Unmodified-Since later', { 'If-Unmodified-Since': new Date(MTIME + 60_000).toUTCString() }],
    [412, 'If-Unmodified-Since earlier', { 'If-Unmodified-Since': new Date(MTIME - 60_000).toUTCString() }],
    [200, 'If-Unmodified-Since not a date: ignored', { 'If-Unmodified-Since': 'soon' }],
    [200, 'If-Match matching beats an earlier If-Unmodified-Since', { 'If-Match': '"v-hello"', 'If-Unmodified-Since': new Date(MTIME - 60_000).toUTCString() }],
    [412, 'If-Match failing beats a later If-Unmodified-Since', { 'If-Match': '"v-old"', 'If-Unmodified-Since': new Date(MTIME + 60_000).toUTCString() }],
    [412, 'If-Match failing beats a matching If-None-Match (412 before 304)', { 'If-Match': '"v-old"', 'If-None-Match': '"v-hello"' }],
    [412, 'If-Unmodified-Since earlier beats If-Modified-Since (412 before 304)', { 'If-Unmodified-Since': new Date(MTIME - 60_000).toUTCString(), 'If-Modified-Since': new Date(MTIME).toUTCString() }],
    [304, 'If-Match matching, then If-None-Match matching', { 'If-Match': '"v-hello"', 'If-None-Match': '"v-hello"' }],
    [412, 'If-Match failing beats Range', { 'If-Match': '"v-old"', Range: 'bytes=0-1' }],
    [206, 'If-Match matching, then Range', { 'If-Match': '"v-hello"', Range: 'bytes=0-1' }],
  ])('%d for %s', async (status, _name, headers) => {
    const answer = await get('/hello.txt', headers);
    expect(answer.status).toBe(status);
    if (status === 304) {
      expect(answer.body.length).toBe(0);
      expect(answer.headers.etag).toBe('"v-hello"');
      expect(fetched).toEqual([]);
    }
    if (status === 412) {
      expect(answer.headers.etag).toBe('"v-hello"');
      expect(answer.headers['last-modified']).toBe(new Date(MTIME).toUTCString());
      expect(answer.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(answer.text).toBe('412 precondition failed\n');
      expect(fetched).toEqual([]);
    }
  });

  it('412 for HEAD too, and in JSON when asked', async () => {
    const head = await request(port, '/hello.txt', { method: 'HEAD', headers: { 'If-Match': '"v-old"' } });
    expect([head.status, head.body.length, head.headers.etag]).toEqual([412, 0, '"v-hello"']);
    const json = await get('/hello.txt?download', { 'If-Match': '"v-old"', Accept: 'application/json' });
    expect(JSON.parse(json.text)).toEqual({ status: 412, message: 'precondition failed' });
    expect(json.headers['content-disposition']).toBeUndefined();
  });
});

describe('errors', () => {
  it.each(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND'])('%s → 405 with Allow: GET, HEAD', async (method) => {
    const answer = await request(port, '/hello.txt', { method });
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe('GET, HEAD');
    expect(answer.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(answer.text).toBe(`405 ${method} is not allowed: use GET or HEAD\n`);
  });

  it.each([
    [400, 'malformed percent-encoding', '/%E0%A4%A'],
    [400, 'NUL', '/a%00b'],
    [400, 'a backslash', '/a%5cb'],
    [400, 'encoded ..', '/%2e%2e/%2e%2e/etc/passwd'],
    [404, 'a missing file', '/missing.txt'],
    [404, 'a dotfile', '/.env'],
    [414, 'a URL over the limit', `/${'a'.repeat(2_100)}`],
  ])('%d for %s, with a short plain-text body', async (status, _name, target) => {
    const answer = await get(target);
    expect(answer.status).toBe(status);
    expect(answer.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(answer.text).toMatch(new RegExp(`^${status} [^\\n]{1,80}\\n$`));
  });

  it('answers JSON when asked', async () => {
    const answer = await get('/missing.txt', { Accept: 'application/json' });
    expect(answer.status).toBe(404);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(answer.text)).toEqual({ status: 404, code: 'GW_ERR_NOT_FOUND', message: 'no registered file server has this file' });
    expect(JSON.parse((await get('/a%00b?format=json')).text)).toMatchObject({ status: 400, code: 'GW_ERR_BAD_PATH' });
    const browser = await get('/missing.txt', { Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' });
    expect(browser.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it('503 without servers', async () => {
    noServers = true;
    expect((await get('/hello.txt')).status).toBe(503);
    expect((await get('/')).status).toBe(503);
  });

  it('an unexpected failure is a 500 without a stack trace, and without the headers of the file it was for', async () => {
    files.set('broken.bin', { data: Buffer.alloc(10), version: 'v', failure: new TypeError('secret internals at /src/x.ts:1') });
    const answer = await get('/broken.bin?download');
    expect(answer.status).toBe(500);
    expect(answer.text).toBe('500 internal error\n');
    expect(answer.headers['content-disposition']).toBeUndefined();
    expect(answer.headers.etag).toBeUndefined();
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
  });

  it('a file that keeps changing under the transfer is 503, asked twice', async () => {
    files.set('moving.bin', { data: Buffer.alloc(10), version: 'v', failure: new GatewayError('GW_ERR_FILE_CHANGED') });
    const answer = await get('/moving.bin');
    expect(answer.status).toBe(503);
    expect(answer.text).toBe('503 the file changed on its servers during the transfer\n');
    expect(fetched.length).toBe(2);
  });
});

describe('directories', () => {
  const entries: ListEntry[] = [
    { name: 'sub dir', kind: 'directory', size: 0, mtimeMs: MTIME },
    { name: '<b>#%.txt', kind: 'file', size: 2048, mtimeMs: MTIME },
  ];

  it('/dir redirects to /dir/ (query kept), built from the checked path', async () => {
    directories.add('photos 2026');
    const answer = await get('/photos%202026?format=json');
    expect(answer.status).toBe(301);
    expect(answer.headers.location).toBe('/photos%202026/?format=json');
    expect(answer.text).toBe('301 moved to /photos%202026/?format=json\n');
    directories.add('evil.com');
    expect((await get('//evil.com')).headers.location).toBe('/evil.com/');
  });

  it('renders HTML by default: escaped names, encoded links, sizes, Vary and a weak ETag', async () => {
    listings.set('d', { kind: 'directory', entries, incomplete: false });
    const answer = await get('/d/');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(answer.headers.vary).toBe('Accept');
    expect(answer.headers.etag).toMatch(/^W\/"/);
    expect(answer.text).toContain('<a href="./sub%20dir/">sub dir/</a>');
    expect(answer.text).toContain('<a href="./%3Cb%3E%23%25.txt">&lt;b&gt;#%.txt</a>');
    expect(answer.text).toContain('title="2048 bytes">2.0 KiB</td>');
    expect(answer.text).not.toContain('Some file servers did not answer');
    const again = await get('/d/', { 'If-None-Match': answer.headers.etag! });
    expect(again.status).toBe(304);
  });

  it('renders JSON with Accept: application/json or ?format=json', async () => {
    listings.set('', { kind: 'directory', entries, incomplete: true });
    for (const answer of [await get('/', { Accept: 'application/json' }), await get('/?format=json')]) {
      expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(JSON.parse(answer.text)).toEqual({ path: '/', incomplete: true, entries } satisfies ListingJson);
    }
    const html = await get('/?format=html', { Accept: 'application/json' });
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.text).toContain('Some file servers did not answer');
    expect((await get('/')).headers.etag).not.toBe((await get('/?format=json')).headers.etag);
  });

  it('HEAD of a listing has its length and no body', async () => {
    listings.set('d', { kind: 'directory', entries, incomplete: false });
    const got = await get('/d/');
    const head = await request(port, '/d/', { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, got.headers['content-length'], 0]);
  });

  it('a directory no server has is 404', async () => {
    const answer = await get('/nowhere/');
    expect(answer.status).toBe(404);
    expect(answer.text).toBe('404 no registered file server has this directory\n');
  });

  it('without a lister, directories are 404', async () => {
    const bare = await listen(createHttpApp({ ...deps, logger: silentLogger }));
    try {
      expect((await request(bare.port, '/')).status).toBe(404);
    } finally {
      await bare.close();
    }
  });
});
