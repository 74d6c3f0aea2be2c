import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Builds dist/ once (npm run build) before any test file runs; tests that spawn the CLI rely on it.
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
  },
});
