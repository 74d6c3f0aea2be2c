/**
 * Issue 16, finding 9: fwgen wrote through symbolic links a repository can hold (`init` through
 * `templates/` and `.github/`, `render` through a committed `rendered/web`, the audit log through
 * `.fwgen`), and the audit log was world-readable. Each attack is reproduced here: exit 2, a message
 * naming the link, and nothing written where the link leads. Links that stay inside the repository
 * still work.
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, readAudit, type AuditEntry } from '../src/audit/audit-log.js';
import { UsageError } from '../src/errors.js';
import { runFwgen } from './support/run-cli.js';

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fwgen-links-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder outside the repository, with one file in it that must survive. */
function elsewhere(name: string): string {
  const dir = join(tmp, `elsewhere-${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'keep'), "not fwgen's\n");
  return dir;
}

const listing = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String).sort();

/** A repository: the example inventory and its rendered/. */
function repo(name: string): string {
  const dir = join(tmp, name);
  cpSync('inventory', join(dir, 'inventory'), { recursive: true });
  cpSync('rendered', join(dir, 'rendered'), { recursive: true });
  return dir;
}

describe('render', () => {
  it('refuses a committed rendered/<role> link out of the repository, for render and render --check', async () => {
    const dir = repo('role-link');
    const outside = elsewhere('role-link');
    rmSync(join(dir, 'rendered/web'), { recursive: true });
    symlinkSync(outside, join(dir, 'rendered/web'));
    for (const args of [['render'], ['render', '--check']]) {
      const r = await runFwgen(dir, args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${join(dir, 'rendered/web')} is a symbolic link to ${outside}`);
      expect(r.stderr).toContain('fwgen does not follow links that leave the repository');
    }
    expect(listing(outside)).toEqual(['keep']);
  });

  it('refuses rendered/ itself linked out, and a file linked to a secret (whose text --check would print)', async () => {
    const dir = repo('out-link');
    const outside = elsewhere('out-link');
    rmSync(join(dir, 'rendered'), { recursive: true });
    symlinkSync(outside, join(dir, 'rendered'));
    expect((await runFwgen(dir, ['render'])).code).toBe(2);
    expect(listing(outside)).toEqual(['keep']);

    const dir2 = repo('file-link');
    const secret = join(elsewhere('file-link'), 'keep');
    rmSync(join(dir2, 'rendered/web/iptables.up.rules'));
    symlinkSync(secret, join(dir2, 'rendered/web/iptables.up.rules'));
    const r = await runFwgen(dir2, ['render', '--check']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain("not fwgen's");
  });

  it('follows a link that stays inside the repository', async () => {
    const dir = repo('inside-link');
    cpSync(join(dir, 'rendered/web'), join(dir, 'web-files'), { recursive: true });
    rmSync(join(dir, 'rendered/web'), { recursive: true });
    symlinkSync('../web-files', join(dir, 'rendered/web'));
    const r = await runFwgen(dir, ['render', '--check']);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('init', () => {
  it.each(['templates', '.github'])('refuses %s linked out of the new repository and writes nothing', async (name) => {
    const dir = join(tmp, `init-${name}`);
    const outside = elsewhere(`init-${name}`);
    mkdirSync(dir);
    symlinkSync(outside, join(dir, name));
    const r = await runFwgen(tmp, ['init', dir]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`fwgen init: ${join(dir, name)} is a symbolic link to ${outside}`);
    expect(listing(outside)).toEqual(['keep']);
    // Only the link (listed with what it leads to): no inventory, package.json or rendered/ either.
    expect(listing(dir)).toEqual([name, `${name}/keep`]);
  });

  it('refuses a dangling link in place of a file it writes (writing would create the target)', async () => {
    const dir = join(tmp, 'init-dangling');
    mkdirSync(dir);
    const target = join(tmp, 'created-by-init');
    symlinkSync(target, join(dir, 'package.json'));
    const r = await runFwgen(tmp, ['init', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('(which does not exist)');
    expect(existsSync(target)).toBe(false);
  });
});

describe('audit log', () => {
  const entry: AuditEntry = {
    time: '2026-01-01T00:00:00.000Z',
    action: 'ship',
    run: 'r1',
    who: 'tester',
    inventory: 'inventory/inventory.yaml',
    commit: null,
    hosts: [{ host: 'web1', role: 'web', outcome: 'applied', reason: '' }],
  };
  // The audit log's default path is relative to the current folder: the repository.
  const inRepo = (dir: string, fn: () => void): void => {
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      fn();
    } finally {
      process.chdir(cwd);
    }
  };

  it('is created 0600 in a folder created 0700', () => {
    const dir = repo('audit-modes');
    inRepo(dir, () => appendAudit('.fwgen/deploy.log', entry));
    expect(statSync(join(dir, '.fwgen')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, '.fwgen/deploy.log')).mode & 0o777).toBe(0o600);
    expect(readAudit(join(dir, '.fwgen/deploy.log'))).toEqual([entry]);
  });

  it('a world-readable log of an older fwgen becomes 0600 at the next line', () => {
    const dir = repo('audit-old');
    mkdirSync(join(dir, '.fwgen'));
    writeFileSync(join(dir, '.fwgen/deploy.log'), `${JSON.stringify(entry)}\n`, { mode: 0o644 });
    inRepo(dir, () => appendAudit('.fwgen/deploy.log', entry));
    expect(statSync(join(dir, '.fwgen/deploy.log')).mode & 0o777).toBe(0o600);
    expect(readAudit(join(dir, '.fwgen/deploy.log'))).toHaveLength(2);
  });

  it('refuses a committed .fwgen link out of the repository', () => {
    const dir = repo('audit-link');
    const outside = elsewhere('audit-link');
    symlinkSync(outside, join(dir, '.fwgen'));
    inRepo(dir, () => {
      expect(() => appendAudit('.fwgen/deploy.log', entry)).toThrow(UsageError);
      expect(() => appendAudit('.fwgen/deploy.log', entry)).toThrow(/audit log: .*\.fwgen is a symbolic link to/);
    });
    expect(listing(outside)).toEqual(['keep']);
  });

  it('ship refuses a .fwgen link out of the repository before it touches any host', async () => {
    const dir = repo('audit-ship');
    const outside = elsewhere('audit-ship');
    symlinkSync(outside, join(dir, '.fwgen'));
    const args = ['ship', '--role', 'all', '--from', '203.0.113.5', '--ssh-config', 'none', '--connect-timeout', '1'];
    const r = await runFwgen(dir, args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/audit log: .*\.fwgen is a symbolic link to/);
    expect(r.stderr).not.toMatch(/unreachable|ECONNREFUSED|timed out/);
    expect(listing(outside)).toEqual(['keep']);
  });

  it('refuses a log file that is a link, even to a file inside the repository', () => {
    const dir = repo('audit-file-link');
    mkdirSync(join(dir, '.fwgen'));
    writeFileSync(join(dir, 'notes.txt'), 'mine\n');
    symlinkSync('../notes.txt', join(dir, '.fwgen/deploy.log'));
    inRepo(dir, () =>
      expect(() => appendAudit('.fwgen/deploy.log', entry)).toThrow(/is a symbolic link; fwgen writes/),
    );
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine\n');
  });
});
