import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';

// The formatter is part of the tests, like tsc and shellcheck: code that is not formatted fails here.
it('source, tests and benches are formatted (npm run format fixes it)', () => {
  const r = spawnSync('npm', ['run', '--silent', 'format:check'], { encoding: 'utf8' });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
}, 60_000);
