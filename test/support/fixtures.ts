/**
 * Fixtures for the integration tests, each cleaned up by the hook that fits its lifetime: a root of
 * files for a whole file or describe block (`useRoot`), a cluster for one test (`clusterForTest`), a
 * root and a cluster shared by a describe block (`useCluster`).
 */
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { makeTempDir, startCluster, writeFiles, type Cluster, type ClusterInit } from './cluster.js';

/** Paths → contents, or byte counts of random data (see writeFiles). */
export type FileSpecs = Record<string, Buffer | string | number>;

export interface TestRoot {
  /** The directory; read it inside tests and hooks, not while tests are being collected. */
  readonly path: string;
  /** What was written, by path. */
  readonly files: Map<string, Buffer>;
}

function ready<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is made in beforeAll: read it inside a test or hook`);
  return value;
}

/**
 * A temp directory holding `files`, made before the tests of the enclosing file or describe block
 * and removed after them. Call it at the top level of the file or block.
 */
export function useRoot(files: FileSpecs = {}, prefix?: string): TestRoot {
  let dir: Awaited<ReturnType<typeof makeTempDir>> | undefined;
  let written: Map<string, Buffer> | undefined;
  beforeAll(async () => {
    dir = await makeTempDir(prefix);
    written = await writeFiles(dir.path, files);
  });
  afterAll(async () => {
    await dir?.remove();
  });
  return {
    get path() {
      return ready(dir, 'the test root').path;
    },
    get files() {
      return ready(written, 'the test root');
    },
  };
}

/** Starts a cluster (see startCluster) that is stopped when the current test ends. */
export async function clusterForTest(init: ClusterInit): Promise<Cluster> {
  const cluster = await startCluster(init);
  onTestFinished(() => cluster.stop());
  return cluster;
}

export interface SharedCluster extends TestRoot {
  readonly cluster: Cluster;
}

/**
 * A root holding `files` and a cluster serving it, shared by the tests of the enclosing describe
 * block: started before them, stopped (and the root removed) after them.
 */
export function useCluster(files: FileSpecs, init: Omit<ClusterInit, 'root'> = {}): SharedCluster {
  const root = useRoot(files);
  let cluster: Cluster | undefined;
  // Registered after useRoot's hooks: beforeAll runs after the root is written, afterAll before it is removed.
  beforeAll(async () => {
    cluster = await startCluster({ ...init, root: root.path });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  return {
    get path() {
      return root.path;
    },
    get files() {
      return root.files;
    },
    get cluster() {
      return ready(cluster, 'the cluster');
    },
  };
}
