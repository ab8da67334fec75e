/** The file changed since the gateway learned its version, or while it was read: refuse rather than mix contents. */
export class StaleVersionError extends Error {
  override readonly name = 'StaleVersionError';
}
/** The file exists but this process may not read it (permissions): no retry will help. */
export class UnreadableError extends Error {
  override readonly name = 'UnreadableError';
}
/** The file's digest is still being computed (or the file keeps changing): ask again shortly. */
export class DigestPendingError extends Error {
  override readonly name = 'DigestPendingError';
}
/** The path is malformed, hidden, or resolves outside the root. */
export class ForbiddenPathError extends Error {
  override readonly name = 'ForbiddenPathError';
}
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && 'code' in error && error.code === code;
}
