import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { readFile } from 'node:fs/promises';

/**
 * The admin API's bearer token check. Both sides are hashed first, so timingSafeEqual compares equal
 * lengths and the time taken says nothing about the token, not even its length.
 */
export class AdminToken {
  private digest: Buffer | undefined;

  constructor(token?: string) {
    this.set(token);
  }

  /** Replaces the token (a reload); undefined leaves the API open. */
  set(token: string | undefined): void {
    this.digest = token === undefined ? undefined : sha256(token);
  }

  get required(): boolean {
    return this.digest !== undefined;
  }

  /** Whether an `Authorization` header value carries the token (always true while none is set). */
  accepts(authorization: string | undefined): boolean {
    if (!this.digest) return true;
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization ?? '');
    // Hash even a missing token: a request without one takes as long as one with a wrong one.
    return timingSafeEqual(sha256(match?.[1] ?? ''), this.digest) && match !== null;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Reads a token file: its first line, trimmed; an empty one is an error (it would open the API). */
export async function readAdminToken(path: string): Promise<string> {
  const token = (await readFile(path, 'utf8')).split(/\r?\n/, 1)[0]!.trim();
  if (token === '' || /\s/.test(token)) throw new Error(`${path}: the admin token file must hold one token (no spaces) on its first line`);
  return token;
}

/** `ADDRESS:PORT` (IPv6 in brackets) of the admin listener; a missing port is an error. */
export function parseAdminAddress(text: string): { address: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !(port >= 0 && port <= 65_535)) throw new Error(`--admin must be ADDRESS:PORT (e.g. 127.0.0.1:9090; port 0 picks a free one), not "${text}"`);
  return { address: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** Whether only this machine can reach `address`. */
export function isLoopback(address: string): boolean {
  if (address === 'localhost' || address === '::1') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return /^::ffff:127\./i.test(address);
}
