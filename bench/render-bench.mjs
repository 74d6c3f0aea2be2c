// Benchmark of `fwgen render` as a whole process (node start-up included), on a generated large inventory.
//
//   npm run bench                         # 10,000 hosts in 200 roles
//   npm run bench -- --hosts 2000 --roles 50 [--runs 5]
//
// Scenarios, each run --runs times (default 5):
//   fresh     the output folder is deleted before every run, so every file is written
//   re-render nothing changed since the previous run, so nothing is written
//   floor*    node start-up + YAML parse + fleet merge alone, nothing else (bench/render-floor.mjs)
// Prints median/min/max wall time, peak RSS (via `/usr/bin/time -f %M` when available), files and MB written,
// and the target (median <= 1.0 s) as PASS/OVER. Then the same inventory with `sets: ipset` (targets: median
// <= 0.25 s, rendered/ <= 3 MB). It is a report: exits 0 unless a render run fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateInventory } from './gen-inventory.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
let OUT = join(ROOT, 'bench/out');
const CLI = join(ROOT, 'dist/cli/main.js');
const FLOOR = join(ROOT, 'bench/render-floor.mjs');
const TARGETS = { none: { seconds: 1.0 }, ipset: { seconds: 0.25, mb: 3 } };
const RSS_MARK = 'FWGEN_BENCH_MAXRSS_KB=';

function parseArgs(argv) {
  const opts = { hosts: 10000, roles: 200, runs: 5 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const key = flag.replace(/^--/, '');
    if (!(key in opts)) usage(`unknown argument ${argv[i]}`);
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 1) usage(`${flag} needs a positive integer`);
    opts[key] = value;
  }
  if (opts.roles > opts.hosts) usage('--roles must not exceed --hosts');
  return opts;
}

function usage(message) {
  process.stderr.write(
    `render-bench: ${message}\nusage: node bench/render-bench.mjs [--hosts N] [--roles R] [--runs K]\n`,
  );
  process.exit(2);
}

function ensureBuilt() {
  if (existsSync(CLI)) return;
  process.stderr.write('dist/cli/main.js is missing; running `npm run build`...\n');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(CLI)) {
    process.stderr.write('render-bench: `npm run build` failed\n');
    process.exit(1);
  }
}

/** `/usr/bin/time` if it is GNU time (supports -f); else undefined and RSS is not measured. */
function findGnuTime() {
  const bin = '/usr/bin/time';
  if (!existsSync(bin)) return undefined;
  const r = spawnSync(bin, ['-f', `${RSS_MARK}%M`, process.execPath, '-e', ''], { encoding: 'utf8' });
  return r.status === 0 && r.stderr.includes(RSS_MARK) ? bin : undefined;
}

/** One `fwgen render` process in bench/out; returns seconds, peak RSS (KB or undefined) and its summary. */
function renderOnce(timeBin, floor = false) {
  const cli = floor
    ? [process.execPath, FLOOR, 'inventory/inventory.yaml']
    : [process.execPath, CLI, 'render', '-i', 'inventory/inventory.yaml', '-o', 'rendered'];
  const [cmd, ...args] = timeBin ? [timeBin, '-f', `${RSS_MARK}%M`, ...cli] : cli;
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd: OUT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const stderr = r.stderr ?? '';
  if (r.error || r.status !== 0) {
    process.stderr.write(
      `render-bench: fwgen render failed (${r.error ?? `exit ${r.status ?? r.signal}`}):\n${stderr.slice(-4000)}\n`,
    );
    process.exit(1);
  }
  const rss = stderr.match(new RegExp(`${RSS_MARK}(\\d+)`));
  if (floor) return { seconds, rssKb: rss ? Number(rss[1]) : undefined, written: 0 };
  // render's summary is its result: on stdout.
  const summary = (r.stdout ?? '').match(/(\d+) added, (\d+) updated, (\d+) removed, (\d+) unchanged/);
  return {
    seconds,
    rssKb: rss ? Number(rss[1]) : undefined,
    written: summary ? Number(summary[1]) + Number(summary[2]) : undefined,
  };
}

