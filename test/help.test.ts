// `fwgen --help` and each command's help: examples, exit codes, defaults as typed, and only the
// options the command uses. Spawns the built CLI (vitest's global setup builds dist/).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = 'dist/cli/main.js';
const COMMANDS = [
  'init',
  'validate',
  'render',
  'query',
  'diff',
  'ship',
  'backups',
  'rollback',
  'remove',
  'status',
  'log',
  'doctor',
];

function fwgen(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

/** The long option names a command's help lists. */
function optionsOf(help: string): string[] {
  return [...help.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!).filter((o) => o !== '--help');
}

describe('fwgen --help', () => {
  it('lists every command, where to start, and the exit codes', () => {
    const r = fwgen('--help');
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(r.out).toContain('fwgen init my-firewall');
    expect(r.out).toMatch(/Exit codes: 0 success; 1 the work failed.*\n.*2 bad input or usage/);
  });

  it.each(COMMANDS)('%s --help: examples, exit codes, defaults printed unquoted', (cmd) => {
    const r = fwgen(cmd, '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`Examples:\\n(  fwgen ${cmd}.*\\n)+`));
    expect(r.out).toContain('Exit codes: 0 success');
    expect(r.out).not.toMatch(/default: "/);
  });

  it.each(['publish', 'agent install', 'agent poll'])('%s --help: examples and exit codes', (cmd) => {
    const r = fwgen(...cmd.split(' '), '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`Examples:\\n(  fwgen ${cmd}.*\\n)+`));
    expect(r.out).toContain('Exit codes: 0 success');
  });

  it('agent poll lists no option of install', () => {
    expect(optionsOf(fwgen('agent', 'poll', '--help').out)).not.toContain('--textfile-dir');
    expect(optionsOf(fwgen('agent', 'install', '--help').out)).toEqual(
      expect.arrayContaining(['--uninstall', '--textfile-dir', '--timeout', '--keep', '--role', '--host']),
    );
  });

  it('shows defaults as typed', () => {
    expect(fwgen('render', '--help').out).toMatch(/--out <dir> +output folder \(default: rendered\)/);
    expect(fwgen('ship', '--help').out).toMatch(/\(default: 30\)/);
  });

  it('rollback and backups list no option they would ignore, and refuse one', () => {
    expect(optionsOf(fwgen('rollback', '--help').out).sort()).toEqual(
      [
        '--accept-new',
        '--audit-log',
        '--break-lock',
        '--concurrency',
        '--connect-timeout',
        '--host',
        '--inventory',
        '--json',
        '--keep',
        '--ssh-config',
        '--step-timeout',
        '--timeout',
        '--to',
        '--wave',
      ].sort(),
    );
    expect(optionsOf(fwgen('backups', '--help').out).sort()).toEqual(
      [
        '--accept-new',
        '--audit-log',
        '--concurrency',
        '--connect-timeout',
        '--host',
        '--inventory',
        '--json',
        '--role',
        '--ssh-config',
        '--step-timeout',
      ].sort(),
    );
    const r = fwgen('rollback', '--role', 'web', '--host', 'web1');
    expect(r.code).toBe(2);
    expect(r.out).toContain("unknown option '--role'");
    expect(fwgen('backups', '--templates', 'x', '--host', 'web1').code).toBe(2);
  });
});

describe('no test hook in the shipped code', () => {
  it('neither src/ nor dist/ reads an FWGEN_TEST environment variable', () => {
    const files = ['src', 'dist'].flatMap((d) =>
      readdirSync(d, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && /\.(ts|js|cjs)$/.test(e.name))
        .map((e) => join(e.parentPath, e.name)),
    );
    expect(files.length).toBeGreaterThan(20);
    expect(files.filter((f) => /FWGEN_TEST|process\.env\.FWGEN/.test(readFileSync(f, 'utf8')))).toEqual([]);
  });
});
