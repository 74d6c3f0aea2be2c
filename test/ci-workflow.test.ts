// The GitHub Actions workflow users copy (.github/workflows/render.yml): it is valid, it triggers on the
// right paths, and its steps do what they claim when run against a copy of this project.
// dist/ is built once by test/global-setup.ts.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
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
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isMap, isScalar, parse, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WORKFLOW = join(ROOT, '.github/workflows/render.yml');
const VALIDATOR = join(ROOT, 'node_modules/.bin/action-validator');
const CLI = join(ROOT, 'dist/cli/main.js');
const INVENTORY = 'inventory/inventory.yaml';
const TRIGGER_PATHS = [
  'inventory/**',
  'templates/**',
  'rendered/**',
  '.github/workflows/render.yml',
  'package.json',
  'package-lock.json',
];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Result {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `fwgen <args>` with the built CLI, in `cwd`. */
function fwgen(cwd: string, ...args: string[]): Result {
  return run(process.execPath, [CLI, ...args], { cwd });
}

/** Every file under `dir` (relative path -> content), to prove a command wrote nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[relative(dir, p).split('\\').join('/')] = readFileSync(p, 'utf8');
  }
  return out;
}

// ---- careful text edits of the inventory (keep the user's formatting; checked by re-parsing) -------------

function mapAt(text: string, path: string[]): YAMLMap {
  const node = parseDocument(text).getIn(path, true);
  if (!isMap(node) || !node.range) throw new Error(`${path.join('.')} is not a mapping in the inventory`);
  return node;
}

function lineStart(text: string, pos: number): number {
  return text.lastIndexOf('\n', pos - 1) + 1;
}

/** Position just after the line on which `end` lies (or `end` itself when it already is a line start). */
function afterLine(text: string, end: number): number {
  if (end > 0 && text[end - 1] === '\n') return end;
  const eol = text.indexOf('\n', end);
  return eol === -1 ? text.length : eol + 1;
}

/** Adds `key: valueText` (valueText: a one-line YAML value) to the mapping at `path`, block or flow style. */
function insertPair(text: string, path: string[], key: string, valueText: string): string {
  const map = mapAt(text, path);
  const pairs = map.items as Pair<Node, Node | null>[];
  let edited: string;
  if (map.flow) {
    const close = text.lastIndexOf('}', map.range![1]);
    const before = text.slice(0, close).trimEnd();
    const sep = pairs.length > 0 ? ', ' : ' ';
    edited = `${before}${sep}${key}: ${valueText} ${text.slice(close)}`;
  } else {
    const first = pairs[0]!.key;
    const indent = first.range![0] - lineStart(text, first.range![0]);
    const last = pairs.at(-1)!;
    const at = afterLine(text, (last.value ?? last.key).range![1]);
    const head = text.slice(0, at);
    edited = `${head}${head.endsWith('\n') ? '' : '\n'}${' '.repeat(indent)}${key}: ${valueText}\n${text.slice(at)}`;
  }
  const expected = parse(text) as Record<string, unknown>;
  let target: Record<string, unknown> = expected;
  for (const k of path) target = target[k] as Record<string, unknown>;
  target[key] = parse(valueText);
  expect(parse(edited), `inserting ${key} into ${path.join('.')}`).toEqual(expected);
  return edited;
}

/** Deletes the line(s) of `key` from the block mapping at `path`. */
function removePair(text: string, path: string[], key: string): string {
  const map = mapAt(text, path);
  if (map.flow) throw new Error(`${path.join('.')} is a flow mapping; removePair needs a block mapping`);
  const pairs = map.items as Pair<Node, Node | null>[];
  const i = pairs.findIndex((p) => isScalar(p.key) && String(p.key.value) === key);
  if (i < 0) throw new Error(`${key} not found in ${path.join('.')}`);
  const pair = pairs[i]!;
  const start = lineStart(text, pair.key.range![0]);
  const next = pairs[i + 1];
  const end = next ? lineStart(text, next.key.range![0]) : afterLine(text, (pair.value ?? pair.key).range![2]);
  const edited = text.slice(0, start) + text.slice(end);
  const expected = parse(text) as Record<string, unknown>;
  let target: Record<string, unknown> = expected;
  for (const k of path) target = target[k] as Record<string, unknown>;
  delete target[key];
  expect(parse(edited), `removing ${key} from ${path.join('.')}`).toEqual(expected);
  return edited;
}

/** An address in 198.51.100.0/24 that the inventory does not use yet. */
function unusedAddress(text: string, from = 200): string {
  for (let i = from; i < 255; i++)
    if (!new RegExp(`198\\.51\\.100\\.${i}(?![0-9])`).test(text)) return `198.51.100.${i}`;
  throw new Error('no free address in 198.51.100.0/24');
}

/** Every string listed under a `from:` anywhere in the inventory (roles and hosts that others reference). */
function referencedNames(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) referencedNames(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'from') for (const f of [v].flat()) out.add(String(f));
      else referencedNames(v, out);
    }
  }
  return out;
}

