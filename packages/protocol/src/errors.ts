/** Stable codes for every way a datagram can be refused. */
export type ProtocolErrorCode =
  | 'PROTO_ERR_TOO_SHORT'
  | 'PROTO_ERR_TOO_LONG'
  | 'PROTO_ERR_BAD_MAGIC'
  | 'PROTO_ERR_BAD_VERSION'
  | 'PROTO_ERR_BAD_FLAGS'
  | 'PROTO_ERR_MALFORMED'
  | 'PROTO_ERR_UNKNOWN_TYPE'
  | 'PROTO_ERR_BAD_FIELD'
  | 'PROTO_ERR_AUTH_REQUIRED'
  | 'PROTO_ERR_AUTH_UNEXPECTED'
  | 'PROTO_ERR_BAD_KEY'
  | 'PROTO_ERR_BAD_MAC'
  | 'PROTO_ERR_CLOCK_SKEW'
  | 'PROTO_ERR_REPLAY'
  | 'PROTO_ERR_BAD_PATH'
  | 'PROTO_ERR_HIDDEN_PATH';

/** The one error `decode`, `openFrame` and the path checks throw: untrusted input never escapes as anything else. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}
