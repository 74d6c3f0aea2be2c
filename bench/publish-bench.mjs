// Benchmark of `fwgen publish` against `fwgen render` of the same generated inventory (node start-up
// included in both), and what a publish writes.
//
//   node bench/publish-bench.mjs                  # 10,000 hosts in 200 roles
//   node bench/publish-bench.mjs --hosts 2000 --roles 50 [--runs 3]
//
// Scenarios (median of --runs):
//   render fresh       rendered/ deleted first: every file written (what CI does after a change)
//   render again       nothing changed: nothing written
//   publish first      an empty tree: every blob and manifest written and signed
//   publish again      nothing changed: no blob or manifest written (checked)
//   publish change     one host added (fleet trust: every role's rules change), rendered, then published
// Target (issue 18): publish <= 1.5 x render of the same inventory.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateInventory } from './gen-inventory.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const OUT = join(ROOT, 'bench/out-publish');

const opts = { hosts: 10000, roles: 200, runs: 3 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, '')] = Number(argv[i + 1]);

const run = (args) => {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: OUT, encoding: 'utf8', maxBuffer: 1 << 26 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`fwgen ${args.join(' ')} failed:\n${r.stderr.slice(-3000)}`);
  return { s, stderr: r.stderr };
};
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const times = (n, before, args) =>
  Array.from({ length: n }, () => {
    before();
    return run(args);
  });

/** Files under a folder with their size and modification time. */
function snapshot(dir) {
  const out = new Map();
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    const st = statSync(p);
    out.set(p, `${st.size} ${st.mtimeMs}`);
  }
  return out;
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const key = join(OUT, 'release');
spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench@fwgen', '-f', key]);
const signer = readFileSync(`${key}.pub`, 'utf8').trim();
const inventory = join(OUT, 'inventory/inventory.yaml');
const gen = (extraHosts = 0) =>
  generateInventory(inventory, { hosts: opts.hosts, roles: opts.roles, seed: 42, signer, extraHosts });
gen();
const render = ['render'];
const publish = ['publish', '--out', 'public', '--sign-key', key];
const renderFresh = times(opts.runs, () => rmSync(join(OUT, 'rendered'), { recursive: true, force: true }), render);
const renderAgain = times(opts.runs, () => {}, render);
const first = times(opts.runs, () => rmSync(join(OUT, 'public'), { recursive: true, force: true }), publish);
const before = snapshot(join(OUT, 'public'));
const again = times(opts.runs, () => {}, publish);
const after = snapshot(join(OUT, 'public'));
const unchanged = before.size === after.size && [...before].every(([p, v]) => after.get(p) === v);
const change = [];
for (let i = 1; i <= opts.runs; i++) {
  gen(i);
  run(render);
  change.push(run(publish));
}
const size = [...snapshot(join(OUT, 'public')).keys()].reduce((n, p) => n + statSync(p).size, 0);

const base = median(renderFresh.map((r) => r.s));
const cpu = cpus();
const rows = [
  ['scenario', 'median s', 'x render fresh', 'written'],
  ['render fresh', base.toFixed(3), '1.00', `${opts.roles} rules files`],
  [
    'render again',
    median(renderAgain.map((r) => r.s)).toFixed(3),
    (median(renderAgain.map((r) => r.s)) / base).toFixed(2),
    'nothing',
  ],
  ...[
    ['publish first', first],
    ['publish again', again],
    ['publish change', change],
  ].map(([name, rs]) => {
    const m = median(rs.map((r) => r.s));
    const w = rs[0].stderr.match(/\d+ new, \d+ refreshed, \d+ kept; \d+ blob\(s\) written \([0-9.]+ MB\)/)?.[0] ?? '?';
    return [name, m.toFixed(3), (m / base).toFixed(2), w];
  }),
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
process.stdout.write(
  `fwgen publish benchmark: ${opts.hosts} hosts in ${opts.roles} roles, ${opts.runs} runs per scenario\n` +
    `node ${process.version}, ${cpu.length} x ${cpu[0]?.model.trim()}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n\n` +
    rows
      .map((r) => r.map((c, i) => (i === 0 || i === 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '))
      .join('\n') +
    `\n\npublish again wrote nothing: ${unchanged ? 'yes' : 'NO'}; tree: ${(size / 1e6).toFixed(1)} MB` +
    `\ntarget: publish <= 1.5 x render fresh: ${Math.max(...[first, change].map((rs) => median(rs.map((r) => r.s)))) <= 1.5 * base ? 'PASS' : 'OVER'}\n`,
);