// ---- a copy of the project in a temp dir ------------------------------------------------------------------

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function copyProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fwgen-ci-'));
  temps.push(dir);
  for (const sub of ['inventory', 'rendered', 'templates']) {
    if (existsSync(join(ROOT, sub))) cpSync(join(ROOT, sub), join(dir, sub), { recursive: true });
  }
  return dir;
}

const roleNames = (text: string): string[] => Object.keys((parse(text) as { roles: Record<string, unknown> }).roles);

/** For the CLI tests: dist/ is built and the copies start from an up-to-date rendered/ (else nothing below means much). */
function requireBuiltAndUpToDate(): void {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: dist/ should have been built by test/global-setup.ts (npm run build)`);
  const r = fwgen(ROOT, 'render', '--check');
  if (r.code !== 0)
    throw new Error(
      `the repository's own rendered/ is not up to date with inventory/ (run \`npx fwgen render\`):\n${r.stderr}`,
    );
}

// ---- the workflow file ------------------------------------------------------------------------------------

interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
}

interface Workflow {
  on: Record<string, { paths?: string[] }>;
  permissions?: Record<string, string>;
  jobs: Record<string, { 'runs-on': string; steps: Step[] }>;
}

const workflow = (): Workflow => parse(readFileSync(WORKFLOW, 'utf8')) as Workflow;

function theJob(): { 'runs-on': string; steps: Step[] } {
  const jobs = Object.values(workflow().jobs);
  expect(jobs).toHaveLength(1);
  return jobs[0]!;
}

const runSteps = (): Step[] => theJob().steps.filter((s) => typeof s.run === 'string');
const checkStep = (): Step => runSteps().find((s) => s.run!.trim() === 'npx fwgen render --check')!;
const failureStep = (): Step => runSteps().find((s) => s.if?.includes('failure()'))!;

describe('.github/workflows/render.yml', () => {
  it('passes action-validator', () => {
    const r = run(VALIDATOR, [WORKFLOW]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('action-validator really checks: a broken copy fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwgen-wf-'));
    temps.push(dir);
    const good = readFileSync(WORKFLOW, 'utf8');
    const brokenCopies = {
      // schema error: a misspelt required key
      'misspelt.yml': good.replace(/^(\s+)runs-on:/m, '$1runs_on:'),
      // schema error: a step that has neither `uses` nor `run`
      'empty-step.yml': good.replace(/^(\s+)- run: npm ci$/m, '$1- name: npm ci'),
    };
    for (const [name, text] of Object.entries(brokenCopies)) {
      expect(text, `${name} differs from the original`).not.toBe(good);
      const path = join(dir, name);
      writeFileSync(path, text);
      const r = run(VALIDATOR, [path]);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/error/i);
    }
  });

  it('triggers on push and pull_request for the inventory, templates, rendered/ and its own inputs', () => {
    const wf = workflow();
    expect(Object.keys(wf.on).sort()).toEqual(['pull_request', 'push']);
    for (const event of ['push', 'pull_request']) {
      expect(wf.on[event]?.paths, event).toEqual(expect.arrayContaining(TRIGGER_PATHS));
    }
  });

  it('only reads the repository', () => {
    expect(workflow().permissions).toEqual({ contents: 'read' });
  });

  it('checks out, sets up Node 20 with the npm cache, runs npm ci, then fwgen render --check', () => {
    const job = theJob();
    expect(job['runs-on']).toBe('ubuntu-latest');
    const steps = job.steps;
    const idx = (pred: (s: Step) => boolean): number => steps.findIndex(pred);
    const checkout = idx((s) => s.uses === 'actions/checkout@v4');
    const setupNode = idx((s) => s.uses === 'actions/setup-node@v4');
    const ci = idx((s) => s.run?.trim() === 'npm ci');
    const check = idx((s) => s.run?.trim() === 'npx fwgen render --check');
    const onFailure = idx((s) => s.if?.includes('failure()') ?? false);
    expect(
      [checkout, setupNode, ci, check, onFailure].every((i) => i >= 0),
      JSON.stringify(steps, null, 2),
    ).toBe(true);
    expect(checkout).toBeLessThan(setupNode);
    expect(setupNode).toBeLessThan(ci);
    expect(ci).toBeLessThan(check);
    expect(check).toBeLessThan(onFailure);
    expect(String(steps[setupNode]!.with?.['node-version'])).toBe('20');
    expect(steps[setupNode]!.with?.cache).toBe('npm');
    // The failure step re-renders and shows the diff of rendered/ in the log.
    const script = steps[onFailure]!.run!;
    const lines = script.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
    expect(lines).toContain('npx fwgen render');
    expect(lines).toContain('git --no-pager diff --stat');
    expect(script).toContain('git --no-pager diff -- rendered/');
    expect(script.indexOf('npx fwgen render\n')).toBeLessThan(script.indexOf('git --no-pager diff'));
  });
});

