export { createFileServer, type FileServer, type FileServerInit, type FileServerStats } from './file-server.js';
export { FileStore, StaleVersionError, UnreadableError, DigestPendingError, type FileStoreInit, type FileMeta } from './store/file-store.js';
export { versionOfBytes } from './store/manifests.js';
export type { GatewayAddress } from './link/gateway-link.js';
export { main, parseHostPort } from './cli.js';
export { createFileServerRegistry, startMetricsListener, type MetricsListener, type MetricsListenerInit } from './metrics.js';
