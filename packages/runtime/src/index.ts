export { createLogger, silentLogger, LOG_LEVELS, type Logger, type LoggerInit, type LogLevel, type LogFields } from './logger.js';
export { RateLimiter, DEFAULT_MAX_DATAGRAM_RATE, type RateLimiterInit } from './rate-limiter.js';
export { bindUdpSocket, type UdpSocketInit } from './udp-socket.js';
export { DatagramEndpoint, type DatagramEndpointInit, type DatagramCounters } from './datagram-endpoint.js';
export { EXIT_USAGE, usageError, parseCommandLine, readSecretKey, serveUntilSignal, runIfMain, batchedWriter } from './cli-runner.js';
export { Listeners } from './listeners.js';
export { formatByteSize, parseByteSize } from './byte-size.js';
export { normalizeAddress, formatHostPort, urlHost, parseHostPort, socketTypeFor, resolveHost, type HostPort } from './net-address.js';