describe('the access diff of a pull request in the job summary', () => {
  const diffStep = (): Step => runSteps().find((s) => s.run!.includes('fwgen diff'))!;

  it('checks out the merge commit with its parents, and runs fwgen diff HEAD^1 HEAD on pull requests only', () => {
    const checkout = theJob().steps.find((s) => s.uses === 'actions/checkout@v4')!;
    expect(checkout.with?.['fetch-depth']).toBe(2);
    const step = diffStep();
    expect(step, 'a step running fwgen diff').toBeDefined();
    expect(step.if).toContain("github.event_name == 'pull_request'");
    // It runs after a failed check too (the reviewer wants the access either way), not after a failed npm ci.
    expect(step.if).toContain('!cancelled()');
    expect(step.if).toContain("steps.deps.outcome == 'success'");
    expect(step.run).toMatch(
      /npx fwgen diff HEAD\^1 HEAD --format md --max-bytes \d+ \| tee -a "\$GITHUB_STEP_SUMMARY"/,
    );
  });

  it('cuts the summary well below GitHub`s 1 MiB limit for a step', () => {
    const max = Number(/--max-bytes (\d+)/.exec(diffStep().run!)![1]);
    expect(max).toBeGreaterThan(10_000);
    expect(max).toBeLessThanOrEqual(600_000);
  });

  it('executed in a checkout whose HEAD^1 is the base: the summary holds the access that changed', () => {
    requireBuiltAndUpToDate();
    const dir = copyProject();
    const bin = join(dir, '.bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'npx'),
      `#!/bin/sh\nif [ "$1" = fwgen ]; then shift; exec "${process.execPath}" "${CLI}" "$@"; fi\nexit 127\n`,
    );
    chmodSync(join(bin, 'npx'), 0o755);
    const summary = join(dir, 'summary.md');
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      GITHUB_STEP_SUMMARY: summary,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
    };
    writeFileSync(join(dir, '.gitignore'), '.bin/\nsummary.md\n');
    const git = (...args: string[]) => {
      const r = run('git', ['-c', 'user.email=ci@example.net', '-c', 'user.name=ci', ...args], { cwd: dir, env });
      expect(r.code, r.stderr).toBe(0);
    };
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'base');
    const inventory = readFileSync(join(dir, INVENTORY), 'utf8');
    const role = roleNames(inventory)[0]!;
    writeFileSync(
      join(dir, INVENTORY),
      insertPair(inventory, ['roles', role, 'hosts'], 'ci-new1', unusedAddress(inventory)),
    );
    git('commit', '-qam', 'a host joins');
    const r = run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', diffStep().run!], { cwd: dir, env });
    expect(r.code, r.stderr).toBe(0);
    const md = readFileSync(summary, 'utf8');
    expect(md).toContain('### fwgen diff: access from `HEAD^1 (');
    expect(md).toMatch(new RegExp(`^\\+ ci-new1 joins ${role} `, 'm'));
    expect(md.trimEnd().endsWith('```')).toBe(true);
    expect(r.stdout).toBe(md);
  });
});

