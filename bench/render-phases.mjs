// Where a cold `fwgen render` spends its time, phase by phase, each in a fresh process (as a real render).
//
//   npm run bench:phases                       # the ipset-mode inventory of `npm run bench` (10,000 hosts)
//   npm run bench:phases -- --sets none --runs 9
//
// Each run is a child process timing: node's own start-up (until this script runs), loading fwgen's modules,
// loading the inventory (YAML parse, schema check, normalizing), resolving, rendering and comparing with the
// output folder (nothing is written); then the same phases again in the same process (code compiled and
// optimized by V8 by then). A second child per run times only the YAML parse and the schema check, cold,
// to split the load. Prints the minimum of each phase over the runs (the least disturbed by other load).
// A report: exits 0 unless a run fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateInventory } from './gen-inventory.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PHASES = ['start-up', 'modules', 'load', 'resolve', 'render', 'compare'];

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4]);
else if (process.argv[2] === '--parse-child') await parseChild(process.argv[3]);
else parent(process.argv.slice(2));

function parent(argv) {
  const opts = { sets: 'ipset', runs: 7, hosts: 10000, roles: 200 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts)) fail(`unknown argument ${argv[i]}`);
    opts[key] = key === 'sets' ? argv[++i] : Number(argv[++i]);
  }
  if (!['none', 'ipset'].includes(opts.sets)) fail('--sets is none or ipset');
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) fail('run `npm run build` first');
  const out = join(ROOT, `bench/out-phases-${opts.sets}`);
  const inventory = join(out, 'inventory/inventory.yaml');
  generateInventory(inventory, { hosts: opts.hosts, roles: opts.roles, seed: 42, sets: opts.sets });
  const cold = [];
  const warm = [];
  const parse = [];
  const run = (args) => {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8' });
    if (r.status !== 0) fail(`a run failed:\n${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  for (let i = 0; i < opts.runs; i++) {
    const { first, second } = run(['--child', inventory, join(out, 'rendered')]);
    cold.push(first);
    warm.push(second);
    parse.push(run(['--parse-child', inventory]));
  }
  const min = (rows, k) => Math.min(...rows.map((r) => r[k] ?? Infinity));
  process.stdout.write(
    `fwgen render phases, ms (minimum of ${opts.runs} processes): ${opts.hosts} hosts, ${opts.roles} roles, ` +
      `sets: ${opts.sets}; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
  );
  const rows = [['phase', 'cold', 'again in-process'], ...PHASES.map((p) => [p, fmt(min(cold, p)), fmt(min(warm, p))])];
  const sum = (rows, keys) => keys.reduce((n, k) => n + min(rows, k), 0);
  rows.push(['total', fmt(sum(cold, PHASES)), fmt(sum(warm, PHASES.slice(2)))]);
  rows.push(['(load: YAML parse alone)', fmt(min(parse, 'yaml')), '']);
  rows.push(['(load: schema check alone)', fmt(min(parse, 'schema')), '']);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows)
    process.stdout.write(`${r.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ')}\n`);
}

function fmt(ms) {
  return Number.isFinite(ms) ? ms.toFixed(1) : '-';
}

function fail(message) {
  process.stderr.write(`render-phases: ${message}\n`);
  process.exit(2);
}

/** One cold pass and one warm pass through fwgen's render pipeline, as `fwgen render` runs it. */
async function child(inventoryPath, outDir) {
  const bootDone = performance.now();
  const dist = (p) => join(ROOT, 'dist', p);
  const t = performance.now();
  const { parseInventory } = await import(dist('inventory/load-inventory.js'));
  const { resolvePolicies } = await import(dist('resolve/resolve-policy.js'));
  const { renderPolicies } = await import(dist('render/render-role.js'));
  const { loadTemplates, findUserTemplatesDir } = await import(dist('render/templates.js'));
  const { planOutput } = await import(dist('output/write-rendered.js'));
  const modules = performance.now() - t;
  const pass = () => {
    const times = {};
    let last = performance.now();
    const lap = (name) => {
      const now = performance.now();
      times[name] = now - last;
      last = now;
    };
    const loaded = parseInventory(readFileSync(inventoryPath, 'utf8'), inventoryPath);
    lap('load');
    const templates = loadTemplates(findUserTemplatesDir(loaded.inventory.dir));
    const policies = resolvePolicies(loaded.inventory, () => 'base.rules.njk');
    lap('resolve');
    const files = renderPolicies(policies, templates, { inventory: 'inventory/inventory.yaml', version: '0' });
    lap('render');
    planOutput(files, outDir);
    lap('compare');
    return times;
  };
  const first = { 'start-up': bootDone, modules, ...pass() };
  const second = pass();
  process.stdout.write(JSON.stringify({ first, second }));
}

/** The YAML parse and the schema check of the inventory, cold, as the load does them. */
async function parseChild(inventoryPath) {
  const { default: jsYaml } = await import('js-yaml');
  const { checkSchema } = await import(join(ROOT, 'dist/inventory/schema-check.js'));
  const text = readFileSync(inventoryPath, 'utf8');
  const t0 = performance.now();
  const data = jsYaml.load(text, { schema: jsYaml.CORE_SCHEMA });
  const t1 = performance.now();
  checkSchema(data);
  process.stdout.write(JSON.stringify({ yaml: t1 - t0, schema: performance.now() - t1 }));
}
