import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The suite drives real processes, sockets and directories; a 2-core CI box
    // runs it comfortably with a few forks. The per-test limits only catch a
    // hang: a loaded machine (two suites at once) may take minutes, and no
    // test may fail for being slow.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 600_000,
    hookTimeout: 600_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
