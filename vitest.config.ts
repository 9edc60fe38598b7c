import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The suite drives real processes, sockets and directories; a 2-core CI box
    // runs it comfortably with a few forks, and generous per-test limits keep
    // a slow machine from turning into flaky failures.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
