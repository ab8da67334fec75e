export { createLogger, createStderrLogger, resolveLogFormat, prettyLine, silentLogger, LOG_LEVELS, LOG_FORMATS, type Logger, type LoggerInit, type LogLevel, type LogFields, type LogFormat } from './logger.js';
export { RateLimiter, DEFAULT_MAX_DATAGRAM_RATE, type RateLimiterInit } from './rate-limiter.js';
export { bindUdpSocket, type UdpSocketInit } from './udp-socket.js';
export { DatagramEndpoint, type DatagramEndpointInit, type DatagramCounters } from './datagram-endpoint.js';
export { EXIT_USAGE, usageError, parseCommandLine, readSecretKey, serveUntilSignal, runIfMain, batchedWriter } from './cli-runner.js';
export { Listeners } from './listeners.js';
export { option, integerIn, positiveInteger, loadConfig, configFileOf, configToYaml, diffConfig, describeProblem, envName, ConfigError, type OptionSpec, type OptionTable, type ConfigOf, type CommandConfig, type LoadedConfig, type ValueSource, type ConfigChange } from './config.js';
export { parseConfig, reloadConfig } from './config-cli.js';
