// Benchmark of `fwgen query` and `fwgen diff` as whole processes (node start-up included), on the
// generated inventory of `npm run bench` (10,000 hosts in 200 roles, trust fleet), with `sets: none`
// and with `sets: ipset`.
//
//   npm run bench:access                      # 10,000 hosts in 200 roles, 5 runs each
//   npm run bench:access -- --hosts 2000 --roles 50 --runs 9
//
// Per mode, in bench/out-access-<mode>/ (a git repository): the inventory is generated, rendered and
// committed, then one host is added to a role in the working tree. Timed, --runs times each:
//   query host   fwgen query --from HOST --to HOST --port tcp/22 (two hosts of different roles)
//   query role   fwgen query --from 192.0.2.7 --to ROLE --port udp/161 (an allow rule's network, 50 hosts)
//   query cold   the host-to-host query without its inventory cache (.fwgen/cache removed before each run)
//   diff         fwgen diff (HEAD against the working tree: the one-host change)
// Prints median and minimum wall time, median CPU time (user + system) and peak RSS (GNU time's %U %S
// %M, when /usr/bin/time is GNU time), and the targets of issue 19 as PASS/OVER on the median: query
// <= 0.3 s, diff <= 2 s and <= 500 MB. Two floor rows time node's start-up alone and start-up + YAML
// parse + fleet merge (bench/render-floor.mjs), and the load average is printed: on a shared machine
// wall times depend on the load (the minimum is the run least disturbed; CPU time depends on it less).
// A report: exits 0 unless a run fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateInventory } from './gen-inventory.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const FLOOR = join(ROOT, 'bench/render-floor.mjs');
const TARGETS = { query: 0.3, diff: 2.0, diffMb: 500 };
const RSS_MARK = 'FWGEN_BENCH_MAXRSS_KB=';
const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'bench',
  GIT_AUTHOR_EMAIL: 'bench@example.net',
  GIT_COMMITTER_NAME: 'bench',
  GIT_COMMITTER_EMAIL: 'bench@example.net',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};

function parseArgs(argv) {
  const opts = { hosts: 10000, roles: 200, runs: 5 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const key = flag.replace(/^--/, '');
    if (!(key in opts)) fail(`unknown argument ${argv[i]}`, 2);
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 1) fail(`${flag} needs a positive integer`, 2);
    opts[key] = value;
  }
  return opts;
}

function fail(message, code = 1) {
  process.stderr.write(`access-bench: ${message}\n`);
  process.exit(code);
}

/** `/usr/bin/time` if it is GNU time (supports -f); else undefined and RSS is not measured. */
function findGnuTime() {
  const bin = '/usr/bin/time';
  if (!existsSync(bin)) return undefined;
  const r = spawnSync(bin, ['-f', `${RSS_MARK}%M`, process.execPath, '-e', ''], { encoding: 'utf8' });
  return r.status === 0 && r.stderr.includes(RSS_MARK) ? bin : undefined;
}

