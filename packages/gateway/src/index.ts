export { createGateway, DEFAULT_CHUNK_SIZE, type Gateway, type GatewayInit, type GatewayStats } from './gateway.js';
export { GatewayError, type GatewayErrorCode } from './errors.js';
export { ServerPool, PoolServer, type ServerPoolInit } from './server-pool.js';
export { RequestTracker, type RequestHandlers } from './request-tracker.js';
export { ChunkFetcher, type ChunkFetcherInit } from './chunk-fetcher.js';
export { RttEstimator } from './rtt-estimator.js';
export { CongestionWindow } from './congestion-window.js';
export { createHttpApp, requestPath } from './http-app.js';
export { main } from './cli.js';
