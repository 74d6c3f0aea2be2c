/**
 * Issue 16, finding 5: a small inventory must not be able to exhaust the controller. YAML aliases are
 * capped (the 16.5 KB "billion laughs" of the issue took 4.3 GB and a minute), and so are the rules an
 * inventory expands to (sources x ports, roles x fleet). Each refusal is exit 2 at the place in the
 * inventory that caused it. The benchmark's 10,000-host inventory stays far below both limits.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateInventory } from '../bench/gen-inventory.mjs';
import { renderProject } from '../src/cli/project.js';
import { InputError } from '../src/errors.js';
import { loadInventory, parseInventory } from '../src/inventory/load-inventory.js';
import { MAX_ALIAS_ENTRIES } from '../src/inventory/yaml-aliases.js';
import { countExpansion, MAX_RENDERED_RULES, MAX_ROLE_RULES } from '../src/resolve/expansion-bound.js';
import { inputErrorOf } from './support/input-error.js';
import { runFwgen } from './support/run-cli.js';

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fwgen-bounds-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A "billion laughs" of about 16.5 KB: `levels` lists, each aliasing the one before `width` times. */
function aliasBomb(levels: number, width: number): string {
  const lines = [
    'management: [203.0.113.0/28]',
    'roles:',
    '  web:',
    '    hosts: { web1: 198.51.100.11 }',
    '    allow:',
  ];
  lines.push(`      - from: &l0 [${Array(width).fill('web').join(', ')}]`, '        ports: [tcp/22]');
  for (let i = 1; i < levels; i++) {
    lines.push(
      `      - from: &l${i} [${Array(width)
        .fill(`*l${i - 1}`)
        .join(', ')}]`,
      '        ports: [tcp/22]',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The inventory as rendered by `fwgen render` in memory: the error it throws. */
function renderError(text: string, name: string): InputError {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, text);
  return inputErrorOf(() => renderProject({ inventory: file, out: join(tmp, `${name}-rendered`) }));
}

const lineOf = (text: string, needle: string): number => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('YAML aliases', () => {
  const bomb = aliasBomb(28, 95);

  it('the 16.5 KB alias bomb is refused at an alias, quickly (about 0.3 s of CPU here, bound 1.5 s)', () => {
    expect(bomb.length).toBeGreaterThan(16_000);
    expect(bomb.length).toBeLessThan(17_500);
    const started = process.cpuUsage();
    const err = inputErrorOf(() => parseInventory(bomb, 'bomb.yaml'));
    // CPU time, which other processes on a loaded CI machine do not inflate as they do wall time; before
    // the cap this took about a minute and 4.3 GB.
    const used = process.cpuUsage(started);
    expect((used.user + used.system) / 1000).toBeLessThan(1_500);
    expect(err.exitCode).toBe(2);
    expect(err.problems).toHaveLength(1);
    const [p] = err.problems;
    expect(p!.message).toMatch(/^YAML aliases add more than 1,000,000 entries .* passed at \*l\d+/);
    // Written out, the aliases of l1 add about 9,000 entries, those of l2 about 866,000: l3's first pass the limit.
    expect(p!.line).toBe(lineOf(bomb, '&l3 ['));
    expect(bomb.split('\n')[p!.line - 1]!.slice(p!.col - 1)).toMatch(/^\*l2,/);
  });

  it('fwgen validate refuses it with exit 2 and the position', async () => {
    writeFileSync(join(tmp, 'bomb.yaml'), bomb);
    const r = await runFwgen(tmp, ['validate', '-i', 'bomb.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^bomb\\.yaml:${lineOf(bomb, '&l3 [')}:\\d+: YAML aliases add more than`));
  });

  it('aliases that repeat small blocks, many times, are fine', () => {
    const hosts = Array.from(
      { length: 5000 },
      (_, i) => `      h${i}: { address: 198.18.${i >> 8}.${i & 255}, ssh: *ssh }`,
    );
    const text = [
      'defaults:',
      '  ssh: &ssh { user: deploy, port: 2222, sudo: true, known_hosts: ~/.ssh/fleet_known_hosts }',
      'management: [203.0.113.0/28]',
      'roles:',
      '  web:',
      '    hosts:',
      ...hosts,
      '',
    ].join('\n');
    expect(() => parseInventory(text, 'aliases.yaml')).not.toThrow();
    // Each of the 5,000 aliases adds the map's 4 entries: 20,000 in all, far below the limit.
    expect(MAX_ALIAS_ENTRIES).toBeGreaterThan(5000 * 4 * 10);
  });
});

describe('rules an inventory expands to', () => {
  it('a role of 1,000 hosts allowed to 1,001 ports is refused at that allow rule', () => {
    const ports = Array.from({ length: 1001 }, (_, i) => `tcp/${10000 + i}`).join(', ');
    const app = Array.from({ length: 1000 }, (_, i) => `      app${i}: 198.18.${i >> 8}.${(i & 255) + 0}`);
    const text = [
      'management: [203.0.113.0/28]',
      'roles:',
      '  app:',
      '    hosts:',
      ...app,
      '  db:',
      '    hosts: { db1: 198.51.100.20 }',
      '    allow:',
      '      - { from: [198.51.100.0/24], ports: [tcp/5432] }',
      `      - { from: [app], ports: [${ports}] }`,
      '',
    ].join('\n');
    const err = renderError(text, 'sources-x-ports');
    expect(err.exitCode).toBe(2);
    expect(err.problems).toHaveLength(1);
    const [p] = err.problems;
    expect(p!.message).toMatch(
      new RegExp(
        '^allow#2 of role "db" \\(1,000 source addresses × 1,001 ports\\) expands to 1,001,000 rules, ' +
          "the inventory's roles to 1,001,\\d{3} in all \\(expected at most 1,000,000",
      ),
    );
    expect(`${p!.line}:${p!.col}`).toBe(`${lineOf(text, '{ from: [app]')}:9`);
  });

  it('a monitoring rule counts once per role it goes into', () => {
    const roles = Array.from({ length: 101 }, (_, r) => [`  r${r}:`, `    hosts: { r${r}h: 198.19.${r}.1 }`]).flat();
    const mon = Array.from({ length: 1000 }, (_, i) => `      m${i}: 198.18.${i >> 8}.${i & 255}`);
    const ports = Array.from({ length: 10 }, (_, i) => `tcp/${9100 + i}`).join(', ');
    const text = [
      'management: [203.0.113.0/28]',
      'monitoring:',
      '  - { from: [192.0.2.0/24], ports: [udp/161] }',
      `  - { from: [mon], ports: [${ports}] }`,
      'roles:',
      '  mon:',
      '    hosts:',
      ...mon,
      ...roles,
      '',
    ].join('\n');
    const err = renderError(text, 'monitoring');
    const [p] = err.problems;
    expect(p!.message).toMatch(
      /^monitoring#2 \(1,000 source addresses × 10 ports, in each of 102 roles\) expands to 1,020,000 rules/,
    );
    expect(p!.line).toBe(lineOf(text, '{ from: [mon]'));
  });

  it('in ipset mode the same rule is one rule per port, and passes; unless a role template reads the entries', () => {
    const app = Array.from({ length: 1000 }, (_, i) => `      app${i}: 198.18.${i >> 8}.${i & 255}`);
    const ports = Array.from({ length: 1001 }, (_, i) => `tcp/${10000 + i}`).join(', ');
    const text = (sets: string) =>
      [
        `sets: ${sets}`,
        'management: [203.0.113.0/28]',
        'roles:',
        '  app:',
        '    hosts:',
        ...app,
        '  db:',
        '    hosts: { db1: 198.51.100.20 }',
        '    allow:',
        `      - { from: [app], ports: [${ports}] }`,
        '',
      ].join('\n');
    const inv = parseInventory(text('ipset'), 'ipset.yaml').inventory;
    expect(countExpansion(inv, () => false).roleRules).toBeLessThan(MAX_ROLE_RULES);
    expect(countExpansion(inv, () => true).roleRules).toBeGreaterThan(MAX_ROLE_RULES);
    expect(countExpansion(parseInventory(text('none'), 'none.yaml').inventory, () => true).roleRules).toBeGreaterThan(
      MAX_ROLE_RULES,
    );
  });

  it('4,500 roles each repeating a fleet of 4,500 addresses are refused at trust:, with the way out', () => {
    const roles = Array.from({ length: 4500 }, (_, r) => [
      `  r${r}:`,
      `    hosts: { h${r}: 198.18.${r >> 8}.${r & 255} }`,
    ]).flat();
    const text = ['management: [203.0.113.0/28]', 'trust: fleet', 'roles:', ...roles, ''].join('\n');
    const err = renderError(text, 'fleet');
    const [p] = err.problems;
    expect(p!.message).toMatch(
      new RegExp(
        "^every role's rules file repeats the fleet's addresses: 4,500 files would hold 20,2\\d\\d,\\d{3} rules " +
          '\\(expected at most 20,000,000; with `sets: ipset`',
      ),
    );
    expect(`${p!.line}:${p!.col}`).toBe('2:8');
    // The same inventory in ipset mode writes the fleet once: it passes the check.
    const ipset = parseInventory(text.replace('trust: fleet', 'trust: fleet\nsets: ipset'), 'ipset.yaml').inventory;
    expect(countExpansion(ipset, () => false).renderedRules).toBeLessThan(MAX_RENDERED_RULES);
  });

  it("the benchmark's 10,000-host inventory is far below both limits", () => {
    const file = join(tmp, 'bench/inventory.yaml');
    generateInventory(file, { hosts: 10000, roles: 200, seed: 42 });
    const inv = loadInventory(file).inventory;
    const { roleRules, renderedRules } = countExpansion(inv, () => true);
    expect(roleRules).toBeLessThan(MAX_ROLE_RULES / 100);
    expect(renderedRules).toBeLessThanOrEqual(MAX_RENDERED_RULES / 9);
    expect(readFileSync(file, 'utf8')).not.toContain('*');
  });
});
