/**
 * Benchmark of `fwgen ship` as a whole process (node start-up included) against a 50-host fleet of
 * network namespaces, each with a real sshd (test/support/lab.ts). Needs root.
 *
 *   npm run bench:ship
 *   SHIP_BENCH_RUNS=9 npm run bench:ship        # runs per scenario (default 5)
 *   SHIP_BENCH_PROFILE=1 npm run bench:ship     # also: one host alone, --concurrency 1 / 50, `render --check`,
 *                                               # and the lab's floor (a bare ssh2 client, one connection per host)
 *
 * Scenarios, each run SHIP_BENCH_RUNS times, timing `node dist/cli/main.js ship --role all --json`
 * (default --concurrency 10 and --timeout):
 *   fresh      every host gets new rules: the inventory alternates between two variants that differ
 *              in one monitoring port (shipped with every role), re-rendered before each run (not
 *              timed), so every host goes through test, backup, dead-man switch, apply and confirm.
 *   unchanged  nothing changed since the previous ship: every host reports `unchanged`.
 * Prints median/min/max wall time, the fwgen process's CPU time and peak RSS (GNU /usr/bin/time),
 * and the targets as PASS/OVER. The test asserts only that every run succeeded, not the targets.
 *
 * Addresses: 198.18.60.0/24 (hosts .1-.50, controller .254); no other test file may use that /24.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { cleanupStaleLabs, createLab, labPrereqs, type Lab } from '../test/support/lab.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const NET = '198.18.60';
const PREFIX = 'fwsb';
const ROLES = ['web', 'app', 'db', 'cache', 'queue'] as const;
const PER_ROLE = 10;
const HOSTS = ROLES.length * PER_ROLE;
const RUNS = positiveEnv('SHIP_BENCH_RUNS', 5);
const PROFILE = !!process.env.SHIP_BENCH_PROFILE;
const TARGET = { fresh: 1.5, unchanged: 0.6, rssMb: 150 };
const TIME_BIN = '/usr/bin/time';
const MARK = 'FWGEN_SHIP_BENCH=';

interface HostRow {
  host: string;
  role: string;
  outcome: string;
  reason: string;
  ms: number;
}

interface Run {
  code: number;
  seconds: number;
  rssKb?: number;
  cpuS?: number;
  /** CPU of the lab's sshd listeners and everything they started (the "remote" side) during the run */
  labCpuS?: number;
  /** CPU the whole machine spent (all cores), and its number of cores' worth of idle, during the run */
  machineBusyS?: number;
  machineIdleS?: number;
  stdout: string;
  stderr: string;
  results: HostRow[];
}

interface Summary {
  name: string;
  runs: Run[];
}

function positiveEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${v} is not a positive integer`);
  return n;
}

const out = (s: string): void => void process.stdout.write(s);

const CLK_TCK = 100; // USER_HZ on Linux

/** Busy and idle CPU seconds of the whole machine since boot (all cores). */
function machineCpu(): { busy: number; idle: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const idle = f[3]! + f[4]!;
  return { busy: (f.reduce((a, b) => a + b, 0) - idle) / CLK_TCK, idle: idle / CLK_TCK };
}

/**
 * CPU seconds of the lab's sshd listeners including their reaped descendants (per-connection sshd,
 * the shell and every command fwgen's scripts run): the work the "remote" hosts do, which in the lab
 * competes for the same cores as fwgen. Dead-man `setsid` processes escape this count (they are
 * killed at confirmation, mostly asleep).
 */
function labCpu(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      /* gone */
    }
  }
  return ticks / CLK_TCK;
}

/** PIDs of the sshd listeners of lab `id` (their command line names the lab's config). */
function labSshdPids(lab: Lab): number[] {
  const nsInos = new Set<number>();
  for (const h of lab.hosts.values()) {
    try {
      nsInos.add(statSync(`/run/netns/${h.ns}`).ino);
    } catch {
      /* no namespace */
    }
  }
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (!readFileSync(`/proc/${e}/cmdline`, 'utf8').includes('sshd_config_lab')) continue;
      const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${e}/ns/net`));
      if (m && nsInos.has(Number(m[1]))) pids.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function ensureBuilt(): void {
  if (existsSync(CLI)) return;
  out('ship-bench: dist/cli/main.js is missing; running `npm run build`...\n');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0 || !existsSync(CLI)) throw new Error(`ship-bench: \`npm run build\` failed:\n${r.stdout}${r.stderr}`);
}

