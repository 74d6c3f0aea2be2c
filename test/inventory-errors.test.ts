/**
 * Inventory errors: every fixture in test/fixtures/invalid/ holds one mistake (or a few, for the many-*
 * files) and states in its leading comment lines what fwgen must report:
 *
 *   # expect: LINE:COL: <substring of the message>
 *
 * Each expectation must match one error problem exactly (same line and column, message containing the
 * substring), and there must be no other error problems. Fixtures in test/fixtures/warnings/ must load and
 * return the `# warn:` lines as warnings. The CLI tests at the end need `npm run build` first.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FwgenError, type Problem } from '../src/errors.js';
import { inputErrorOf } from './support/input-error.js';
import { parseInventory } from '../src/inventory/load-inventory.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const INVALID_DIR = 'test/fixtures/invalid';
const WARNINGS_DIR = 'test/fixtures/warnings';
const CLI = join(ROOT, 'dist/cli/main.js');

interface Expectation {
  line: number;
  col: number;
  text: string;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith('.yaml'))
    .sort();
}

/** Reads the `# <tag>: LINE:COL: text` lines of a fixture; a malformed one fails the test. */
function expectations(text: string, tag: 'expect' | 'warn'): Expectation[] {
  const out: Expectation[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith(`# ${tag}`)) continue;
    const m = /^# (?:expect|warn): (\d+):(\d+): (.+)$/.exec(line);
    if (!m) throw new Error(`malformed expectation line: ${line}`);
    out.push({ line: Number(m[1]), col: Number(m[2]), text: m[3] });
  }
  return out;
}

function show(p: Pick<Problem, 'line' | 'col' | 'message'>): string {
  return `${p.line}:${p.col}: ${p.message}`;
}

/** Checks that each expectation matches a different problem; returns the problems nothing matched. */
function matchAll(problems: readonly Problem[], expected: readonly Expectation[]): void {
  const unused = [...problems];
  for (const e of expected) {
    const i = unused.findIndex((p) => p.line === e.line && p.col === e.col && p.message.includes(e.text));
    expect(
      i,
      `expected a problem "${e.line}:${e.col}: …${e.text}…"; fwgen reported:\n${problems.map(show).join('\n') || '(nothing)'}`,
    ).toBeGreaterThanOrEqual(0);
    unused.splice(i, 1);
  }
  expect(unused.map(show), 'problems that no "# expect:" line accounts for').toEqual([]);
}

function byPosition(a: Problem, b: Problem): number {
  return a.line - b.line || a.col - b.col;
}

const invalidFixtures = yamlFiles(INVALID_DIR);
const warningFixtures = yamlFiles(WARNINGS_DIR);

describe('invalid inventories (test/fixtures/invalid)', () => {
  it('has at least 30 fixtures', () => {
    expect(invalidFixtures.length).toBeGreaterThanOrEqual(30);
  });

  describe.each(invalidFixtures)('%s', (name) => {
    const rel = `${INVALID_DIR}/${name}`;
    const text = readFileSync(join(ROOT, rel), 'utf8');
    const expected = expectations(text, 'expect');

    it('reports exactly the expected problems', () => {
      expect(expected.length, `${rel} has no "# expect:" lines`).toBeGreaterThan(0);
      const err = inputErrorOf(() => parseInventory(text, rel));
      expect(err.exitCode).toBe(2);
      for (const p of err.problems) expect(p.file).toBe(rel);
      matchAll(
        err.problems.filter((p) => p.severity === 'error'),
        expected,
      );
    });

    if (expected.length > 1) {
      it('reports the problems in file order', () => {
        const errors = inputErrorOf(() => parseInventory(text, rel)).problems.filter((p) => p.severity === 'error');
        expect(errors.map(show)).toEqual([...errors].sort(byPosition).map(show));
      });
    }
  });

  it('many-problems.yaml reports every independent problem at once', () => {
    const rel = `${INVALID_DIR}/many-problems.yaml`;
    const text = readFileSync(join(ROOT, rel), 'utf8');
    const expected = expectations(text, 'expect');
    expect(expected.length).toBeGreaterThanOrEqual(5);
    expect(new Set(expected.map((e) => e.line)).size, 'one problem per line').toBe(expected.length);
    const errors = inputErrorOf(() => parseInventory(text, rel)).problems;
    // Order is checked by "reports the problems in file order" above.
    expect(errors.map((p) => `${p.line}:${p.col}`).sort()).toEqual(expected.map((e) => `${e.line}:${e.col}`).sort());
  });
});

