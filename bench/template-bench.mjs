// Benchmark of `fwgen render` when every role has a template of its own (the templates run in fwgen's
// template sandbox): the 10,000-host, 200-role inventory of `npm run bench`, plus templates/roles/<role>.njk
// for each role, which loops over the role's hosts and allow entries and prints one extra rule.
//
//   node bench/template-bench.mjs [--hosts N] [--roles R] [--runs K] [--cli PATH/TO/main.js]
//
// --cli runs another build (e.g. an older checkout's dist/cli/main.js) on the same files, for before/after.
// Prints median/min/max wall time of whole-process renders: fresh (rendered/ deleted first) and re-render.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateInventory } from './gen-inventory.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'bench/out-templates');

const opts = { hosts: 10000, roles: 200, runs: 5, cli: join(ROOT, 'dist/cli/main.js') };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const key = argv[i].replace(/^--/, '');
  if (!(key in opts)) {
    process.stderr.write(`template-bench: unknown argument ${argv[i]}\n`);
    process.exit(2);
  }
  opts[key] = key === 'cli' ? resolve(argv[++i]) : Number(argv[++i]);
}

const TEMPLATE = `{% extends "base.rules.njk" %}
{% block extra -%}
{% for h in hosts %}# {{ role }} host {{ h }}
{% endfor %}{% for a in allow %}# allowed {{ a.cidr }} {{ a.port.proto }}/{{ a.port.dport }} ({{ a.via }})
{% endfor %}-A FWGEN-INPUT -s 192.0.2.7/32 -p tcp -m tcp --dport 9000 -m comment \
--comment "{{ role }} admin {{ fleet | length }}" -j ACCEPT
{% endblock %}
`;

rmSync(OUT, { recursive: true, force: true });
generateInventory(join(OUT, 'inventory/inventory.yaml'), { hosts: opts.hosts, roles: opts.roles, seed: 42 });
mkdirSync(join(OUT, 'templates/roles'), { recursive: true });
for (let r = 0; r < opts.roles; r++) writeFileSync(join(OUT, `templates/roles/role${r}.njk`), TEMPLATE);

function renderOnce() {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [opts.cli, 'render', '-i', 'inventory/inventory.yaml', '-o', 'rendered'], {
    cwd: OUT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) {
    process.stderr.write(`template-bench: render failed (exit ${r.status}):\n${r.stderr.slice(-4000)}\n`);
    process.exit(1);
  }
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
process.stdout.write(
  `fwgen render with ${opts.roles} role templates, ${opts.hosts} hosts, ${opts.runs} runs: ${opts.cli}\n`,
);
for (const [name, before] of [
  ['fresh', () => rmSync(join(OUT, 'rendered'), { recursive: true, force: true })],
  ['re-render', () => {}],
]) {
  const secs = [];
  for (let i = 0; i < opts.runs; i++) {
    before();
    secs.push(renderOnce());
  }
  const f = (x) => x.toFixed(3);
  process.stdout.write(
    `${name.padEnd(10)} median ${f(median(secs))} s  min ${f(Math.min(...secs))} s  max ${f(Math.max(...secs))} s\n`,
  );
}
