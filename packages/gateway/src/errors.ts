/** Stable codes for the ways a gateway request can fail. */
export type GatewayErrorCode =
  | 'GW_ERR_NO_SERVERS'
  | 'GW_ERR_NOT_FOUND'
  | 'GW_ERR_BAD_PATH'
  | 'GW_ERR_STALLED'
  | 'GW_ERR_SOURCES_GONE'
  | 'GW_ERR_FILE_CHANGED'
  | 'GW_ERR_UNREADABLE';

const DEFAULT_MESSAGES: Record<GatewayErrorCode, string> = {
  GW_ERR_NO_SERVERS: 'no file server is registered',
  GW_ERR_NOT_FOUND: 'no registered file server has this file',
  GW_ERR_BAD_PATH: 'malformed path',
  GW_ERR_STALLED: 'the transfer made no progress',
  GW_ERR_SOURCES_GONE: 'every server holding this version of the file is gone',
  GW_ERR_FILE_CHANGED: 'the file changed on its servers during the transfer',
  GW_ERR_UNREADABLE: 'the file servers holding this file cannot read it',
};

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  constructor(
    readonly code: GatewayErrorCode,
    message: string = DEFAULT_MESSAGES[code],
  ) {
    super(message);
  }
}