describe('valid inventories that must not be rejected', () => {
  it('accepts valid IPv6 sources that start with "::" in allow.from (as management already does)', () => {
    const text = [
      'management: ["::/0"]',
      'roles:',
      '  web:',
      '    allow:',
      '      - { from: ["::/0", "::1/128"], ports: [tcp/8080] }',
      '    hosts:',
      '      web1: 2001:db8::11',
      '',
    ].join('\n');
    const { inventory } = parseInventory(text, 'v6-sources.yaml');
    expect(inventory.roles[0]?.allow[0]?.from).toEqual([
      { kind: 'net', net: expect.objectContaining({ cidr: '::/0' }) },
      { kind: 'net', net: expect.objectContaining({ cidr: '::1/128' }) },
    ]);
  });
});

describe('inventories with warnings (test/fixtures/warnings)', () => {
  it.each(warningFixtures)('%s', (name) => {
    const rel = `${WARNINGS_DIR}/${name}`;
    const text = readFileSync(join(ROOT, rel), 'utf8');
    const expected = expectations(text, 'warn');
    expect(expected.length, `${rel} has no "# warn:" lines`).toBeGreaterThan(0);
    const { inventory, warnings } = parseInventory(text, rel);
    expect(inventory.roles.length).toBeGreaterThan(0);
    for (const w of warnings) {
      expect(w.severity).toBe('warning');
      expect(w.file).toBe(rel);
    }
    matchAll(warnings, expected);
  });
});

// ---------------------------------------------------------------------------------------------------------
// CLI: what a user sees. Needs `npm run build`.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: ROOT, timeout: 30_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Parses stderr: every line must be `FILE:LINE:COL: message` or a `hint:` line. With `strict` off, a leading
 * `fwgen: ` on a line is tolerated, so that the tests below check their own point; the prefix itself is
 * checked by one strict test.
 */
function problemLines(rel: string, stderr: string, strict = false): { line: number; col: number; message: string }[] {
  const re = new RegExp(`^${strict ? '' : '(?:fwgen: )?'}${escapeRe(rel)}:(\\d+):(\\d+): (.+)$`);
  const lines = stderr.replace(/\n$/, '').split('\n');
  const out: { line: number; col: number; message: string }[] = [];
  for (const l of lines) {
    if (l.startsWith('hint: ')) continue;
    const m = re.exec(l);
    expect(
      m,
      `stderr line is not "${rel}:LINE:COL: message" or "hint: ...":\n${JSON.stringify(l)}\nfull stderr:\n${stderr}`,
    ).not.toBeNull();
    out.push({ line: Number(m![1]), col: Number(m![2]), message: m![3]! });
  }
  return out;
}

/** Path -> bytes and mtime of every file under `dir`. */
function snapshot(dir: string): Map<string, { bytes: string; mtimeMs: number }> {
  const out = new Map<string, { bytes: string; mtimeMs: number }>();
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    const rel = path.slice(dir.length + 1);
    if (e.isDirectory()) out.set(`${rel}/`, { bytes: '', mtimeMs: 0 });
    else out.set(rel, { bytes: readFileSync(path).toString('base64'), mtimeMs: statSync(path).mtimeMs });
  }
  return out;
}

