import { defineConfig, mergeConfig } from 'vitest/config';
import full from './vitest.config.js';

// `npm run test:fast`: the inner loop between edits. Everything that needs no network namespace, sshd,
// daemon or fresh checkout; the full suite (`npm test`, what CI and the README run) has these too.
export const SLOW = [
  'test/e2e/**', // real kernel, sshd and daemons in network namespaces
  'test/readme.test.ts', // runs the README's commands in a copy of the checkout (npm ci, build)
  'test/init.test.ts', // scaffolds projects and installs them
  'test/remote-scripts.test.ts', // every host step under dash, and shellcheck
  'test/ci-workflow.test.ts', // runs the workflow's steps in scratch git repositories
  'test/format.test.ts', // prettier over the whole tree (npm run format:check does the same)
  'test/access-cli.test.ts', // query and diff as processes, over scratch git repositories
];

export default mergeConfig(full, defineConfig({ test: { exclude: SLOW } }));
