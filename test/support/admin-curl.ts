/** curl against the admin listener: status, headers and body of one request. */
import { execFile } from 'node:child_process';
import { parseHeaders } from './curl-headers.js';

export interface CurlAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
  /** The body as JSON (undefined when it is none). */
  json: unknown;
}

export function adminCurl(url: string, options: { token?: string; method?: string } = {}): Promise<CurlAnswer> {
  const args = ['--silent', '--show-error', '--noproxy', '*', '--include', '--max-time', '20'];
  if (options.method) args.push('--request', options.method);
  if (options.token !== undefined) args.push('--header', `Authorization: Bearer ${options.token}`);
  return new Promise((resolve, reject) => {
    execFile('curl', [...args, url], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      if (error) return reject(error);
      const split = stdout.indexOf('\r\n\r\n');
      const { status, headers } = parseHeaders(stdout.slice(0, split));
      const body = stdout.slice(split + 4);
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status, headers, body, json });
    });
  });
}
