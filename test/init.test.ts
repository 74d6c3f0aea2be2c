// `fwgen init`: a new operator's first commands. Runs init in an empty folder, installs the packed
// fwgen tarball there (as a user installs fwgen), and runs `npx fwgen render --check` and the steps
// of the workflow init wrote. Needs the npm registry or npm's cache for fwgen's dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Result {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe('fwgen init in an empty folder, then npm install of the packed fwgen', () => {
  let tmp = '';
  let repo = '';
  let init: Result;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'fwgen-init-'));
    repo = join(tmp, 'my-firewall');
    env = {
      ...process.env,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      RUNNER_TEMP: tmp,
      GITHUB_STEP_SUMMARY: join(tmp, 'summary.md'),
    };
    init = run(process.execPath, [CLI, 'init', 'my-firewall'], tmp);
  }, 60_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('writes the scaffold, renders rendered/ and prints the next three commands', () => {
    expect(init.code, init.stderr).toBe(0);
    const files = listFiles(repo);
    for (const f of [
      'inventory/inventory.yaml',
      'templates/README.md',
      'package.json',
      '.github/workflows/render.yml',
      '.gitignore',
    ]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('templates/'))).toEqual(['templates/README.md']);
    expect(files.filter((f) => /^rendered\/[^/]+\/iptables\.up\.rules$/.test(f)).length).toBeGreaterThan(0);
    expect(readFileSync(join(repo, 'templates/README.md'), 'utf8')).toContain('{% block extra %}');
    expect(readFileSync(join(repo, '.gitignore'), 'utf8').split('\n')).toContain('.fwgen/');
    // The scaffold explains trust: fleet against trust: none, where it is set.
    const scaffold = readFileSync(join(repo, 'inventory/inventory.yaml'), 'utf8');
    expect(scaffold).toMatch(/^# trust: fleet \(the default\): .*\n#   .*\n# trust: none: .*\n#   .*\ntrust: fleet$/m);
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(pkg.dependencies.fwgen).toBe(`file:${ROOT.replace(/\/$/, '')}`);
    // What init did and what comes next are its result: on stdout.
    expect(init.stdout).toContain('created inventory/inventory.yaml\n');
    const next = init.stdout.slice(init.stdout.indexOf('Next:')).trim().split('\n').slice(1, 4);
    expect(next.map((l) => l.trim().split(/ +#/)[0])).toEqual([
      'cd my-firewall && npm install',
      'npx fwgen render --check',
      'git init && git add . && git commit -m "Firewall inventory"',
    ]);
    // fwgen came from a folder, not a registry: the dependency CI cannot install is flagged.
    expect(init.stdout).toContain(`Before you push: package.json depends on fwgen as file:${ROOT.replace(/\/$/, '')}`);
    expect(init.stdout).toContain("which CI's `npm ci` cannot install: replace it with a version or a git URL");
    // The new repository is not inside another one (tmp is no git work tree).
    expect(init.stdout).not.toContain('is inside the git repository');
  });

  it('says so when the new repository would be nested in another (a checkout of fwgen, say)', () => {
    const outer = join(tmp, 'outer');
    run('mkdir', ['-p', outer], tmp);
    run('git', ['init', '-q', outer], tmp);
    const r = run(process.execPath, [CLI, 'init', 'inner'], outer);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${join(outer, 'inner')} is inside the git repository ${outer}`);
  });

  it('refuses to overwrite: a second init exits 2 and changes nothing', () => {
    const before = listFiles(repo).map((f) => [f, readFileSync(join(repo, f), 'utf8')]);
    const again = run(process.execPath, [CLI, 'init', repo], tmp);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('overwrites nothing');
    expect(listFiles(repo).map((f) => [f, readFileSync(join(repo, f), 'utf8')])).toEqual(before);
  });

  it('refuses a folder that holds any one of the files', () => {
    const other = join(tmp, 'has-gitignore');
    run('mkdir', ['-p', other], tmp);
    writeFileSync(join(other, '.gitignore'), 'mine\n');
    const r = run(process.execPath, [CLI, 'init', other], tmp);
    expect(r.code).toBe(2);
    expect(listFiles(other)).toEqual(['.gitignore']);
    expect(readFileSync(join(other, '.gitignore'), 'utf8')).toBe('mine\n');
  });

  describe('after npm install of the packed tarball', () => {
    let installed: Result;

    beforeAll(() => {
      const packed = run('npm', ['pack', '--pack-destination', tmp, '--loglevel=error', '--ignore-scripts'], ROOT);
      expect(packed.code, packed.stderr).toBe(0);
      const tarball = join(tmp, packed.stdout.trim().split('\n').pop()!);
      installed = run('npm', ['install', ...NPM_QUIET, tarball], repo, env);
    }, 300_000);

    it('installs, and the $schema line points at the installed schema', () => {
      expect(installed.code, installed.stderr).toBe(0);
      const first = readFileSync(join(repo, 'inventory/inventory.yaml'), 'utf8').split('\n')[0];
      const m = /^# yaml-language-server: \$schema=(.+)$/.exec(first);
      expect(m, first).not.toBeNull();
      const schema = resolve(repo, 'inventory', m![1]);
      expect(schema).toBe(join(repo, 'node_modules/fwgen/schema/inventory.schema.json'));
      expect((JSON.parse(readFileSync(schema, 'utf8')) as { $schema: string }).$schema).toContain('json-schema');
    });

    it('npx fwgen render --check passes on what init rendered', () => {
      const r = run('npx', ['--no-install', 'fwgen', 'render', '--check'], repo, env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('rendered/ is up to date');
    });

    it("the workflow's run steps: npm ci and the check pass; after an edit the check fails and shows the diff", () => {
      const wf = parse(readFileSync(join(repo, '.github/workflows/render.yml'), 'utf8')) as {
        jobs: { check: { steps: { run?: string; if?: string }[] } };
      };
      const steps = wf.jobs.check.steps.filter((s) => typeof s.run === 'string');
      const step = (pred: (s: { run?: string; if?: string }) => boolean) => steps.find(pred)!;
      const bash = (script: string) =>
        run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], repo, env);
      for (const args of [
        ['init', '-q'],
        ['add', '-A'],
      ])
        expect(run('git', args, repo, env).code).toBe(0);
      const normal = steps.filter((s) => !s.if);
      expect(normal.map((s) => s.run!.trim())).toEqual(['npm ci', 'npx fwgen render --check']);
      for (const s of normal) {
        const r = bash(s.run!.replace(/^npm ci$/, `npm ci ${NPM_QUIET.join(' ')}`));
        expect(r.code, `${s.run}\n${r.stderr}`).toBe(0);
      }
      const inv = join(repo, 'inventory/inventory.yaml');
      writeFileSync(
        inv,
        readFileSync(inv, 'utf8').replace(
          '      db1: 198.51.100.21',
          '      db1: 198.51.100.21\n      db2: 198.51.100.22',
        ),
      );
      const check = bash(step((s) => s.run!.trim() === 'npx fwgen render --check').run!);
      expect(check.code).toBe(1);
      const shown = bash(step((s) => Boolean(s.if?.includes('failure()'))).run!);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain('+-A FWGEN-INPUT -s 198.51.100.22/32');
      expect(readFileSync(join(tmp, 'summary.md'), 'utf8')).toContain('198.51.100.22');
    });

    it("the workflow's pull-request step writes the access diff to the job summary, with the installed fwgen", () => {
      const wf = parse(readFileSync(join(repo, '.github/workflows/render.yml'), 'utf8')) as {
        jobs: { check: { steps: { run?: string; if?: string }[] } };
      };
      const step = wf.jobs.check.steps.find((s) => s.run?.includes('fwgen diff'))!;
      expect(step.if).toContain("github.event_name == 'pull_request'");
      const git = (...args: string[]) =>
        expect(run('git', ['-c', 'user.email=ci@example.net', '-c', 'user.name=ci', ...args], repo, env).code).toBe(0);
      // The base of the pull request: what init wrote; its head: one host more.
      git('checkout', '-q', '--', 'inventory/inventory.yaml');
      git('add', '-A');
      git('commit', '-qm', 'base');
      const inv = join(repo, 'inventory/inventory.yaml');
      const text = readFileSync(inv, 'utf8');
      expect(text).toContain('w2: 198.51.100.32 }');
      writeFileSync(inv, text.replace('w2: 198.51.100.32 }', 'w2: 198.51.100.32, w3: 198.51.100.33 }'));
      git('commit', '-qam', 'w3');
      const summary = join(tmp, 'diff-summary.md');
      const r = run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', step.run!], repo, {
        ...env,
        GITHUB_STEP_SUMMARY: summary,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(summary, 'utf8')).toMatch(
        /^\+ w3 joins worker \(198\.51\.100\.33\): it gets worker's rules/m,
      );
    });

    it('fwgen init run from the installed package records a version range, not a path', () => {
      const r = run('npx', ['--no-install', 'fwgen', 'init', 'nested'], repo, env);
      expect(r.code, r.stderr).toBe(0);
      const pkg = JSON.parse(readFileSync(join(repo, 'nested/package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
      };
      const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
      expect(pkg.dependencies.fwgen).toBe(`^${version}`);
      expect(existsSync(join(repo, 'nested/rendered'))).toBe(true);
    });
  });
});
