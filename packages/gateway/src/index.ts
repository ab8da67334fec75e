export { createGateway, DEFAULT_CHUNK_SIZE, type Gateway, type GatewayInit, type GatewayStats } from './gateway.js';
export { GatewayError, type GatewayErrorCode } from './errors.js';
export { ServerPool, PoolServer, type ServerPoolInit } from './pool/server-pool.js';
export { RequestTracker, type RequestHandlers } from './udp/request-tracker.js';
export { ChunkFetcher, type ChunkFetcherInit } from './transfer/chunk-fetcher.js';
export { RttEstimator } from './udp/rtt-estimator.js';
export { CongestionWindow } from './udp/congestion-window.js';
export { createHttpApp, requestPath } from './http/http-app.js';
export { main } from './cli.js';
