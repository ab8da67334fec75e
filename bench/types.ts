/** Shared types of the benchmark harness. */
import type { BenchFiles } from './files.js';

/** Something curl can download the bench files from. */
export interface DownloadTarget {
  /** Column name in the report, e.g. "httpgw", "nginx-proxy", "tftp-65464". */
  readonly name: string;
  url(file: string): string;
  /** Extra curl arguments (e.g. --tftp-blksize). */
  readonly curlArgs: readonly string[];
  /** Server-side processes whose CPU and memory are the cost of serving. */
  pids(): number[];
  /** Starts watching the servers' logs; the returned function gives the warnings since then. */
  watchLog?(): () => string[];
}

export interface HttpgwOptions {
  servers: number;
  chunkSize?: number;
  window?: number;
  /**
   * --cache-size for the gateway: '0' (the default here) measures the transfer path cold, every
   * request fetched from the servers; 'default' leaves the gateway's own default (cache on).
   */
  cacheSize?: string;
  /** Further gateway flags (`--no-access-log`). */
  gatewayArgs?: readonly string[];
  /** `--workers`: gateway processes sharing the HTTP port (each file server registers with all). */
  workers?: number;
}

/** A running gateway with its file servers. */
export interface HttpgwInstance {
  readonly target: DownloadTarget;
  readonly gatewayPid: number;
  readonly serverPids: readonly number[];
  readonly options: HttpgwOptions;
  /** Sends the gateway SIGUSR2 and returns the fields of the stats line it logs (empty if it logs none). */
  stats(): Promise<Record<string, string>>;
  /** False once the gateway or a file server has exited. */
  alive(): boolean;
  stop(): Promise<void>;
}

export interface HttpgwStartHooks {
  /**
   * Given the gateway's UDP port, returns the port the file servers should register with
   * instead (e.g. a fault-injecting relay in front of the gateway).
   */
  serverTarget?(gatewayUdpPort: number): Promise<number>;
  /** The same for one server (0-based): e.g. one server of three behind a delaying relay. Wins over serverTarget. */
  serverTargetOf?(index: number, gatewayUdpPort: number): Promise<number>;
  /** Extra fastfilesrv flags for one server (0-based), e.g. `--max-rate` to build an unequal pool. */
  serverArgs?(index: number): readonly string[];
}

/** Several gateways sharing one set of file servers (each server registered with every gateway). */
export interface HttpgwGroup {
  /** One per gateway, named `httpgw-1`, `httpgw-2`, …; each one's pids() is that gateway alone. */
  readonly gateways: readonly DownloadTarget[];
  readonly serverPids: readonly number[];
  /** Gateway `index`'s stats line (SIGUSR2), as HttpgwInstance.stats. */
  stats(index: number): Promise<Record<string, string>>;
  alive(): boolean;
  stop(): Promise<void>;
}

export interface HttpgwLauncher {
  /** Why httpgw cannot run, or undefined when it can. */
  readonly unavailable: string | undefined;
  /** Whether this build has a chunk cache (--cache-size). */
  readonly hasCache: boolean;
  start(options: HttpgwOptions, hooks?: HttpgwStartHooks): Promise<HttpgwInstance>;
  /** `gateways` gateways and `options.servers` file servers that register with all of them. */
  startGroup(options: HttpgwOptions & { gateways: number }): Promise<HttpgwGroup>;
}

export interface Peers {
  nginxDirect?: DownloadTarget;
  nginxProxy?: DownloadTarget;
  /** nginx with proxy_cache in front of its own three upstreams (the cache scenario's peer). */
  nginxCache?: DownloadTarget;
  tftpLarge?: DownloadTarget;
  tftpSmall?: DownloadTarget;
  /** Peer name -> why it is not running. */
  readonly skipped: Map<string, string>;
}

export type Better = 'higher' | 'lower';

export interface MeasurementInput {
  /** Row label inside the scenario, e.g. "256 MiB" or "4 KiB c=32". */
  case: string;
  /** e.g. "throughput". */
  metric: string;
  /** e.g. "MB/s". */
  unit: string;
  better: Better;
  /** Column: a target name, possibly with a qualifier ("httpgw gateway"). */
  target: string;
  samples: number[];
  /** Anything else worth keeping in the JSON (per-sample details, settings). */
  details?: Record<string, unknown>;
}

/** A recorded row cell; records with the same scenario/case/metric/target are merged. */
export interface Measurement extends Omit<MeasurementInput, 'details'> {
  scenario: string;
  median: number;
  details: Array<Record<string, unknown>>;
}

export interface BenchContext {
  readonly quick: boolean;
  readonly files: BenchFiles;
  readonly peers: Peers;
  readonly httpgw: HttpgwLauncher;
  /** The default gateway (3 file servers, default settings), started on first use. */
  sharedHttpgw(): Promise<HttpgwInstance>;
  /** Stops the shared gateway (scenarios that start their own call this first). */
  stopSharedHttpgw(): Promise<void>;
  record(m: MeasurementInput): void;
  /** A remark printed under the scenario's table (skips, failures, caveats). */
  note(text: string): void;
  progress(text: string): void;
}

export interface Scenario {
  /** Used by --only. */
  readonly name: string;
  readonly title: string;
  run(ctx: BenchContext): Promise<void>;
}
