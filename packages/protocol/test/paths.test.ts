import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PATH_BYTES, MAX_PATH_SEGMENT_BYTES, ProtocolError, normalizePath, type ProtocolErrorCode } from '@httpgw/protocol';

function refusal(raw: string, allowDotfiles = false): ProtocolErrorCode | 'accepted' {
  try {
    normalizePath(raw, { allowDotfiles });
    return 'accepted';
  } catch (error) {
    if (error instanceof ProtocolError) return error.code;
    throw error;
  }
}

describe('normalizePath', () => {
  it.each([
    ['', ''],
    ['/', ''],
    ['a', 'a'],
    ['/a/b/c.txt', 'a/b/c.txt'],
    ['a//b///c', 'a/b/c'],
    ['./a/./b/.', 'a/b'],
    ['dir/', 'dir'],
    // Absolute paths are taken relative to the served root, never to the file system's.
    ['/etc/passwd', 'etc/passwd'],
    ['//etc/passwd', 'etc/passwd'],
    // Names that merely look odd are names.
    ['%2e%2e/x', '%2e%2e/x'],
    ['a..b/c..', 'a..b/c..'],
    ['C:/x', 'C:/x'],
    ['ünïcødé 文件 #1.txt', 'ünïcødé 文件 #1.txt'],
  ])('turns %j into %j', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });

  it.each([
    ['..', 'PROTO_ERR_BAD_PATH'],
    ['../etc/passwd', 'PROTO_ERR_BAD_PATH'],
    ['a/../../b', 'PROTO_ERR_BAD_PATH'],
    ['a/..', 'PROTO_ERR_BAD_PATH'],
    ['/../x', 'PROTO_ERR_BAD_PATH'],
    ['a\\..\\..\\b', 'PROTO_ERR_BAD_PATH'],
    ['a\\b', 'PROTO_ERR_BAD_PATH'],
    ['\\\\server\\share', 'PROTO_ERR_BAD_PATH'],
    ['a\u0000b', 'PROTO_ERR_BAD_PATH'],
    ['a.txt\u0000.png', 'PROTO_ERR_BAD_PATH'],
    ['a\nb', 'PROTO_ERR_BAD_PATH'],
    ['a\rb', 'PROTO_ERR_BAD_PATH'],
    ['a\tb', 'PROTO_ERR_BAD_PATH'],
    ['\u001b[31mred', 'PROTO_ERR_BAD_PATH'],
    ['a\u007fb', 'PROTO_ERR_BAD_PATH'],
    ['a\u0085b', 'PROTO_ERR_BAD_PATH'],
    ['a\u009bb', 'PROTO_ERR_BAD_PATH'],
    ['x'.repeat(MAX_PATH_SEGMENT_BYTES + 1), 'PROTO_ERR_BAD_PATH'],
    ['é'.repeat(128), 'PROTO_ERR_BAD_PATH'], // 256 bytes in UTF-8, 128 characters
    [`${'a/'.repeat(MAX_PATH_BYTES / 2)}b`, 'PROTO_ERR_BAD_PATH'],
    ['.env', 'PROTO_ERR_HIDDEN_PATH'],
    ['.git/config', 'PROTO_ERR_HIDDEN_PATH'],
    ['a/.ssh/id_rsa', 'PROTO_ERR_HIDDEN_PATH'],
    ['...', 'PROTO_ERR_HIDDEN_PATH'],
  ])('refuses %j with %s', (raw, code) => {
    expect(refusal(raw)).toBe(code);
  });

  it('accepts names up to the limits', () => {
    expect(refusal('x'.repeat(MAX_PATH_SEGMENT_BYTES))).toBe('accepted');
    expect(refusal(`${'abcdefg/'.repeat(MAX_PATH_BYTES / 8 - 1)}abcdefg`)).toBe('accepted');
  });

  it('serves dotfiles only when allowed, and never "..", even then', () => {
    expect(normalizePath('.well-known/x', { allowDotfiles: true })).toBe('.well-known/x');
    expect(normalizePath('...', { allowDotfiles: true })).toBe('...');
    expect(refusal('../x', true)).toBe('PROTO_ERR_BAD_PATH');
    expect(refusal('a/../..', true)).toBe('PROTO_ERR_BAD_PATH');
  });

  it('never returns a path that leaves the root, starts with "/", holds "\\" or a control character, whatever it is given', () => {
    const pieces = fc.constantFrom('..', '.', '', '/', '\\', 'a', '\u0000', '\n', '%2e', '.hidden', 'é', '..a', 'a..', '\u2215', '\uff0e\uff0e');
    const rawPath = fc.oneof(fc.array(pieces, { maxLength: 12 }).map((parts) => parts.join('')), fc.array(pieces, { maxLength: 8 }).map((parts) => parts.join('/')), fc.string({ unit: 'binary', maxLength: 64 }));
    fc.assert(
      fc.property(rawPath, fc.boolean(), (raw, allowDotfiles) => {
        let path: string;
        try {
          path = normalizePath(raw, { allowDotfiles });
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
          return;
        }
        expect(path.startsWith('/')).toBe(false);
        expect(path).not.toMatch(/\\|[\u0000-\u001f\u007f-\u009f]/);
        const segments = path === '' ? [] : path.split('/');
        for (const segment of segments) {
          expect(['', '.', '..']).not.toContain(segment);
          if (!allowDotfiles) expect(segment.startsWith('.')).toBe(false);
        }
        // Canonical: normalizing again changes nothing.
        expect(normalizePath(path, { allowDotfiles })).toBe(path);
      }),
      { numRuns: 5_000 },
    );
  });
});
