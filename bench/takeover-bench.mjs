// What taking over a big firewall costs, and giving it back: a host whose INPUT holds N hand-written
// rules (a university border host), taken over by a rendered file (all N removed) and given back by the
// undo (all N put back at their positions), through remote/txn.sh against the real kernel, with both
// iptables backends, in network namespaces of its own (deleted on exit). Needs root and `npm run build`.
//
//   node bench/takeover-bench.mjs [N=4000] [RUNS=3]      # or: npm run bench:takeover
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dist = new URL('../dist/', import.meta.url);
const { preserveMatcher } = await import(new URL('model/ownership.js', dist));
const { DEFAULT_PRESERVE } = await import(new URL('inventory/model.js', dist));
const { parseRuleset } = await import(new URL('model/parse.js', dist));
const { changeScript, planChange, undoScript } = await import(new URL('model/transaction.js', dist));
const TXN = new URL('../remote/txn.sh', import.meta.url).pathname;

const n = Number(process.argv[2] ?? 4000);
const runs = Number(process.argv[3] ?? 3);
const preserve = preserveMatcher(DEFAULT_PRESERVE);
const rules = Array.from(
  { length: n },
  (_, i) =>
    `-A INPUT -s 198.18.${(i >> 8) & 255}.${i & 255}/32 -p tcp -m tcp --dport ${[22, 80, 443][i % 3]} -j ACCEPT`,
);
const live = [
  '*filter',
  ':INPUT DROP [0:0]',
  ':FORWARD ACCEPT [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  ...rules,
  'COMMIT',
  '',
].join('\n');
const want =
  '*filter\n:FWGEN-INPUT - [0:0]\n-A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT\n' +
  '-A FWGEN-INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = (f) => {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
};

const dir = mkdtempSync(join(tmpdir(), 'fwgen-takeover-bench-'));
const namespaces = [];
const cleanup = () => {
  for (const ns of namespaces) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  namespaces.length = 0;
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

let scripts;
const plan = [];
for (let i = 0; i < runs; i++)
  plan.push(
    time(() => {
      const c = planChange(parseRuleset(live).ruleset, parseRuleset(want).ruleset, preserve);
      scripts = { change: changeScript(c), undo: undoScript(c, preserve) };
    }),
  );
writeFileSync(join(dir, 'live'), live);
writeFileSync(join(dir, 'change'), scripts.change);
writeFileSync(join(dir, 'undo'), scripts.undo);
console.log(
  `${n} rules in INPUT; medians of ${runs} runs (load average ${(await import('node:os')).loadavg()[0].toFixed(1)})`,
);
console.log(`plan (change and undo, pure TypeScript): ${median(plan).toFixed(0)} ms`);
for (const backend of ['nft', 'legacy']) {
  const ns = `fwtb-${process.pid}-${backend}`;
  execFileSync('ip', ['netns', 'add', ns]);
  namespaces.push(ns);
  const bin = join(dir, `bin-${backend}`);
  execFileSync('sh', [
    '-c',
    `mkdir -p ${bin}; for t in '' -save -restore; do ln -s /usr/sbin/iptables-${backend}$t ${bin}/iptables$t; done`,
  ]);
  const sh = (s) =>
    execFileSync('ip', ['netns', 'exec', ns, 'sh', '-c', `PATH=${bin}:$PATH; ${s}`], { encoding: 'utf8' });
  const take = [];
  const give = [];
  for (let i = 0; i < runs; i++) {
    sh(`iptables-restore < ${dir}/live`);
    take.push(time(() => sh(`. ${TXN}; txn_apply 4 ${dir}/change ${dir}`)));
    give.push(time(() => sh(`. ${TXN}; txn_apply 4 ${dir}/undo ${dir}`)));
    const back = sh('iptables-save -t filter | grep -c "^-A"').trim();
    if (Number(back) !== n) throw new Error(`${backend}: ${back} rules after the undo, expected ${n}`);
  }
  console.log(
    `${backend.padEnd(6)} take over (remove ${n}): ${median(take).toFixed(0)} ms; give back (put ${n} back): ${median(give).toFixed(0)} ms`,
  );
}
