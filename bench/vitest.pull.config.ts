// Vitest config for `npm run bench:pull` only: runs bench/pull-bench.ts (a 50-host namespace fleet and nginx, needs root).
// The bench builds dist/ itself when it is missing, so no globalSetup here.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['bench/pull-bench.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    teardownTimeout: 120_000,
    // Print the results table straight to the terminal, not through vitest's console capture.
    disableConsoleIntercept: true,
    silent: false,
    // One worker process: the lab installs a process 'exit' hook that tears down its namespaces.
    pool: 'forks',
    fileParallelism: false,
  },
});
