import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * Addresses of either IP family, handled in one place: what the sockets report (IPv4-mapped IPv6
 * addresses on dual-stack sockets), what operators type (`[::1]:8080`), and what logs print.
 */

const MAPPED_PREFIX = '::ffff:';

/**
 * The address a peer is known by: an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, what a
 * dual-stack `::` socket reports for an IPv4 peer) is the IPv4 address it maps. Every per-peer key
 * (registration cookies, rate limits, per-client HTTP limits, the server pool) is built from this,
 * so one client is one client whichever socket it reached.
 */
export function normalizeAddress(address: string): string {
  if (address.length > MAPPED_PREFIX.length && address.slice(0, MAPPED_PREFIX.length).toLowerCase() === MAPPED_PREFIX) {
    const v4 = address.slice(MAPPED_PREFIX.length);
    if (isIP(v4) === 4) return v4;
  }
  return address;
}

/** `host:port`, with an IPv6 address in brackets (`[::1]:8080`) so that the port cannot be misread. */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** An address as a URL host: IPv6 in brackets. */
export function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT`, `IPV4:PORT` or `[IPV6]:PORT`. An IPv6 address without brackets is refused
 * rather than guessed at: `::1:8080` is itself a valid IPv6 address.
 */
export function parseHostPort(text: string): HostPort {
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text);
  const plain = bracketed ? undefined : /^([^:[\]]+):(\d{1,5})$/.exec(text);
  const match = bracketed ?? plain;
  const port = match ? Number(match[2]) : NaN;
  if (!match || !(port >= 1 && port <= 65_535)) {
    const hint = !bracketed && isIP(text.replace(/:\d{1,5}$/, '')) === 6 ? ' (write an IPv6 address in brackets: [::1]:8080)' : '';
    throw new Error(`"${text}" is not HOST:PORT${hint}`);
  }
  const host = match[1]!;
  if (bracketed && isIP(host) !== 6) throw new Error(`"${text}": only an IPv6 address goes in brackets`);
  return { host, port };
}

/** The UDP socket type for a local address: udp6 for an IPv6 address (`::` is dual-stack), else udp4. */
export function socketTypeFor(address: string): 'udp4' | 'udp6' {
  return isIP(address) === 6 ? 'udp6' : 'udp4';
}

/** Resolves a host name or address literal to one address of either family (the resolver's first answer). */
export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const address = normalizeAddress(isIP(host) !== 0 ? host : (await lookup(host)).address);
  return { address, family: isIP(address) === 6 ? 6 : 4 };
}
