import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '@httpgw/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError, type GatewayErrorCode } from '../src/errors.js';
import type { FileRouteDeps } from '../src/http/file-route.js';
import { STATUS_OF, createHttpApp } from '../src/http/http-app.js';

// Every gateway error code, the status it is answered with and the message a client reads. The table
// is typed by the code union: a code added to GatewayErrorCode without a row here does not compile
// (`tsc -p test`), and one added to STATUS_OF without a row here fails the first test below.
const TABLE: Record<GatewayErrorCode, { status: number; message: string }> = {
  GW_ERR_BAD_PATH: { status: 400, message: 'malformed path' },
  GW_ERR_UNREADABLE: { status: 403, message: 'the file servers holding this file cannot read it' },
  GW_ERR_NOT_FOUND: { status: 404, message: 'no registered file server has this file' },
  GW_ERR_SOURCES_GONE: { status: 502, message: 'every server holding this version of the file is gone' },
  GW_ERR_NO_SERVERS: { status: 503, message: 'no file server is registered' },
  GW_ERR_FILE_CHANGED: { status: 503, message: 'the file changed on its servers during the transfer' },
  GW_ERR_STALLED: { status: 504, message: 'the transfer made no progress' },
};
const ROWS = Object.entries(TABLE) as Array<[GatewayErrorCode, { status: number; message: string }]>;

/** What the stand-in lookup throws for the next request. */
let failure: GatewayError = new GatewayError('GW_ERR_NOT_FOUND');

// The app over a lookup that fails with `failure`: the error reaches the app's error handler as it
// would from the real lookup or a transfer that fails before the status line.
const deps: FileRouteDeps = {
  lookup: {
    async lookup() {
      throw failure;
    },
    forget() {},
  },
  transfers: {
    fetch() {
      throw new Error('no transfer is expected: the lookup fails first');
    },
  },
};

let port: number;
let close: () => Promise<void>;

beforeAll(async () => {
  const server = createServer(createHttpApp({ ...deps, logger: silentLogger }).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  close = () => new Promise((resolve) => server.close(() => resolve()));
});
afterAll(() => close());

function get(target: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path: target, headers, agent: false }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, type: response.headers['content-type'], text: Buffer.concat(parts).toString() }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('gateway error codes', () => {
  it('every code has a status, and the table covers every code with one', () => {
    expect(Object.keys(STATUS_OF).sort()).toEqual(Object.keys(TABLE).sort());
    for (const [code, status] of Object.entries(STATUS_OF)) {
      expect(Number.isInteger(status), code).toBe(true);
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
    }
  });

  it.each(ROWS)('%s: its status, as plain text `STATUS MESSAGE\\n`', async (code, { status, message }) => {
    failure = new GatewayError(code);
    expect(failure.message).toBe(message);
    expect(STATUS_OF[code]).toBe(status);
    const answer = await get('/some/file.bin');
    expect(answer.status).toBe(status);
    expect(answer.type).toBe('text/plain; charset=utf-8');
    expect(answer.text).toBe(`${status} ${message}\n`);
  });

  it.each(ROWS)('%s: its status, as JSON with the code when asked', async (code, { status, message }) => {
    failure = new GatewayError(code);
    for (const answer of [await get('/some/file.bin', { Accept: 'application/json' }), await get('/some/file.bin?format=json')]) {
      expect(answer.status).toBe(status);
      expect(answer.type).toBe('application/json; charset=utf-8');
      expect(JSON.parse(answer.text)).toEqual({ status, code, message });
    }
  });

  it('an error with a message of its own keeps its code’s status and says its own message', async () => {
    failure = new GatewayError('GW_ERR_SOURCES_GONE', 'both servers left');
    expect(await get('/x.bin')).toEqual({ status: 502, type: 'text/plain; charset=utf-8', text: '502 both servers left\n' });
    const json = await get('/x.bin', { Accept: 'application/json' });
    expect(JSON.parse(json.text)).toEqual({ status: 502, code: 'GW_ERR_SOURCES_GONE', message: 'both servers left' });
  });
});