function sh(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, env: GIT_ENV, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** One fwgen process (or `node SCRIPT`): wall seconds, CPU seconds and peak RSS in KB (GNU time), stdout. */
function timeOnce(timeBin, args, cwd, okCodes) {
  const cli =
    args[0]?.endsWith('.mjs') || args[0] === '-e' ? [process.execPath, ...args] : [process.execPath, CLI, ...args];
  const [cmd, ...rest] = timeBin ? [timeBin, '-f', `${RSS_MARK}%M %U %S`, ...cli] : cli;
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, rest, { cwd, encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (!okCodes.includes(r.status)) fail(`fwgen ${args.join(' ')} exited ${r.status}:\n${r.stderr.slice(-3000)}`);
  const m = timeBin ? new RegExp(`${RSS_MARK}(\\d+) ([\\d.]+) ([\\d.]+)`).exec(r.stderr) : null;
  return {
    seconds,
    rss: m ? Number(m[1]) : undefined,
    cpu: m ? Number(m[2]) + Number(m[3]) : undefined,
    stdout: r.stdout,
  };
}

/** Generates, renders and commits the inventory; then adds one host to a role in the working tree. */
function prepare(out, mode, opts) {
  rmSync(out, { recursive: true, force: true });
  const inventory = join(out, 'inventory/inventory.yaml');
  generateInventory(inventory, { hosts: opts.hosts, roles: opts.roles, seed: 42, sets: mode });
  const render = spawnSync(process.execPath, [CLI, 'render'], { cwd: out, encoding: 'utf8' });
  if (render.status !== 0) fail(`render failed:\n${render.stderr}`);
  sh('git', ['init', '-q'], out);
  sh('git', ['add', '-A'], out);
  sh('git', ['commit', '-qm', 'bench inventory'], out);
  const text = readFileSync(inventory, 'utf8');
  // The generator never uses x.y.z.0: an address no host has.
  writeFileSync(inventory, text.replace(/^( {6}h0: .*)$/m, '$1\n      hbench: 198.18.0.0'));
  const hosts = [...text.matchAll(/^ {6}(h\d+): /gm)].map((m) => m[1]);
  return { from: hosts[Math.floor(hosts.length / 2)], to: hosts[123 % hosts.length], role: 'role3' };
}

function summarize(rows) {
  const sorted = [...rows].sort((a, b) => a.seconds - b.seconds);
  const median = sorted[Math.floor(sorted.length / 2)].seconds;
  const rss = rows.map((r) => r.rss).filter((x) => Number.isFinite(x));
  const cpu = rows
    .map((r) => r.cpu)
    .filter((x) => Number.isFinite(x))
    .sort((a, b) => a - b);
  return {
    median,
    min: sorted[0].seconds,
    cpu: cpu.length ? cpu[Math.floor(cpu.length / 2)] : undefined,
    rssMb: rss.length ? Math.max(...rss) / 1024 : undefined,
  };
}

const fmt = (n, digits = 2) => (n === undefined ? '-' : n.toFixed(digits));

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(CLI)) fail('dist/cli/main.js is missing: run `npm run build` first');
  const timeBin = findGnuTime();
  const lines = [];
  for (const mode of ['none', 'ipset']) {
    const out = join(ROOT, `bench/out-access-${mode}`);
    const { from, to, role } = prepare(out, mode, opts);
    const cases = [
      ['query host', ['query', '--from', from, '--to', to, '--port', 'tcp/22'], [0, 1], TARGETS.query],
      ['query role', ['query', '--from', '192.0.2.7', '--to', role, '--port', 'udp/161'], [0, 1], TARGETS.query],
      // The first query after an edit of the inventory: .fwgen/cache has no entry for it yet.
      ['query cold', ['query', '--from', from, '--to', to, '--port', 'tcp/22'], [0, 1], TARGETS.query, true],
      ['diff', ['diff'], [0], TARGETS.diff],
      // What no command on this inventory goes below on this machine, at this load: node's start-up, and
      // start-up + YAML parse + fleet merge (bench/render-floor.mjs).
      ['floor node', ['-e', ''], [0], undefined],
      ['floor load', [FLOOR, 'inventory/inventory.yaml'], [0], undefined],
    ];
    for (const [name, args, codes, target, cold] of cases) {
      const rows = Array.from({ length: opts.runs }, () => {
        if (cold) rmSync(join(out, '.fwgen'), { recursive: true, force: true });
        return timeOnce(timeBin, args, out, codes);
      });
      const s = summarize(rows);
      const ok = s.median <= target && (name !== 'diff' || s.rssMb === undefined || s.rssMb <= TARGETS.diffMb);
      const limits = name === 'diff' ? `<= ${target} s, <= ${TARGETS.diffMb} MB` : `<= ${target} s`;
      const verdict = target === undefined ? '' : `${ok ? 'PASS' : 'OVER'} (${limits})`;
      lines.push(
        [
          `${mode.padEnd(5)} ${name.padEnd(10)}`,
          fmt(s.median).padStart(7),
          fmt(s.min).padStart(7),
          fmt(s.cpu).padStart(7),
          fmt(s.rssMb, 0).padStart(8),
          verdict,
        ].join('  '),
      );
      if (name === 'diff') lines.push(`      ${rows[0].stdout.trim().split('\n').slice(0, 2).join('\n      ')}`);
    }
  }
  process.stdout.write(
    `fwgen query and diff, ${opts.hosts} hosts in ${opts.roles} roles, ${opts.runs} runs each; ` +
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n` +
      `${'mode  case'.padEnd(17)}  median s   min s   cpu s  peak MB  target (median)\n${lines.join('\n')}\n`,
  );
}

main();
