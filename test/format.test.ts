import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

// The formatter is part of the tests, like tsc and shellcheck: code that is not formatted fails here.
it('source, tests and benches are formatted (npm run format fixes it)', () => {
  const r = spawnSync('npm', ['run', '--silent', 'format:check'], { encoding: 'utf8' });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
}, 60_000);

it('the check can fail: no source folder is ignored, and an unformatted file is found', () => {
  // .prettierignore names the example inventory, templates and rendered/ at the root only, not src/inventory/.
  for (const file of ['src/inventory/ports.ts', 'src/render/templates.ts', 'test/architecture.test.ts']) {
    const info = spawnSync('npx', ['prettier', '--file-info', file], { encoding: 'utf8' });
    expect(JSON.parse(info.stdout), file).toMatchObject({ ignored: false });
  }
  const dir = mkdtempSync(join('src', '.format-check-'));
  try {
    const ugly = join(dir, 'ugly.ts');
    writeFileSync(ugly, readFileSync('src/inventory/ports.ts', 'utf8').replace(/\n {2}/g, '\n      '));
    const r = spawnSync('npx', ['prettier', '--check', ugly], { encoding: 'utf8' });
    expect(r.status).toBe(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
