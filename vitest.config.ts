import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

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
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
