// `fwgen query` and `fwgen diff` as a user runs them (the built CLI): on this repository's example
// (its committed rendered/), on projects in temp folders (ipset mode, a role template fwgen cannot
// read), and on git repositories of an inventory (revisions, the working tree, templates at a revision).
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiffReport } from '../src/access/describe.js';
import type { QueryReport } from '../src/access/query.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function fwgen(cwd: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function git(cwd: string, ...args: string[]): string {
  const r = spawnSync('git', ['-c', 'user.email=t@example.net', '-c', 'user.name=t', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fwgen-access-cli-'));
  temps.push(d);
  return d;
}

const json = <T>(out: string): T => JSON.parse(out) as T;
const lineOf = (file: string, n: number) => readFileSync(file, 'utf8').split('\n')[n - 1]!;

describe('fwgen query on the example (rendered/ as committed)', () => {
  it('worker -> db on tcp/5432: allowed, each pair by its fleet rule, named by file, line and inventory entry', () => {
    const r = fwgen(ROOT, 'query', '--from', 'worker', '--to', 'db', '--port', 'tcp/5432', '--json');
    expect(r.code, r.stderr).toBe(0);
    const q = json<QueryReport>(r.stdout);
    expect(q.verdict).toBe('allowed');
    expect(q.pairs.map((p) => [p.from, p.to, p.answer.in, p.answer.verdict])).toEqual([
      ['w1', 'db1', 'eth1', 'allowed'],
      ['w2', 'db1', 'eth1', 'allowed'],
    ]);
    const rule = q.pairs[0]!.answer.rule!;
    expect(rule).toMatchObject({
      file: 'rendered/db/iptables.up.rules',
      comment: 'fwgen fleet worker/w1',
      origin: 'fleet trust',
    });
    expect(lineOf(join(ROOT, rule.file), rule.line)).toBe(rule.text);
    expect(rule.inventory).toMatchObject({ file: 'inventory/inventory.yaml', path: 'roles.worker.hosts.w1' });
    expect(lineOf(join(ROOT, 'inventory/inventory.yaml'), rule.inventory!.line)).toContain('w1: 198.51.100.31');
    expect(q.unpaired).toEqual([
      { from: 'w1', to: 'db6' },
      { from: 'w2', to: 'db6' },
    ]);
  });

  it('the text names the rule and the inventory line', () => {
    const r = fwgen(ROOT, 'query', '--from', '192.0.2.7', '--to', 'db1', '--port', 'udp/161');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').slice(0, 4)).toEqual([
      '192.0.2.7 -> db1 on udp/161: allowed',
      '192.0.2.7 -> db1 (198.51.100.21) on udp/161 via interfaces other than eth1: allowed',
      expect.stringMatching(/^ {4}by rendered\/db\/iptables\.up\.rules:\d+ "fwgen db allow#2 from 192\.0\.2\.0\/24"$/),
      expect.stringMatching(/^ {4}from inventory\/inventory\.yaml:\d+ roles\.db\.allow\[1\] \(db allow#2\)$/),
    ]);
    const invLine = Number(/inventory\.yaml:(\d+)/.exec(r.stdout)![1]);
    expect(lineOf(join(ROOT, 'inventory/inventory.yaml'), invLine)).toContain('192.0.2.0/24');
  });

  it('denied: exit 1, by the default reject', () => {
    const r = fwgen(ROOT, 'query', '--from', '198.51.100.7', '--to', 'db', '--port', 'tcp/5432', '--json');
    expect(r.code).toBe(1);
    const q = json<QueryReport>(r.stdout);
    expect(q.verdict).toBe('denied');
    expect(q.pairs[0]!.answer.rule).toMatchObject({ origin: 'default reject' });
    expect(r.stderr).toContain('198.51.100.7 -> db on tcp/5432: denied');
  });

  it('management: SSH on the port the host uses, from the management network', () => {
    const q = json<QueryReport>(
      fwgen(ROOT, 'query', '--from', '203.0.113.5', '--to', 'web2', '--port', 'tcp/2222', '--json').stdout,
    );
    expect(q.verdict).toBe('allowed');
    expect(q.pairs[0]!.answer.rule).toMatchObject({ origin: 'management', inventory: { path: 'management[0]' } });
  });

  it('an inventory host is judged on the internal interface; where the other answer differs, both are said', () => {
    const q = json<QueryReport>(
      fwgen(ROOT, 'query', '--from', 'web1', '--to', 'db1', '--port', 'tcp/8080', '--json').stdout,
    );
    expect(q.pairs[0]!.answer).toMatchObject({ in: 'eth1', verdict: 'allowed' });
    expect(q.pairs[0]!.other).toMatchObject({ in: 'interfaces other than eth1', verdict: 'denied' });
    const given = json<QueryReport>(
      fwgen(ROOT, 'query', '--from', 'web1', '--to', 'db1', '--port', 'tcp/8080', '--in', 'eth0', '--json').stdout,
    );
    expect(given.pairs[0]!.answer).toMatchObject({ in: 'eth0', verdict: 'denied' });
    expect(given.pairs[0]!.other).toBeUndefined();
  });

  it('without --port: every port the source may reach, as ranges, each with its rule', () => {
    const r = fwgen(ROOT, 'query', '--from', '198.51.100.7', '--to', 'web1', '--json');
    expect(r.code).toBe(0);
    const ports = json<QueryReport>(r.stdout).pairs[0]!.answer.ports!;
    expect(ports.map((p) => [p.port, p.verdict, p.rule.origin])).toEqual([
      ['tcp/80', 'allowed', 'web public'],
      ['tcp/443', 'allowed', 'web public'],
    ]);
    const fleet = json<QueryReport>(fwgen(ROOT, 'query', '--from', 'w1', '--to', 'db1', '--json').stdout);
    expect(fleet.pairs[0]!.answer.ports!.map((p) => [p.port, p.ranges])).toEqual([
      ['every port', ['tcp/1-65535', 'udp/1-65535']],
    ]);
  });

  it('a network with a mixed answer lists which parts are allowed and which not', () => {
    const r = fwgen(ROOT, 'query', '--from', '192.0.2.0/23', '--to', 'db1', '--port', 'tcp/9100', '--json');
    expect(r.code).toBe(1);
    const a = json<QueryReport>(r.stdout).pairs[0]!.answer;
    expect(a.verdict).toBe('mixed');
    expect(a.parts!.map((p) => [p.verdict, p.cidrs, p.rule?.origin])).toEqual([
      ['allowed', ['192.0.2.0/24'], 'db allow#2'],
      ['denied', ['192.0.3.0/24'], 'default reject'],
    ]);
  });

  it('bad input exits 2 and says what was expected', () => {
    for (const [args, message] of [
      [['--from', 'nosuch', '--to', 'db'], /--from "nosuch" is not a host, role, address or CIDR/],
      [['--from', 'w1', '--to', '192.0.2.7'], /--to "192.0.2.7" is not a host or role/],
      [['--from', 'w1', '--to', 'db', '--port', 'tcp/1-5'], /is a range \(expected one port/],
      [['--from', 'w1', '--to', 'db', '--port', 'icmp/8'], /is not a port/],
      [['--from', 'w1', '--to', 'db', '--in', 'eth 1'], /is not an interface name/],
      [['--to', 'db'], /required option '--from <src>' not specified/],
    ] as const) {
      const r = fwgen(ROOT, 'query', ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('fwgen query on projects of its own', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    mkdirSync(join(dir, 'inventory'));
    mkdirSync(join(dir, 'templates/roles'), { recursive: true });
    writeFileSync(
      join(dir, 'inventory/inventory.yaml'),
      'defaults: { interface: eth1 }\ntrust: fleet\nsets: ipset\nroles:\n  app: { hosts: { a1: 198.51.100.5, a2: 198.51.100.6 } }\n  db:\n    allow: [{ from: [app], ports: [tcp/5432] }]\n    hosts: { d1: 198.51.100.9 }\n',
    );
    writeFileSync(
      join(dir, 'templates/roles/db.njk'),
      '{% extends "base.rules.njk" %}{% block extra %}-A FWGEN-INPUT -p tcp -m tcp --dport 9000 -m recent --rcheck --seconds 60 --name x -j ACCEPT\n{% endblock %}',
    );
    const r = fwgen(dir, 'render');
    expect(r.code, r.stderr).toBe(0);
  });

  it('ipset mode: the set members rendered in rendered/sets/ipset.rules decide', () => {
    const q = json<QueryReport>(
      fwgen(dir, 'query', '--from', 'a2', '--to', 'd1', '--port', 'tcp/5432', '--in', 'eth0', '--json').stdout,
    );
    expect(q.verdict).toBe('allowed');
    expect(q.pairs[0]!.answer.rule!.text).toContain('--match-set fwgen-db-a1-4 src');
    const outsider = fwgen(dir, 'query', '--from', '198.51.100.7', '--to', 'd1', '--port', 'tcp/5432');
    expect(outsider.code).toBe(1);
  });

  it('a template rule it cannot read: undetermined (exit 1), naming the rule and what is not understood', () => {
    const r = fwgen(dir, 'query', '--from', '192.0.2.1', '--to', 'db', '--port', 'tcp/9000', '--json');
    expect(r.code).toBe(1);
    const q = json<QueryReport>(r.stdout);
    expect(q.verdict).toBe('undetermined');
    const rule = q.pairs[0]!.answer.rule!;
    expect(rule.why).toBe('not understood: -m recent --rcheck --seconds --name');
    expect(lineOf(join(dir, rule.file), rule.line)).toBe(rule.text);
    expect(rule.text).toContain('-m recent');
    expect(rule.inventory).toBeUndefined();
    // A fleet member never meets that rule on eth1.
    expect(fwgen(dir, 'query', '--from', 'a1', '--to', 'db', '--port', 'tcp/9000').code).toBe(0);
  });

  it('a missing rendered file is bad input', () => {
    const other = tempDir();
    cpSync(join(dir, 'inventory'), join(other, 'inventory'), { recursive: true });
    const r = fwgen(other, 'query', '--from', 'a1', '--to', 'db');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('run `fwgen render`');
  });
});

describe('fwgen diff in a git repository of an inventory', () => {
  let repo: string;
  const inventory = () => readFileSync(join(repo, 'inventory/inventory.yaml'), 'utf8');
  const write = (text: string) => writeFileSync(join(repo, 'inventory/inventory.yaml'), text);

  beforeAll(() => {
    repo = tempDir();
    git(repo, 'init', '-q');
    writeFileSync(join(repo, 'README'), 'no inventory yet\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'empty');
    cpSync(join(ROOT, 'inventory'), join(repo, 'inventory'), { recursive: true });
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'inventory');
  });

  it('nothing changed: no access change, exit 0 even with --exit-code', () => {
    const r = fwgen(repo, 'diff', '--exit-code');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^HEAD \([0-9a-f]{7}\) -> working tree: 0 access changes, 0 rendered files changed\n$/);
  });

  it('the working tree against HEAD: a host joins; --exit-code exits 1', () => {
    write(inventory().replace('      db1: 198.51.100.21', '      db1: 198.51.100.21\n      db2: 198.51.100.22'));
    const r = fwgen(repo, 'diff', '--exit-code');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      "+ db2 joins db (198.51.100.22): it gets db's rules; it may reach every role on every port via eth1 (fleet trust)",
    );
    git(repo, 'commit', '-qam', 'db2');
  });

  it('two revisions, as Markdown for a pull request', () => {
    write(inventory().replace('ports: [tcp/8080]', 'ports: [tcp/8080, tcp/8443]'));
    git(repo, 'commit', '-qam', 'worker 8443');
    const r = fwgen(repo, 'diff', 'HEAD~1', 'HEAD', '--format', 'md');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('### fwgen diff: access from `HEAD~1 (');
    expect(r.stdout).toContain('```diff\n+ anyone may reach worker (2 hosts) on tcp/8443 (worker ports)\n```');
  });

  it('json: the changes with witnesses', () => {
    const d = json<DiffReport>(fwgen(repo, 'diff', 'HEAD~1', 'HEAD', '--format', 'json').stdout);
    expect(d.changes).toEqual([
      expect.objectContaining({ change: 'added', from: ['any'], to: ['worker'], port: 'tcp/8443', in: 'any' }),
    ]);
  });

  it('a revision without the inventory is an empty fleet: every host joins', () => {
    const r = fwgen(repo, 'diff', 'HEAD~3', 'HEAD~2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('= HEAD~3 (');
    expect(r.stdout).toContain(
      "+ db1 joins db (198.51.100.21): it gets db's rules; it may reach every role on every port via eth1 (fleet trust)",
    );
    // An IPv6-only host reaches the roles with IPv6 hosts.
    expect(r.stdout).toContain(
      "+ db6 joins db (2001:db8::21): it gets db's rules; it may reach db (2 hosts), metrics (2 hosts) and web (3 hosts)",
    );
  });

  it('templates are read at each revision', () => {
    mkdirSync(join(repo, 'templates/roles'), { recursive: true });
    writeFileSync(
      join(repo, 'templates/roles/db.njk'),
      '{% extends "base.rules.njk" %}{% block extra %}-A FWGEN-INPUT -s 192.0.2.7/32 -p tcp -m tcp --dport 9000 -j ACCEPT\n{% endblock %}',
    );
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'template');
    const r = fwgen(repo, 'diff', 'HEAD~1', 'HEAD');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      '+ 192.0.2.7 may reach db (3 hosts) on tcp/9000 (template rule "-A FWGEN-INPUT -s 192.0.2.7/32',
    );
  });

  it('--max-bytes cuts at a line boundary', () => {
    const r = fwgen(repo, 'diff', 'HEAD~4', 'HEAD', '--max-bytes', '120');
    expect(Buffer.byteLength(r.stdout)).toBeLessThanOrEqual(120);
    expect(r.stdout).toMatch(/\.\.\. \d+ more lines cut/);
  });

  it('bad input exits 2: an unknown revision, an invalid inventory at a revision (named REV:path:line)', () => {
    const unknown = fwgen(repo, 'diff', 'no-such-branch');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no-such-branch is not a git revision');
    write(`${inventory()}\n  broken: { hosts: { bad1: not-an-address } }\n`);
    git(repo, 'commit', '-qam', 'broken');
    const invalid = fwgen(repo, 'diff', 'HEAD~1', 'HEAD');
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/^HEAD:inventory\/inventory\.yaml:\d+:\d+: .*not-an-address/m);
    expect(fwgen(repo, 'diff', '--format', 'xml').code).toBe(2);
  });

  it('outside a git repository: exit 2', () => {
    const plain = tempDir();
    cpSync(join(ROOT, 'inventory'), join(plain, 'inventory'), { recursive: true });
    const r = fwgen(plain, 'diff');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not in a git repository');
  });
});
