export { createFileServer, type FileServer, type FileServerInit, type FileServerStats } from './file-server.js';
export { FileStore, StaleVersionError, UnreadableError, DigestPendingError, type FileStoreInit, type FileMeta } from './file-store.js';
export { versionOfBytes } from './manifest.js';
export type { GatewayAddress } from './gateway-link.js';
export { main, parseHostPort } from './cli.js';