describe('CLI on invalid inventories', () => {
  let tmp = '';

  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`);
    tmp = mkdtempSync(join(tmpdir(), 'fwgen-inventory-errors-'));
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  // One per kind of failure: YAML syntax, schema, semantic checks, several problems at once.
  const CLI_CASES = [
    'yaml-unclosed-quote.yaml',
    'duplicate-key.yaml',
    'empty-document.yaml',
    'unknown-host-key.yaml',
    'from-unknown-role.yaml',
    'host-in-two-roles.yaml',
    'many-problems.yaml',
    'many-semantic-problems.yaml',
    'yaml-tab-indentation.yaml',
    'rules-path-not-rules-file.yaml',
  ];

  it.concurrent.each(CLI_CASES)(
    'validate %s: exit 2, one FILE:LINE:COL line per problem, no stack trace',
    async (name) => {
      const rel = `${INVALID_DIR}/${name}`;
      const expected = expectations(readFileSync(join(ROOT, rel), 'utf8'), 'expect');
      const r = await cli(['validate', '-i', rel]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).not.toContain('    at ');
      expect(r.stderr).not.toContain('internal error');
      const listed = problemLines(rel, r.stderr);
      expect(listed.map((p) => `${p.line}:${p.col}`).sort()).toEqual(expected.map((e) => `${e.line}:${e.col}`).sort());
      for (const e of expected)
        expect(
          listed.some((p) => p.line === e.line && p.col === e.col && p.message.includes(e.text)),
          `${e.line}:${e.col}: …${e.text}…`,
        ).toBe(true);
    },
  );

  it.concurrent.each(['many-problems.yaml', 'yaml-unclosed-quote.yaml'])(
    'validate %s: every stderr line starts with FILE:LINE:COL (nothing before the path), in file order',
    async (name) => {
      const rel = `${INVALID_DIR}/${name}`;
      const expected = expectations(readFileSync(join(ROOT, rel), 'utf8'), 'expect');
      const r = await cli(['validate', '-i', rel]);
      expect(r.code).toBe(2);
      expect(problemLines(rel, r.stderr, true).map((p) => `${p.line}:${p.col}`)).toEqual(
        expected.map((e) => `${e.line}:${e.col}`),
      );
    },
  );

  it.each(['many-problems.yaml', 'many-semantic-problems.yaml', 'yaml-unclosed-quote.yaml', 'duplicate-address.yaml'])(
    'render %s into a folder with files: exit 2 and nothing touched',
    async (name) => {
      const rel = `${INVALID_DIR}/${name}`;
      const out = join(tmp, `out-${name}`);
      mkdirSync(join(out, 'web'), { recursive: true });
      mkdirSync(join(out, 'db'), { recursive: true });
      mkdirSync(join(out, 'stale-role'), { recursive: true });
      writeFileSync(join(out, 'web/iptables.up.rules'), '*filter\n-A INPUT -j ACCEPT\nCOMMIT\n');
      writeFileSync(join(out, 'db/ip6tables.up.rules'), 'hand-edited, must survive\n');
      writeFileSync(join(out, 'stale-role/iptables.up.rules'), 'a role that is no longer in the inventory\n');
      writeFileSync(join(out, 'README.md'), '# not ours\n');
      const before = snapshot(out);
      await new Promise((r) => setTimeout(r, 20)); // so that a rewrite would show in mtimes
      const r = await cli(['render', '-i', rel, '-o', out]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).not.toContain('    at ');
      expect(problemLines(rel, r.stderr).length).toBeGreaterThan(0);
      expect(snapshot(out)).toEqual(before);
    },
  );

  it('render of an invalid inventory does not create the output folder', async () => {
    const rel = `${INVALID_DIR}/host-in-two-roles.yaml`;
    const out = join(tmp, 'never-created');
    const r = await cli(['render', '-i', rel, '-o', out]);
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  it('render --check of an invalid inventory exits 2 (bad input), not 1 (stale output)', async () => {
    const rel = `${INVALID_DIR}/trust-invalid.yaml`;
    const r = await cli(['render', '--check', '-i', rel, '-o', join(tmp, 'check-out')]);
    expect(r.code).toBe(2);
    expect(problemLines(rel, r.stderr).map((p) => `${p.line}:${p.col}`)).toEqual(['6:8']);
  });

  it('a template: naming a missing template is an input error at its file:line:col, exit 2', async () => {
    const dir = join(tmp, 'missing-template');
    mkdirSync(join(dir, 'templates'), { recursive: true });
    const inv = join(dir, 'inventory.yaml');
    writeFileSync(
      inv,
      'management: [203.0.113.0/28]\nroles:\n  worker:\n    template: worker.rules.njk\n    hosts: { w1: 198.51.100.31 }\n',
    );
    const r = await cli(['validate', '-i', inv]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('    at ');
    expect(problemLines(inv, r.stderr, true)).toEqual([
      { line: 4, col: 15, message: expect.stringContaining('role "worker": template "worker.rules.njk" not found') },
    ]);
    writeFileSync(join(dir, 'templates/worker.rules.njk'), '{% extends "base.rules.njk" %}\n');
    expect((await cli(['validate', '-i', inv])).code).toBe(0);
  });

  it('an unreadable inventory is a usage error (exit 2) without a stack trace', async () => {
    const r = await cli(['validate', '-i', 'test/fixtures/invalid/does-not-exist.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('does-not-exist.yaml');
    expect(r.stderr).not.toContain('    at ');
  });
});

describe('error classes', () => {
  it('InputError is a FwgenError with exit code 2', () => {
    const err = inputErrorOf(() => parseInventory('roles: {}\ntrust: maybe\n', 'x.yaml'));
    expect(err).toBeInstanceOf(FwgenError);
    expect(err.exitCode).toBe(2);
    expect(err.message.split('\n')[0]).toMatch(/^x\.yaml:2:8: /);
  });
});

describe('rules_path folders (issue 16: ship replaces the file as root)', () => {
  const withPath = (path: string, extra = ''): string =>
    `defaults:\n  rules_path: ${path}\n${extra}management: [203.0.113.0/28]\nroles:\n  web:\n    hosts: { web1: 198.51.100.11 }\n`;

  it.each([
    '/etc/iptables.up.rules',
    '/etc/iptables/rules.v4',
    '/etc/network/iptables.rules',
    '/etc/sysconfig/fw.rules',
  ])('%s is accepted', (path) => expect(parseInventory(withPath(path), 'x.yaml').inventory.rulesPath).toBe(path));

  it('another folder is accepted with rules_path_unusual: true', () => {
    const text = withPath('/etc/fw/iptables.rules', '  rules_path_unusual: true\n');
    expect(parseInventory(text, 'x.yaml').inventory.rulesPath).toBe('/etc/fw/iptables.rules');
  });

  it.each(['/etc/udev/rules.d/x.rules', '/etc/polkit-1/rules.d/49-x.rules', '/etc/audit/rules.d/audit.rules'])(
    '%s is refused at its line, even with rules_path_unusual: true',
    (path) => {
      const err = inputErrorOf(() => parseInventory(withPath(path, '  rules_path_unusual: true\n'), 'x.yaml'));
      expect(err.problems.map((p) => `${p.line}:${p.col}: ${p.message}`)).toEqual([
        expect.stringMatching(
          /^2:15: defaults.rules_path ".*" is in \/etc\/[a-z-]+1?\/rules\.d, a folder whose files another tool reads/,
        ),
      ]);
    },
  );
});

describe('an empty inventory file', () => {
  it('says it is empty (not "found undefined undefined")', () => {
    const err = inputErrorOf(() => parseInventory('', 'inventory/inventory.yaml'));
    expect(err.problems.map(show)).toEqual([
      '1:1: the inventory: found an empty file (expected a mapping with roles, and optionally defaults, management, monitoring, trust, sets, preserve and agent)',
    ]);
  });
});
