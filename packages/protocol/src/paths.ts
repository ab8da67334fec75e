import { MAX_PATH_BYTES, MAX_PATH_SEGMENT_BYTES } from './constants.js';
import { ProtocolError } from './errors.js';

export interface PathRules {
  /** Allow segments that start with '.', such as `.env` or `.git`; hidden by default. */
  allowDotfiles?: boolean;
}

// C0 controls, DEL and C1 controls: never part of a name we serve.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Turns a decoded request path into the canonical relative form used on the wire and on disk:
 * segments joined by '/', no leading slash, no empty, '.' or '..' segments. Anything that could name a
 * file outside the served root (`..`, absolute paths, backslashes, NUL and other control characters)
 * is refused rather than repaired. The empty string is the root directory.
 */
export function normalizePath(raw: string, rules: PathRules = {}): string {
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) throw badPath('path is too long');
  if (CONTROL_CHARACTERS.test(raw)) throw badPath('path contains a control character');
  if (raw.includes('\\')) throw badPath('path contains a backslash');
  const segments = raw.split('/').filter((segment) => segment !== '' && segment !== '.');
  for (const segment of segments) {
    if (segment === '..') throw badPath('path contains ".."');
    if (!rules.allowDotfiles && segment.startsWith('.')) throw new ProtocolError('PROTO_ERR_HIDDEN_PATH', 'hidden files are not served');
    if (Buffer.byteLength(segment) > MAX_PATH_SEGMENT_BYTES) throw badPath('a path segment is too long');
  }
  return segments.join('/');
}

function badPath(message: string): ProtocolError {
  return new ProtocolError('PROTO_ERR_BAD_PATH', message);
}