// ---- the CLI in a copy of the project --------------------------------------------------------------------

describe('fwgen render --check in a copy of the project', () => {
  let dir: string;
  let inventory: string;
  beforeAll(requireBuiltAndUpToDate);
  beforeEach(() => {
    dir = copyProject();
    inventory = readFileSync(join(dir, INVENTORY), 'utf8');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0 on the untouched copy and writes nothing', () => {
    const before = snapshot(dir);
    const r = fwgen(dir, 'render', '--check');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rendered\/ is up to date/);
    expect(snapshot(dir)).toEqual(before);
  });

  it('a new host makes it exit 1 with the stale files and a diff; `render` fixes that', () => {
    const role = roleNames(inventory)[0]!;
    const address = unusedAddress(inventory);
    writeFileSync(join(dir, INVENTORY), insertPair(inventory, ['roles', role, 'hosts'], 'ci-new1', address));
    const before = snapshot(join(dir, 'rendered'));

    const stale = fwgen(dir, 'render', '--check');
    expect(stale.code, stale.stderr).toBe(1);
    // The report (each stale file and its diff) on stdout, the failure on stderr.
    const staleFiles = [...stale.stdout.matchAll(/^stale: (rendered\/\S+)$/gm)].map((m) => m[1]!);
    expect(staleFiles.length, stale.stdout).toBeGreaterThan(0);
    expect(staleFiles).toEqual(expect.arrayContaining([expect.stringMatching(/\/iptables\.up\.rules$/)]));
    for (const f of staleFiles) expect(existsSync(join(dir, f)), f).toBe(true);
    expect(stale.stdout).toMatch(new RegExp(`^\\+.*${address.replaceAll('.', '\\.')}/32`, 'm'));
    expect(stale.stderr).toMatch(/out of date/);
    expect(snapshot(join(dir, 'rendered')), '--check wrote nothing').toEqual(before);

    const write = fwgen(dir, 'render');
    expect(write.code, write.stderr).toBe(0);
    for (const f of staleFiles)
      expect(readFileSync(join(dir, f), 'utf8')).not.toBe(before[f.slice('rendered/'.length)]);
    expect(staleFiles.some((f) => readFileSync(join(dir, f), 'utf8').includes(address))).toBe(true);

    const again = fwgen(dir, 'render', '--check');
    expect(again.code, again.stderr).toBe(0);
  });

  it('an invalid inventory exits 2 (with --check and without) and writes nothing', () => {
    const role = roleNames(inventory)[0]!;
    writeFileSync(join(dir, INVENTORY), insertPair(inventory, ['roles', role, 'hosts'], 'ci-bad', 'not-an-address'));
    const before = snapshot(join(dir, 'rendered'));
    for (const args of [['render', '--check'], ['render']]) {
      const r = fwgen(dir, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/inventory\.yaml:\d+:\d+:/);
      expect(r.stderr).not.toMatch(/internal error/);
    }
    expect(snapshot(join(dir, 'rendered'))).toEqual(before);
  });

  it('a removed role makes --check report its files as extra; `render` removes them', () => {
    const referenced = referencedNames(parse(inventory));
    const roles = roleNames(inventory);
    const role = roles.find((r) => !referenced.has(r));
    expect(role, `a role that no rule references, among ${roles.join(', ')}`).toBeDefined();
    expect(roles.length).toBeGreaterThan(1);
    const roleFiles = readdirSync(join(dir, 'rendered', role!))
      .filter((f) => f.endsWith('.up.rules'))
      .sort();
    expect(roleFiles).toContain('iptables.up.rules');
    writeFileSync(join(dir, INVENTORY), removePair(inventory, ['roles'], role!));

    const check = fwgen(dir, 'render', '--check');
    expect(check.code, check.stderr).toBe(1);
    const extra = [...check.stdout.matchAll(/^extra: (rendered\/\S+)$/gm)].map((m) => m[1]!).sort();
    expect(extra).toEqual(roleFiles.map((f) => `rendered/${role}/${f}`));
    expect(existsSync(join(dir, 'rendered', role!))).toBe(true);

    const write = fwgen(dir, 'render');
    expect(write.code, write.stderr).toBe(0);
    expect(existsSync(join(dir, 'rendered', role!)), `rendered/${role}/ is gone`).toBe(false);
    for (const other of roles.filter((r) => r !== role))
      expect(existsSync(join(dir, 'rendered', other, 'iptables.up.rules'))).toBe(true);
    expect(fwgen(dir, 'render', '--check').code).toBe(0);
  });
});