/** Files and bytes under a folder. */
function folderSize(dir) {
  let files = 0;
  let bytes = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += statSync(join(e.parentPath, e.name)).size;
  }
  return { files, bytes };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function scenario(name, runs, timeBin, before, floor = false) {
  const results = [];
  for (let i = 0; i < runs; i++) {
    before();
    results.push(renderOnce(timeBin, floor));
  }
  const secs = results.map((r) => r.seconds);
  const rss = results.map((r) => r.rssKb).filter((x) => x !== undefined);
  const written = Math.max(...results.map((r) => r.written ?? 0));
  return {
    name,
    median: median(secs),
    min: Math.min(...secs),
    max: Math.max(...secs),
    rssMb: rss.length ? Math.max(...rss) / 1024 : undefined,
    written,
  };
}

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '))
    .join('\n');
}

const opts = parseArgs(process.argv.slice(2));
ensureBuilt();
const timeBin = findGnuTime();
const cpu = cpus();
process.stdout.write(
  `fwgen render benchmark: ${opts.hosts} hosts in ${opts.roles} roles, ${opts.runs} runs per scenario\n` +
    `node ${process.version}, ${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
);
for (const sets of ['none', 'ipset']) benchMode(sets, TARGETS[sets]);
if (!timeBin) process.stdout.write('peak RSS not measured: GNU /usr/bin/time not found\n');

function benchMode(sets, target) {
  OUT = join(ROOT, sets === 'none' ? 'bench/out' : `bench/out-${sets}`);
  const inventory = join(OUT, 'inventory/inventory.yaml');
  generateInventory(inventory, { hosts: opts.hosts, roles: opts.roles, seed: 42, sets });
  const rendered = join(OUT, 'rendered');
  const fresh = scenario('fresh', opts.runs, timeBin, () => rmSync(rendered, { recursive: true, force: true }));
  const output = folderSize(rendered);
  const again = scenario('re-render', opts.runs, timeBin, () => {});
  // What no render can go below here: node, the YAML parse and the fleet merge alone (bench/render-floor.mjs).
  const floor = scenario('floor*', opts.runs, timeBin, () => {}, true);
  const bytesWritten = {
    [fresh.name]: output.bytes,
    [again.name]: again.written === 0 ? 0 : undefined,
    [floor.name]: 0,
  };
  process.stdout.write(`\nsets: ${sets} (${(statSync(inventory).size / 1024).toFixed(0)} KB inventory)\n`);
  const rows = [
    [
      'scenario',
      'median s',
      'min s',
      'max s',
      'peak RSS MB',
      'files written',
      'MB written',
      `target <= ${target.seconds} s`,
    ],
  ];
  for (const s of [fresh, again, floor]) {
    const mb = bytesWritten[s.name];
    rows.push([
      s.name,
      s.median.toFixed(3),
      s.min.toFixed(3),
      s.max.toFixed(3),
      s.rssMb === undefined ? 'n/a' : s.rssMb.toFixed(1),
      String(s.written),
      mb === undefined ? '?' : (mb / 1024 / 1024).toFixed(3),
      s.median <= target.seconds ? 'PASS' : 'OVER',
    ]);
  }
  process.stdout.write(`${table(rows)}\n`);
  const size = `${output.files} files, ${(output.bytes / 1024 / 1024).toFixed(3)} MB in ${relative(ROOT, rendered)}/`;
  const sizeVerdict =
    target.mb === undefined
      ? ''
      : ` (target <= ${target.mb} MB: ${output.bytes <= target.mb * 1024 * 1024 ? 'PASS' : 'OVER'})`;
  process.stdout.write(`output: ${size}${sizeVerdict}\n`);
  process.stdout.write(
    '* floor: node start-up, js-yaml parse and cidr-tools fleet merge only (bench/render-floor.mjs)\n',
  );
}
