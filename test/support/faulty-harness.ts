/** Helpers for fault tests: a download that reports progress and failure, curl, and a log to read. */
import { execFile } from 'node:child_process';
import { createLogger, type Logger } from '@httpgw/runtime';

export interface Download {
  status: number;
  body: Buffer;
  /** Set when the body broke off (connection cut); `body` then holds what arrived. */
  error: Error | undefined;
  ms: number;
}

/**
 * GETs `url` and reads the body to its end, calling `onProgress` with the bytes received so far, so
 * a test can strike mid-transfer.
 */
export async function download(url: string, onProgress?: (bytes: number) => void | Promise<void>): Promise<Download> {
  const started = performance.now();
  const response = await fetch(url);
  const parts: Buffer[] = [];
  let received = 0;
  let error: Error | undefined;
  const reader = response.body?.getReader();
  try {
    for (;;) {
      const { done, value } = (await reader?.read()) ?? { done: true, value: undefined };
      if (done) break;
      parts.push(Buffer.from(value));
      received += value.length;
      await onProgress?.(received);
    }
  } catch (caught) {
    error = caught instanceof Error ? caught : new Error(String(caught));
  }
  return { status: response.status, body: Buffer.concat(parts), error, ms: performance.now() - started };
}

/** Runs curl on `url`; resolves with its exit code (18: transfer closed with bytes outstanding). */
export function curl(url: string, args: string[] = []): Promise<{ code: number; stderr: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', '--output', '/dev/null', '--noproxy', '*', ...args, url], (error, _stdout, stderr) => {
      const code = error && typeof error.code === 'number' ? error.code : 0;
      resolve({ code, stderr, ms: performance.now() - started });
    });
  });
}

/** A logger whose lines a test can search. */
export function captureLogger(name = 'httpgw'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ name, level: 'info', write: (line) => lines.push(line) }), lines };
}

/** The shared wait (test/support/wait.ts), kept here for the tests that import it from this module. */
export { until } from './wait.js';