// ---- the workflow's own `run:` scripts, in bash, in a git checkout of the copy ---------------------------

describe("the workflow's run steps, executed", () => {
  let dir: string;
  let bin: string;
  let env: NodeJS.ProcessEnv;
  let summary: string;

  beforeAll(() => {
    requireBuiltAndUpToDate();
    dir = copyProject();
    // `npx fwgen` resolves to this repository's build, as it would to the installed package in a user's repo.
    bin = join(dir, '.bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'npx'),
      `#!/bin/sh\nif [ "$1" = fwgen ]; then shift; exec "${process.execPath}" "${CLI}" "$@"; fi\necho "npx shim: unexpected $*" >&2; exit 127\n`,
    );
    chmodSync(join(bin, 'npx'), 0o755);
    const runnerTemp = join(dir, '.runner-temp');
    mkdirSync(runnerTemp);
    summary = join(runnerTemp, 'step-summary.md');
    env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      RUNNER_TEMP: runnerTemp,
      GITHUB_STEP_SUMMARY: summary,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
    };
    // A "checkout": every file tracked (staged; no commit needed for `git diff`).
    writeFileSync(join(dir, '.gitignore'), '.bin/\n.runner-temp/\n');
    for (const args of [
      ['init', '-q'],
      ['add', '-A'],
    ]) {
      const r = run('git', args, { cwd: dir, env });
      expect(r.code, r.stderr).toBe(0);
    }
  });

  /** Runs a step's script the way GitHub's default `bash` shell does. */
  const runStep = (step: Step): Result =>
    run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', step.run!], { cwd: dir, env });

  it('the check step passes on an up-to-date checkout', () => {
    const r = runStep(checkStep());
    expect(r.code, r.stderr).toBe(0);
  });

  it('after an inventory edit the check step fails and the failure step shows the rendered diff', () => {
    const inventory = readFileSync(join(dir, INVENTORY), 'utf8');
    const role = roleNames(inventory)[0]!;
    const hostAddress = unusedAddress(inventory);
    const roleAddress = unusedAddress(inventory, Number(hostAddress.split('.')[3]) + 1);
    let edited = insertPair(inventory, ['roles', role, 'hosts'], 'ci-new1', hostAddress);
    edited = insertPair(edited, ['roles'], 'ci-role', `{ hosts: { ci-h1: ${roleAddress} } }`);
    writeFileSync(join(dir, INVENTORY), edited);

    const check = runStep(checkStep());
    expect(check.code, check.stderr).toBe(1);
    expect(check.stdout).toContain('missing: rendered/ci-role/iptables.up.rules');

    const step = failureStep();
    const shown = runStep(step);
    expect(shown.code, shown.stderr).toBe(0);
    // diff --stat, then the diff itself; the new role's (untracked) files are included.
    expect(shown.stdout).toMatch(/rendered\/ci-role\/iptables\.up\.rules\s+\|\s+\d+ \+/);
    expect(shown.stdout).toMatch(/files? changed/);
    expect(shown.stdout).toMatch(new RegExp(`^\\+.*${hostAddress.replaceAll('.', '\\.')}/32`, 'm'));
    expect(shown.stdout).toContain('+++ b/rendered/ci-role/iptables.up.rules');
    if (step.run!.includes('GITHUB_STEP_SUMMARY')) {
      const md = readFileSync(summary, 'utf8');
      expect(md).toContain('```diff');
      expect(md).toContain(hostAddress);
      expect(md.trimEnd().endsWith('```')).toBe(true);
    }

    // The failure step re-rendered, so the check now passes (what committing its result would give).
    expect(runStep(checkStep()).code).toBe(0);
    expect(statSync(join(dir, 'rendered/ci-role/iptables.up.rules')).isFile()).toBe(true);
  });
});

describe('the fwgen command, as the README and the workflow run it', () => {
  it('is executable and runs through npx after a build', () => {
    expect(statSync(join(ROOT, 'dist/cli/main.js')).mode & 0o111).not.toBe(0);
    const r = spawnSync('npx', ['--no-install', 'fwgen', '--version'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });
});
