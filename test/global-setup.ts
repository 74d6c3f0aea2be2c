// Vitest global setup: builds dist/ once per `vitest run`, before any test file starts, so test files
// that spawn `node dist/cli/main.js` see a fresh build and never race each other building it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export default function setup(): void {
  const started = Date.now();
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['run', 'build'], { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
  if (r.error || r.status !== 0) {
    const why = r.error ? String(r.error) : `exit ${r.status ?? r.signal}`;
    throw new Error(
      `test/global-setup.ts: \`npm run build\` failed (${why}); the tests need dist/.\n${r.stdout ?? ''}${r.stderr ?? ''}`,
    );
  }
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) {
    throw new Error('test/global-setup.ts: `npm run build` succeeded but dist/cli/main.js is missing');
  }
  if (process.env.FWGEN_TEST_VERBOSE) process.stderr.write(`built dist/ in ${Date.now() - started} ms\n`);
}
