// What issue 16's host-side and SSH hardening costs (a report: prints figures, asserts nothing).
//
//   node bench/host-security-bench.mjs [--runs 200]      # needs dist/ (npm run build), dash, and root
//
// 1. The read step as ship and status send it (lib.sh + sets.sh + read.sh), before (captures in
//    "$(mktemp)" and "$T.err", commit f19e9a6) and now (captures in shell variables, the rules folder
//    checked first): wall time per run under dash, reading this machine's filter table (read only).
// 2. The rules folder check (lib.sh `unsafe_folder`) alone, for /etc.
// 3. Host patterns: the old regular expression and the linear matcher (src/util/glob.ts) on a typical
//    name, and on `*a*a...*b` against a run of `a`s (the regular expression backtracks).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 200;
const { globMatch } = await import(join(ROOT, 'dist/util/glob.js'));

const git = (path) => execFileSync('git', ['-C', ROOT, 'show', `f19e9a6:${path}`], { encoding: 'utf8' });
const now = (path) => execFileSync('cat', [join(ROOT, path)], { encoding: 'utf8' });

const dir = mkdtempSync(join(tmpdir(), 'fwgen-bench-sec-'));
try {
  const rules = join(dir, 'etc/iptables.up.rules');
  execFileSync('mkdir', ['-m', '0755', join(dir, 'etc')]);
  writeFileSync(rules, '*filter\nCOMMIT\n');
  const step = (files) => files.join('\n');
  const before = step([git('remote/lib.sh'), git('remote/sets.sh'), git('remote/read.sh')]);
  const after = step([now('remote/lib.sh'), now('remote/sets.sh'), now('remote/read.sh')]);
  const time = (script, args) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < runs; i++) {
      const r = spawnSync('dash', ['-c', script, 'fwgen-read', ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`run failed: ${r.stderr}`);
    }
    return Number(process.hrtime.bigint() - t0) / 1e6 / runs;
  };
  const args = [rules, join(dir, 'etc/ip6tables.up.rules'), '0'];
  time(after, args);
  console.log(`read step, before: ${time(before, args).toFixed(2)} ms per run (${runs} runs)`);
  console.log(`read step, now:    ${time(after, args).toFixed(2)} ms per run`);
  const check = `${now('remote/lib.sh')}\ni=0; while [ $i -lt ${runs} ]; do unsafe_folder /etc >/dev/null; i=$((i + 1)); done`;
  const t0 = process.hrtime.bigint();
  spawnSync('dash', ['-c', check]);
  console.log(`unsafe_folder /etc: ${(Number(process.hrtime.bigint() - t0) / 1e6 / runs).toFixed(2)} ms per call`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const regex = (p) =>
  new RegExp(
    `^${p
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
const per = (f, n) => {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - t0) / n;
};
const typical = 'web*.example.net';
console.log(
  `typical pattern: regex ${per(() => regex(typical).test('web12.example.net'), 1e5).toFixed(0)} ns, ` +
    `linear ${per(() => globMatch(typical, 'web12.example.net', true), 1e5).toFixed(0)} ns per match`,
);
for (const n of [28, 30, 32, 40]) {
  const pattern = `${'*a'.repeat(20)}*b`;
  const name = 'a'.repeat(n);
  const linear = per(() => globMatch(pattern, name, true), 1000);
  const re = n <= 32 ? `${(per(() => regex(pattern).test(name), 1) / 1e6).toFixed(0)} ms` : 'not run';
  console.log(`(*a)x20*b vs ${n} a's: regex ${re}, linear ${(linear / 1000).toFixed(1)} µs`);
}
