import { MAX_SAFE_UINT } from './constants.js';
import { ProtocolError } from './errors.js';

/** Field readers for untrusted decoded maps: each returns a typed value or throws PROTO_ERR_BAD_FIELD. */
export type Fields = Record<string, unknown>;

export function asFields(value: unknown): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ProtocolError('PROTO_ERR_MALFORMED', 'packet is not a map');
  }
  return value as Fields;
}

function field(fields: Fields, name: string): unknown {
  return Object.hasOwn(fields, name) ? fields[name] : undefined;
}

function bad(name: string, why: string): never {
  throw new ProtocolError('PROTO_ERR_BAD_FIELD', `field "${name}" ${why}`);
}

export function uint(fields: Fields, name: string, max = MAX_SAFE_UINT): number {
  const value = field(fields, name);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) bad(name, `must be an integer in 0..${max}`);
  return value;
}

/** A finite number (times may carry fractions of a millisecond). */
export function finite(fields: Fields, name: string): number {
  const value = field(fields, name);
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) bad(name, 'must be a finite non-negative number');
  return value;
}

export function int(fields: Fields, name: string, min: number, max: number): number {
  const value = field(fields, name);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) bad(name, `must be an integer in ${min}..${max}`);
  return value;
}

export function str(fields: Fields, name: string, maxBytes: number): string {
  const value = field(fields, name);
  if (typeof value !== 'string') bad(name, 'must be a string');
  if (value.length > maxBytes || Buffer.byteLength(value) > maxBytes) bad(name, `must be at most ${maxBytes} bytes`);
  return value;
}

export function bool(fields: Fields, name: string): boolean {
  const value = field(fields, name);
  if (typeof value !== 'boolean') bad(name, 'must be a boolean');
  return value;
}

export function bytes(fields: Fields, name: string, minLength: number, maxLength: number): Uint8Array {
  const value = field(fields, name);
  if (!(value instanceof Uint8Array)) bad(name, 'must be binary');
  if (value.length < minLength || value.length > maxLength) bad(name, `must be ${minLength}..${maxLength} bytes`);
  return value;
}

export function oneOf<T extends string>(fields: Fields, name: string, allowed: readonly T[]): T {
  const value = field(fields, name);
  const match = allowed.find((candidate) => candidate === value);
  if (match === undefined) bad(name, `must be one of ${allowed.join(', ')}`);
  return match;
}

export function list(fields: Fields, name: string, maxLength: number): unknown[] {
  const value = field(fields, name);
  if (!Array.isArray(value)) bad(name, 'must be an array');
  if (value.length > maxLength) bad(name, `must have at most ${maxLength} items`);
  return value;
}
