import { execFile } from 'node:child_process';

/** What curl got: the status (0 when it got none), the body, and curl's own exit code. */
export interface CurlResult {
  status: number;
  body: Buffer;
  exitCode: number;
}

/**
 * A GET with the real curl: the body on stdout, the status from `--write-out` on stderr. `-g` lets
 * an IPv6 URL (http://[::1]:PORT/) through unglobbed.
 */
export function curlGet(url: string, args: string[] = [], timeoutMs = 20_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['--silent', '--globoff', '--noproxy', '*', '--max-time', String(Math.ceil(timeoutMs / 1000)), '--write-out', '%{stderr}%{http_code}', ...args, url],
      { encoding: 'buffer', maxBuffer: 256 << 20, timeout: timeoutMs + 5_000 },
      (error, stdout, stderr) => {
        const exitCode = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ status: Number(stderr.toString().trim().slice(-3)) || 0, body: stdout, exitCode });
      },
    );
  });
}