/** GNU time (supports -f)? Then RSS and CPU of the fwgen process are measured. */
function haveGnuTime(): boolean {
  if (!existsSync(TIME_BIN)) return false;
  const r = spawnSync(TIME_BIN, ['-f', `${MARK}%M`, process.execPath, '-e', ''], { encoding: 'utf8' });
  return r.status === 0 && r.stderr.includes(MARK);
}

/** One fwgen process in `cwd`. */
function fwgen(cwd: string, args: string[], timed: boolean, sshdPids: number[] = []): Promise<Run> {
  return command(cwd, [process.execPath, CLI, ...args], timed, sshdPids);
}

/** One process (argv) in `cwd`, timed from spawn to exit, under GNU time when `timed`; JSON stdout parsed when present. */
function command(cwd: string, cli: string[], timed: boolean, sshdPids: number[] = []): Promise<Run> {
  const { SSH_AUTH_SOCK: _agent, ...env } = process.env;
  const [cmd, ...argv] = timed ? [TIME_BIN, '-f', `${MARK}%M %U %S`, ...cli] : cli;
  return new Promise((done, fail) => {
    const lab0 = labCpu(sshdPids);
    const m0 = machineCpu();
    const start = process.hrtime.bigint();
    const child = spawn(cmd!, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const m1 = machineCpu();
      const lab1 = labCpu(sshdPids);
      let results: HostRow[] = [];
      try {
        results = JSON.parse(stdout) as HostRow[];
      } catch {
        /* not JSON (failed early, or not a --json command) */
      }
      const m = new RegExp(`${MARK}(\\d+) ([\\d.]+) ([\\d.]+)`).exec(stderr);
      done({
        code: code ?? 128,
        seconds,
        ...(m ? { rssKb: Number(m[1]), cpuS: Number(m[2]) + Number(m[3]) } : {}),
        ...(sshdPids.length ? { labCpuS: lab1 - lab0 } : {}),
        machineBusyS: m1.busy - m0.busy,
        machineIdleS: m1.idle - m0.idle,
        stdout,
        stderr: signal ? `${stderr}\n[killed by ${signal}]` : stderr,
        results,
      });
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

/** Checks a run: exit 0 and every expected host with the expected outcome. */
function check(r: Run, expected: string, hosts: number, what: string): void {
  const tally = r.results.reduce<Record<string, number>>((acc, x) => ({ ...acc, [x.outcome]: (acc[x.outcome] ?? 0) + 1 }), {});
  const bad = r.results.filter((x) => x.outcome !== expected).slice(0, 5);
  expect(
    { code: r.code, hosts: r.results.length, tally },
    `${what}: ${bad.map((x) => `${x.host} ${x.outcome}: ${x.reason}`).join('; ')}\n${r.stderr.slice(-3000)}`,
  ).toEqual({ code: 0, hosts, tally: { [expected]: hosts } });
}

it(`fwgen ship: ${HOSTS} sshd hosts, ${RUNS} runs each of fresh and unchanged`, async () => {
  expect(labPrereqs()).toEqual([]);
  ensureBuilt();
  const gnuTime = haveGnuTime();
  await cleanupStaleLabs(PREFIX);
  const loadBefore = loadavg();

  let lab: Lab | undefined;
  const project = mkdtempSync(join(tmpdir(), 'fwgen-ship-bench-'));
  try {
    const t0 = Date.now();
    const names = ROLES.flatMap((role) => Array.from({ length: PER_ROLE }, (_, i) => `${role}${i + 1}`));
    lab = await createLab({
      prefix: PREFIX,
      hosts: names.map((name, i) => ({ name, ipv4: `${NET}.${i + 1}`, sshd: true })),
      concurrency: 8,
    });
    const labSeconds = (Date.now() - t0) / 1000;
    const controller = lab.controller!.ipv4;
    const sshdPids = labSshdPids(lab);
    expect(sshdPids.length, 'sshd listeners of the lab').toBe(HOSTS);

    const inventory = (variant: 0 | 1): string => {
      const hostsOf = (role: string) =>
        names.filter((n) => n.replace(/\d+$/, '') === role).map((n) => `${n}: ${lab!.hosts.get(n)!.ipv4}`).join(', ');
      return `defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab!.sshKey.privatePath}, known_hosts: ${lab!.knownHostsPath} }
management: [${controller}/32]
monitoring:
  - { from: [queue], ports: [tcp/${9100 + variant}] }
trust: fleet
roles:
  web:
    public: true
    hosts: { ${hostsOf('web')} }
  app:
    ports: [tcp/8080]
    allow: [{ from: [web], ports: [tcp/9000] }]
    hosts: { ${hostsOf('app')} }
  db:
    allow: [{ from: [app], ports: [tcp/5432] }, { from: [192.0.2.0/24], ports: [tcp/9187] }]
    hosts: { ${hostsOf('db')} }
  cache:
    allow: [{ from: [app, web], ports: [tcp/6379] }]
    hosts: { ${hostsOf('cache')} }
  queue:
    allow: [{ from: [app], ports: [tcp/5672, tcp/15672] }]
    hosts: { ${hostsOf('queue')} }
`;
    };

    mkdirSync(join(project, 'inventory'), { recursive: true });
    let variant = 1 as 0 | 1;
    const useVariant = async (v: 0 | 1): Promise<void> => {
      variant = v;
      writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(v));
      const r = await fwgen(project, ['render'], false);
      expect(r.code, r.stderr).toBe(0);
    };
    /** The reset between fresh runs: the other variant, so every host's rules change. */
    const flip = (): Promise<void> => useVariant(variant === 0 ? 1 : 0);
    const ship = (timed: boolean, ...extra: string[]) => fwgen(project, ['ship', '--role', 'all', '--json', ...extra], timed && gnuTime, sshdPids);

    // Warm-up (not timed): the first ship onto empty hosts, so each fresh run replaces an existing ruleset.
    await useVariant(1);
    check(await ship(false), 'applied', HOSTS, 'warm-up ship');

    const fresh: Summary = { name: 'fresh', runs: [] };
    for (let i = 0; i < RUNS; i++) {
      await flip(); // not timed
      const r = await ship(true);
      check(r, 'applied', HOSTS, `fresh run ${i + 1}`);
      fresh.runs.push(r);
    }
    const unchanged: Summary = { name: 'unchanged', runs: [] };
    for (let i = 0; i < RUNS; i++) {
      const r = await ship(true);
      check(r, 'unchanged', HOSTS, `unchanged run ${i + 1}`);
      unchanged.runs.push(r);
    }

    const extra: Summary[] = [];
    if (PROFILE) {
      // One host alone: the per-host floor (node start-up + render check + one host's SSH work).
      const one = (timed: boolean, ...a: string[]) => fwgen(project, ['ship', '--host', 'web1', '--json', ...a], timed && gnuTime, sshdPids);
      const s1: Summary = { name: '1 host fresh', runs: [] };
      const s2: Summary = { name: '1 host unchanged', runs: [] };
      for (let i = 0; i < RUNS; i++) {
        await flip();
        const r = await one(true);
        check(r, 'applied', 1, 'one host fresh');
        s1.runs.push(r);
        const u = await one(true);
        check(u, 'unchanged', 1, 'one host unchanged');
        s2.runs.push(u);
      }
      // Bring the other 49 hosts to the current variant again.
      const resync = await ship(false);
      expect(resync.code, resync.stderr).toBe(0);
      extra.push(s1, s2);
      for (const c of ['1', '50']) {
        const f: Summary = { name: `fresh --concurrency ${c}`, runs: [] };
        const u: Summary = { name: `unchanged --concurrency ${c}`, runs: [] };
        for (let i = 0; i < Math.min(RUNS, 3); i++) {
          await flip();
          const r = await ship(true, '--concurrency', c);
          check(r, 'applied', HOSTS, f.name);
          f.runs.push(r);
          const q = await ship(true, '--concurrency', c);
          check(q, 'unchanged', HOSTS, u.name);
          u.runs.push(q);
        }
        extra.push(f, u);
      }
      // node start-up + inventory load + render check, no SSH at all (a usage error after the check would
      // not be representative): `fwgen render --check`.
      const rc: Summary = { name: 'render --check (no ssh)', runs: [] };
      for (let i = 0; i < RUNS; i++) {
        const r = await fwgen(project, ['render', '--check'], gnuTime);
        expect(r.code, r.stderr).toBe(0);
        rc.runs.push(r);
      }
      extra.push(rc);
      // The lab's floor: a bare ssh2 client (no fwgen) opening one connection per host, 10 at a time,
      // running `true`, same key and host-key check. No fwgen design can do less per unchanged host.
      const floorJs = `
        import { readFileSync } from 'node:fs';
        import ssh2 from ${JSON.stringify(join(ROOT, 'node_modules/ssh2/lib/index.js'))};
        const [key, ...hosts] = process.argv.slice(1);
        const privateKey = readFileSync(key);
        const one = (host) => new Promise((res, rej) => {
          const c = new ssh2.Client();
          c.on('ready', () => c.exec('true', (err, s) => {
            if (err) return rej(err);
            s.resume(); s.stderr.resume();
            s.on('close', () => { c.end(); res(); });
            s.end();
          }));
          c.on('error', rej);
          c.connect({ host, username: 'root', privateKey, hostVerifier: () => true });
        });
        let next = 0;
        await Promise.all(Array.from({ length: 10 }, async () => { while (next < hosts.length) await one(hosts[next++]); }));
      `;
      const floor: Summary = { name: 'floor: bare ssh2, 1 conn+exec/host', runs: [] };
      const addrs = [...lab.hosts.values()].map((h) => h.ipv4);
      for (let i = 0; i < RUNS; i++) {
        const r = await command(project, [process.execPath, '--input-type=module', '-e', floorJs, lab.sshKey.privatePath, ...addrs], gnuTime, sshdPids);
        expect(r.code, r.stderr).toBe(0);
        floor.runs.push(r);
      }
      extra.push(floor);
    }

    // report
    const cpu = cpus();
    const rows = [['scenario', 'median s', 'min s', 'max s', 'peak RSS MB', 'target', 'time', 'memory', 'fwgen cpu s', 'lab cpu s', 'other cpu s', 'idle %', 'host ms']];
    const row = (s: Summary, target?: number): string[] => {
      const secs = s.runs.map((r) => r.seconds);
      const rss = s.runs.map((r) => r.rssKb).filter((x): x is number => x !== undefined);
      const cpuS = s.runs.map((r) => r.cpuS).filter((x): x is number => x !== undefined);
      const labS = s.runs.map((r) => r.labCpuS).filter((x): x is number => x !== undefined);
      const otherS = s.runs.map((r) => (r.machineBusyS ?? 0) - (r.cpuS ?? 0) - (r.labCpuS ?? 0));
      const idlePct = s.runs.map((r) => (100 * (r.machineIdleS ?? 0)) / ((r.machineIdleS ?? 0) + (r.machineBusyS ?? 0) || 1));
      const hostMs = s.runs.flatMap((r) => r.results.map((x) => x.ms));
      const med = median(secs);
      const peak = rss.length ? Math.max(...rss) / 1024 : undefined;
      return [
        s.name,
        med.toFixed(3),
        Math.min(...secs).toFixed(3),
        Math.max(...secs).toFixed(3),
        peak === undefined ? 'n/a' : peak.toFixed(1),
        target === undefined ? '-' : `<= ${target.toFixed(1)} s`,
        target === undefined ? '-' : med <= target ? 'PASS' : 'OVER',
        target === undefined ? '-' : peak === undefined ? 'n/a' : peak <= TARGET.rssMb ? 'PASS' : 'OVER',
        cpuS.length ? median(cpuS).toFixed(2) : 'n/a',
        labS.length ? median(labS).toFixed(2) : '-',
        median(otherS).toFixed(2),
        median(idlePct).toFixed(0),
        hostMs.length ? String(Math.round(median(hostMs))) : '-',
      ];
    };
    rows.push(row(fresh, TARGET.fresh), row(unchanged, TARGET.unchanged));
    for (const s of extra) rows.push(row(s));
    out(
      `\nfwgen ship benchmark: ${HOSTS} hosts (${ROLES.length} roles x ${PER_ROLE}, each a netns with its own sshd), ` +
        `${RUNS} runs per scenario, default --concurrency 10 and --timeout\n` +
        `node ${process.version}, ${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before the bench; ` +
        `lab set up in ${labSeconds.toFixed(1)} s\n\n` +
        `${table(rows)}\n\n` +
        `targets: fresh median <= ${TARGET.fresh} s, unchanged median <= ${TARGET.unchanged} s, peak RSS <= ${TARGET.rssMb} MB\n` +
        `medians per run: fwgen cpu s = user+sys CPU of the fwgen process; lab cpu s = CPU of the ${HOSTS} lab sshds and all they ran ` +
        `(the "remote" hosts, on the same ${cpu.length} cores here); other cpu s = rest of the machine's busy CPU (kernel, other processes); ` +
        `idle % = machine idle during the run; host ms = per-host time fwgen reports (median over hosts and runs)\n` +
        (gnuTime ? '' : 'peak RSS and CPU not measured: GNU /usr/bin/time not found\n') +
        '\n',
    );
  } finally {
    await lab?.destroy();
    rmSync(project, { recursive: true, force: true });
  }
});
