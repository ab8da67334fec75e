import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

/** The timing-sensitive M/M/1 check of the load generator. */
const MM1_CHECK = 'packages/loadgen/test/mm1.test.ts';

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources, so no build is needed between an edit and a test run.
    alias: {
      '@httpgw/protocol': src('protocol'),
      '@httpgw/runtime': src('runtime'),
      '@httpgw/gateway': src('gateway'),
      '@httpgw/file-server': src('file-server'),
      '@httpgw/loadgen': src('loadgen'),
    },
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'main', include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'], exclude: [MM1_CHECK] } },
      // Alone, after the rest (`pnpm test` runs it as its own step): the M/M/1 check measures
      // 5 ms service times, which other test files' CPU load on the same cores would distort.
      { extends: true, test: { name: 'mm1', include: [MM1_CHECK] } },
    ],
  },
});
