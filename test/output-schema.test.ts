// Every command's --json against its documented shape (schema/output.schema.json, README "JSON output"):
// here the commands that need no host (render, validate, doctor --offline, log, remove --forget) and the
// builders of the others' JSON; test/e2e/operator.test.ts parses ship, rollback, remove, status, backups
// and doctor on real hosts. The schema itself is checked to be strict enough to fail.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportJson } from '../src/cli/run-output.js';
import { orphanedHosts } from '../src/status/orphans.js';
import { outputProblems } from './support/output-schema.js';

const CLI = resolve('dist/cli/main.js');

describe('--json of the commands that need no host', () => {
  let dir = '';
  const fwgen = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const json = (...args: string[]) => {
    const r = fwgen(...args);
    expect(
      r.stdout.trim().startsWith('{') || r.stdout.trim().startsWith('['),
      `${args.join(' ')}: ${r.stdout}${r.stderr}`,
    ).toBe(true);
    return JSON.parse(r.stdout) as unknown;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-json-'));
    mkdirSync(join(dir, 'inventory'));
    writeFileSync(
      join(dir, 'inventory/inventory.yaml'),
      `defaults: { interface: eth1 }
management: [203.0.113.0/28]
roles:
  web: { public: true, hosts: { web1: 198.51.100.11, web2: 198.51.100.12 } }
  db: { allow: [{ from: [web], ports: [tcp/5432] }], hosts: { db1: 198.51.100.21 } }
`,
    );
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('render, render --check', () => {
    expect(outputProblems('render', json('render', '--json'))).toEqual([]);
    expect(outputProblems('render', json('render', '--check', '--json'))).toEqual([]);
    // Without --json: the result on stdout ("1 file", not "1 files"), the shadowed rule warned on stderr.
    const text = fwgen('render', '--role', 'db');
    expect(text.stdout).toBe('rendered 1 file into rendered/: 0 added, 0 updated, 0 removed, 1 unchanged\n');
    expect(text.stderr).toContain(
      'inventory/inventory.yaml: warning: role db allow#1 (from web to tcp/5432) is shadowed on eth1 by fleet trust',
    );
    expect(fwgen('validate').stdout).toBe('inventory/inventory.yaml: valid (2 roles, 3 hosts, 1 warning)\n');
  });

  it('validate: with the shadowed allow rule as a warning', () => {
    const v = json('validate', '--json');
    expect(outputProblems('validate', v)).toEqual([]);
    expect(v).toMatchObject({ valid: true, roles: 2, hosts: 3 });
    expect((v as { warnings: string[] }).warnings.join('\n')).toContain('is shadowed on eth1 by fleet trust');
  });

  it('doctor --offline', () => {
    expect(outputProblems('doctor', json('doctor', '--offline', '--json'))).toEqual([]);
  });

  it('remove --forget, then log (one object per line)', () => {
    const log = join(dir, '.fwgen/deploy.log');
    mkdirSync(join(dir, '.fwgen'), { recursive: true });
    const shipped = {
      time: '2026-11-21T10:00:00.000Z',
      action: 'ship',
      run: '20261121T100000Z-abcdef',
      who: 'me@here',
      inventory: 'inventory/inventory.yaml',
      commit: null,
      hosts: [{ host: 'old9', role: 'web', outcome: 'applied', reason: 'ok', backup: '20261121T100000Z', rules: 'd' }],
    };
    writeFileSync(log, `${JSON.stringify(shipped)}\n`);
    expect(outputProblems('forget', json('remove', '--host', 'old9', '--forget', '--json'))).toEqual([]);
    const lines = fwgen('log', '--json').stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(outputProblems('logEntry', JSON.parse(l))).toEqual([]);
    // --forget refuses a host that is still in the inventory.
    expect(fwgen('remove', '--host', 'web1', '--forget').code).toBe(2);
  });
});

describe('the JSON the host commands build', () => {
  it('a ship report, and orphaned status rows', () => {
    const plan = {
      action: 'ship' as const,
      stages: [],
      staged: false,
      maxFailures: 0,
      concurrency: 1,
      settings: {} as never,
      origin: { who: 'me', inventory: 'i', commit: null },
    };
    const report = {
      id: '20261121T100000Z-abcdef',
      action: 'ship' as const,
      dryRun: false,
      succeeded: true,
      results: [
        {
          host: 'a',
          role: 'web',
          outcome: 'applied' as const,
          reason: 'ok',
          ms: 3,
          stage: 'all',
          backup: '20261121T100000Z',
        },
      ],
    };
    expect(outputProblems('run', reportJson(report, plan))).toEqual([]);
    const orphans = orphanedHosts(
      [
        {
          time: 't',
          action: 'ship',
          run: 'r',
          who: 'w',
          inventory: 'i',
          commit: null,
          hosts: [{ host: 'x', role: 'web', outcome: 'applied', reason: '' }],
        },
      ],
      new Set(),
    );
    expect(outputProblems('status', orphans)).toEqual([]);
  });

  it('the schema fails what it should: a number as a string, a missing field, an unknown outcome', () => {
    expect(
      outputProblems('backups', {
        backups: [{ host: 'a', role: 'r', ts: '20261121T100000Z', size: '12' }],
        unreachable: [],
      }),
    ).not.toEqual([]);
    expect(
      outputProblems('status', [
        { host: 'a', role: 'r', state: 'in-sync', backups: 0, foreign: [], foreignRules: [], drift: [] },
      ]),
    ).toEqual(["/0 must have required property 'armed'"]);
    expect(outputProblems('render', [{ path: 'x', status: 'gone' }])).not.toEqual([]);
  });
});
