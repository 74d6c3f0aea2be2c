/**
 * Benchmark of `fwgen ship` as a whole process (node start-up included) against a 50-host fleet of
 * network namespaces, each with a real sshd (test/support/lab.ts), beside the baselines the targets
 * of issue 8 are relative to, all in the same run. Needs root and Debian's python3-fabric.
 *
 *   npm run bench:ship
 *   SHIP_BENCH_RUNS=9 npm run bench:ship        # runs per scenario (default 5)
 *   SHIP_BENCH_DELAY_MS=50 npm run bench:ship   # one-way delay of the latency scenario (default 25)
 *   SHIP_BENCH_PROFILE=1 npm run bench:ship     # also: one host alone, --concurrency 1 / 50, `render --check`
 *   SHIP_BENCH_IPV6=leave npm run bench:ship    # IPv4 rules only (`ipv6: leave`), as Fabric pushes: like for
 *                                               # like (by default every role also gets its IPv6 rules)
 *
 * Each round (SHIP_BENCH_RUNS rounds) runs, one after the other, so that background load hits all alike:
 *   fwgen fresh      every host gets new rules: the inventory alternates between two variants that differ
 *                    in one monitoring port (shipped with every role), re-rendered before each run (not
 *                    timed), so every host goes through test, backup, dead-man switch, apply and confirm.
 *   fwgen unchanged  nothing changed since the previous ship: every host reports `unchanged`.
 *   fabric           bench/fabric-push.py: a threaded Fabric push with no safety steps (upload, plain
 *                    `iptables-restore`), 10 hosts at a time: the baseline of the speed targets.
 *   bare 1 / 2 conn  bench/bare-client.mjs: a bare ssh2 client, one (two) connection(s) per host, each
 *                    running `true`: the floor (fwgen's fresh path needs two connections by design).
 * Then the same rounds through a delaying TCP proxy (bench/delay-proxy.ts) on 127.0.60.N:22, one per
 * host, SHIP_BENCH_DELAY_MS each way (no netem in this kernel): fewer round trips per host is the aim.
 * Prints median/min/max wall time, each process's CPU time and peak RSS (GNU /usr/bin/time), the lab's
 * sshd CPU, and the targets as PASS/OVER. The test asserts only that every run succeeded, not the targets.
 *
 * Addresses: 198.18.60.0/24 (hosts .1-.50, controller .254) and 127.0.60.1-50 (the proxies); no other
 * test file may use them.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { cleanupStaleLabs, createLab, labPrereqs, type Lab } from '../test/support/lab.js';
import { startDelayProxy, type DelayProxy } from './delay-proxy.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const NET = '198.18.60';
const PREFIX = 'fwsb';
const ROLES = ['web', 'app', 'db', 'cache', 'queue'] as const;
const PER_ROLE = 10;
const HOSTS = ROLES.length * PER_ROLE;
const RUNS = positiveEnv('SHIP_BENCH_RUNS', 5);
const PROFILE = !!process.env.SHIP_BENCH_PROFILE;
const DELAY_MS = positiveEnv('SHIP_BENCH_DELAY_MS', 25);
const IPV6 = process.env.SHIP_BENCH_IPV6 === 'leave' ? 'leave' : 'manage';
const PROXY_NET = '127.0.60';
const CONCURRENCY = 10; // fwgen's default --concurrency; the baselines use the same
/** Issue 8's targets: fwgen against Fabric and the bare client, measured in the same run. */
const TARGET = { freshVsFabric: 1.2, unchangedVsFabric: 0.75, remoteCpuMsPerHost: 20, cpuVsBare: 1.3, rssMb: 150 };
const PYTHON = '/usr/bin/python3'; // Debian's python3-fabric lives in the system Python, not in a pyenv one
const FABRIC_REMOTE_PATH = '/etc/iptables.fabric.rules';
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
  /** Through the delaying proxies: client flights (round trips), all hosts together. */
  flights?: number;
  stdout: string;
  stderr: string;
  results: HostRow[];
}

interface Summary {
  name: string;
  /** SSH connections per host (CPU per connection is divided by this). */
  conns: number;
  runs: Run[];
}

const summary = (name: string, conns: number): Summary => ({ name, conns, runs: [] });

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
  if (r.status !== 0 || !existsSync(CLI))
    throw new Error(`ship-bench: \`npm run build\` failed:\n${r.stdout}${r.stderr}`);
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
        // ship --json is one object whose `hosts` are the rows.
        results = (JSON.parse(stdout) as { hosts: HostRow[] }).hosts ?? [];
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
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '))
    .join('\n');
}

/** Checks a run: exit 0 and every expected host with the expected outcome. */
function check(r: Run, expected: string, hosts: number, what: string): void {
  const tally = r.results.reduce<Record<string, number>>(
    (acc, x) => ({ ...acc, [x.outcome]: (acc[x.outcome] ?? 0) + 1 }),
    {},
  );
  const bad = r.results.filter((x) => x.outcome !== expected).slice(0, 5);
  expect(
    { code: r.code, hosts: r.results.length, tally },
    `${what}: ${bad.map((x) => `${x.host} ${x.outcome}: ${x.reason}`).join('; ')}\n${r.stderr.slice(-3000)}`,
  ).toEqual({ code: 0, hosts, tally: { [expected]: hosts } });
}

/** Debian's python3-fabric, importable by the system Python? Else why not. */
function fabricProblem(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import fabric, paramiko; print(fabric.__version__)'], { encoding: 'utf8' });
  if (r.status === 0) return undefined;
  return `${PYTHON} cannot import fabric (apt-get install -y python3-fabric): ${r.stderr.trim().split('\n').pop()}`;
}

/** A process that prints no JSON (a baseline) succeeded? */
function checkExit(r: Run, what: string): void {
  expect(r.code, `${what}:\n${r.stderr.slice(-3000)}`).toBe(0);
}

/** How each host is reached: directly, or through its delaying proxy. */
interface Route {
  readonly name: string;
  readonly project: string;
  /** SSH address of each host (by name): its lab address, or its proxy. */
  readonly sshHost: (name: string) => string;
  readonly knownHosts: string;
}

const TITLE = `fwgen ship: ${HOSTS} sshd hosts, ${RUNS} rounds of fwgen fresh/unchanged, Fabric and the bare client`;

it(`${TITLE}, direct and at ${2 * DELAY_MS} ms RTT`, async () => {
  expect(labPrereqs()).toEqual([]);
  expect(fabricProblem()).toBeUndefined();
  ensureBuilt();
  const gnuTime = haveGnuTime();
  await cleanupStaleLabs(PREFIX);
  const loadBefore = loadavg();

  let lab: Lab | undefined;
  const proxies: DelayProxy[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'fwgen-ship-bench-'));
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
    const addr = (n: string): string => lab!.hosts.get(n)!.ipv4;
    const proxyOf = (n: string): string => `${PROXY_NET}.${names.indexOf(n) + 1}`;

    // The latency scenario's proxies (loopback, port 22 as the hosts' own sshd, so the rules are alike)
    // and a known_hosts naming them with each host's key.
    for (const n of names) {
      proxies.push(await startDelayProxy({ host: proxyOf(n), port: 22 }, { host: addr(n), port: 22 }, DELAY_MS));
    }
    const proxyKnownHosts = join(scratch, 'known_hosts.proxy');
    const hostKey = (n: string): string => lab!.hosts.get(n)!.hostKeyPub!.split(/\s+/).slice(0, 2).join(' ');
    writeFileSync(proxyKnownHosts, names.map((n) => `${proxyOf(n)} ${hostKey(n)}\n`).join(''));

    const direct: Route = {
      name: 'direct',
      project: join(scratch, 'direct'),
      sshHost: addr,
      knownHosts: lab.knownHostsPath,
    };
    const delayed: Route = {
      name: `${2 * DELAY_MS} ms RTT`,
      project: join(scratch, 'delayed'),
      sshHost: proxyOf,
      knownHosts: proxyKnownHosts,
    };

    const inventory = (route: Route, variant: 0 | 1): string => {
      // Through a proxy the hosts see the controller's address: ssh.source says so to the lockout check.
      const host = (n: string) =>
        route === direct
          ? `${n}: ${addr(n)}`
          : `${n}: { address: ${addr(n)}, ssh: { host: ${proxyOf(n)}, source: ${controller} } }`;
      const hostsOf = (role: string) =>
        names
          .filter((n) => n.replace(/\d+$/, '') === role)
          .map(host)
          .join(', ');
      return `defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab!.sshKey.privatePath}, known_hosts: ${route.knownHosts} }
management: [${controller}/32]
ipv6: ${IPV6}
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

    const variants = new Map<Route, 0 | 1>();
    const useVariant = async (route: Route, v: 0 | 1): Promise<void> => {
      variants.set(route, v);
      mkdirSync(join(route.project, 'inventory'), { recursive: true });
      writeFileSync(join(route.project, 'inventory/inventory.yaml'), inventory(route, v));
      const r = await fwgen(route.project, ['render'], false);
      expect(r.code, r.stderr).toBe(0);
    };
    /** The reset between fresh runs: the other variant, so every host's rules change. */
    const flip = (route: Route): Promise<void> => useVariant(route, variants.get(route) === 0 ? 1 : 0);
    const ship = (route: Route, timed: boolean, ...extra: string[]) =>
      fwgen(route.project, ['ship', '--role', 'all', '--json', ...extra], timed && gnuTime, sshdPids);
    const fabric = (route: Route) => {
      // Each host's role file as fwgen rendered it (the current variant), to its own path on the host.
      const file = (n: string) => join(route.project, 'rendered', n.replace(/\d+$/, ''), 'iptables.up.rules');
      const targets = names.map((n) => `${route.sshHost(n)}:22:${file(n)}`);
      const key = lab!.sshKey.privatePath;
      const script = join(ROOT, 'bench/fabric-push.py');
      const argv = [PYTHON, script, key, route.knownHosts, String(CONCURRENCY), FABRIC_REMOTE_PATH, ...targets];
      return command(route.project, argv, gnuTime, sshdPids);
    };
    const bare = (route: Route, conns: number) => {
      const key = lab!.sshKey.privatePath;
      const script = join(ROOT, 'bench/bare-client.mjs');
      const argv = [process.execPath, script, key, String(conns), String(CONCURRENCY), ...names.map(route.sshHost)];
      return command(route.project, argv, gnuTime, sshdPids);
    };

    const flights = (): number => proxies.reduce((n, p) => n + p.flights(), 0);
    /** One run, with the round trips it made through the proxies when it used them. */
    const counted = async (route: Route, run: () => Promise<Run>): Promise<Run> => {
      const f0 = flights();
      const r = await run();
      return route === direct ? r : { ...r, flights: flights() - f0 };
    };

    /** RUNS rounds of every scenario over one route, interleaved so that background load hits them alike. */
    const rounds = async (route: Route): Promise<Summary[]> => {
      const tag = route === direct ? '' : ` @${2 * DELAY_MS}ms`;
      const s = {
        fresh: summary(`fwgen fresh${tag}`, 2),
        unchanged: summary(`fwgen unchanged${tag}`, 1),
        fabric: summary(`fabric push${tag}`, 1),
        bare1: summary(`bare client 1 conn${tag}`, 1),
        bare2: summary(`bare client 2 conn${tag}`, 2),
      };
      // Warm-up (not timed): each fresh run then replaces an existing ruleset.
      await useVariant(route, 1);
      const w = await ship(route, false);
      expect(w.code, `warm-up ship (${route.name}):\n${w.stderr.slice(-3000)}`).toBe(0);
      for (let i = 0; i < RUNS; i++) {
        await flip(route); // not timed
        const f = await counted(route, () => ship(route, true));
        check(f, 'applied', HOSTS, `${s.fresh.name} run ${i + 1}`);
        s.fresh.runs.push(f);
        const u = await counted(route, () => ship(route, true));
        check(u, 'unchanged', HOSTS, `${s.unchanged.name} run ${i + 1}`);
        s.unchanged.runs.push(u);
        for (const [sum, run] of [
          [s.fabric, () => fabric(route)],
          [s.bare1, () => bare(route, 1)],
          [s.bare2, () => bare(route, 2)],
        ] as const) {
          const r = await counted(route, run);
          checkExit(r, `${sum.name} run ${i + 1}`);
          sum.runs.push(r);
        }
      }
      return Object.values(s);
    };

    const main = await rounds(direct);
    const shipDirect = (timed: boolean, ...a: string[]) => ship(direct, timed, ...a);
    const extra = PROFILE ? await profile(direct.project, shipDirect, () => flip(direct), gnuTime, sshdPids) : [];
    const accepted0 = proxies.reduce((n, p) => n + p.accepted(), 0);
    const latency = await rounds(delayed);
    const throughProxies = proxies.reduce((n, p) => n + p.accepted(), 0) - accepted0;
    // fresh 2, unchanged 1, Fabric 1, bare client 1 + 2 connections per host and round.
    expect(throughProxies, 'connections through the delaying proxies').toBeGreaterThanOrEqual(RUNS * HOSTS * 7);

    out(report({ main, extra, latency, loadBefore, labSeconds, gnuTime }));
  } finally {
    await Promise.all(proxies.map((p) => p.close()));
    await lab?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  }
});

/** SHIP_BENCH_PROFILE: one host alone, --concurrency 1 and 50, and `render --check` (no SSH). */
async function profile(
  project: string,
  ship: (timed: boolean, ...extra: string[]) => Promise<Run>,
  flip: () => Promise<void>,
  gnuTime: boolean,
  sshdPids: number[],
): Promise<Summary[]> {
  const extra: Summary[] = [];
  // One host alone: the per-host floor (node start-up + render check + one host's SSH work).
  const one = (timed: boolean) => fwgen(project, ['ship', '--host', 'web1', '--json'], timed && gnuTime, sshdPids);
  const s1 = summary('1 host fresh', 2);
  const s2 = summary('1 host unchanged', 1);
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
    const f = summary(`fresh --concurrency ${c}`, 2);
    const u = summary(`unchanged --concurrency ${c}`, 1);
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
  // node start-up + inventory load + render check, no SSH at all.
  const rc = summary('render --check (no ssh)', 0);
  for (let i = 0; i < RUNS; i++) {
    const r = await fwgen(project, ['render', '--check'], gnuTime);
    expect(r.code, r.stderr).toBe(0);
    rc.runs.push(r);
  }
  extra.push(rc);
  return extra;
}

const med = (xs: (number | undefined)[]): number | undefined => {
  const v = xs.filter((x): x is number => x !== undefined);
  return v.length ? median(v) : undefined;
};
const fix = (x: number | undefined, d: number): string => (x === undefined ? 'n/a' : x.toFixed(d));
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || !b ? undefined : a / b;
const times = (r: number | undefined): string => `${fix(r, 2)}x`;

interface Figures {
  seconds: number;
  cpuS?: number;
  cpuMsPerConn?: number;
  remoteMsPerHost?: number;
  tripsPerHost?: number;
}

/** Medians of one scenario. */
function figures(s: Summary): Figures {
  const conns = HOSTS * s.conns;
  const cpuS = med(s.runs.map((r) => r.cpuS));
  const labS = med(s.runs.map((r) => r.labCpuS));
  const trips = med(s.runs.map((r) => r.flights));
  return {
    seconds: median(s.runs.map((r) => r.seconds)),
    cpuS,
    cpuMsPerConn: cpuS === undefined || conns === 0 ? undefined : (1000 * cpuS) / conns,
    remoteMsPerHost: labS === undefined ? undefined : (1000 * labS) / HOSTS,
    tripsPerHost: trips === undefined ? undefined : trips / HOSTS,
  };
}

const HEADER = ['scenario', 'conn/host', 'median s', 'min s', 'max s', 'peak RSS MB', 'cpu s', 'cpu ms/conn'];
const HEADER_END = ['remote ms/host', 'other cpu s', 'idle %', 'host ms'];

function tableRow(s: Summary, withTrips: boolean): string[] {
  const secs = s.runs.map((r) => r.seconds);
  const rss = s.runs.map((r) => r.rssKb).filter((x): x is number => x !== undefined);
  const otherS = s.runs.map((r) => (r.machineBusyS ?? 0) - (r.cpuS ?? 0) - (r.labCpuS ?? 0));
  const idlePct = s.runs.map((r) => {
    const idle = r.machineIdleS ?? 0;
    return (100 * idle) / (idle + (r.machineBusyS ?? 0) || 1);
  });
  const hostMs = s.runs.flatMap((r) => r.results.map((x) => x.ms));
  const f = figures(s);
  return [
    s.name,
    String(s.conns),
    f.seconds.toFixed(3),
    Math.min(...secs).toFixed(3),
    Math.max(...secs).toFixed(3),
    rss.length ? (Math.max(...rss) / 1024).toFixed(1) : 'n/a',
    fix(f.cpuS, 2),
    fix(f.cpuMsPerConn, 1),
    ...(withTrips ? [fix(f.tripsPerHost, 1)] : []),
    fix(f.remoteMsPerHost, 1),
    median(otherS).toFixed(2),
    median(idlePct).toFixed(0),
    hostMs.length ? String(Math.round(median(hostMs))) : '-',
  ];
}

/** `PASS|OVER  what: shown (target ...)`; n/a when a figure is missing. */
function verdict(what: string, value: number | undefined, limit: number, shown: string, target: string): string {
  const v = value === undefined ? 'n/a ' : value <= limit ? 'PASS' : 'OVER';
  return `${v}  ${what}: ${shown} (target ${target})`;
}

/** The five scenarios of a route, by name. */
const byKind = (list: Summary[]) => {
  const [fresh, unchanged, fabric, bare1, bare2] = list.map(figures) as [Figures, Figures, Figures, Figures, Figures];
  return { fresh, unchanged, fabric, bare1, bare2 };
};

/** Issue 8's targets as PASS/OVER lines, and where fwgen stands against the floor. */
function targetLines(m: ReturnType<typeof byKind>): string[] {
  const vsFabric = (f: Figures, limit: number, what: string) => {
    const r = ratio(f.seconds, m.fabric.seconds);
    const shown = `${f.seconds.toFixed(2)} s / ${m.fabric.seconds.toFixed(2)} s = ${times(r)}`;
    return verdict(what, r, limit, shown, `<= ${limit}x`);
  };
  const vsBare = (f: Figures, bare: Figures, what: string) => {
    const r = ratio(f.cpuMsPerConn, bare.cpuMsPerConn);
    const shown = `${fix(f.cpuMsPerConn, 1)} ms/conn vs bare ${fix(bare.cpuMsPerConn, 1)} = ${times(r)}`;
    return verdict(what, r, TARGET.cpuVsBare, shown, `<= ${TARGET.cpuVsBare}x`);
  };
  // The scripts' own work: the lab's CPU beyond what the bare client's two connections cost it (sshd).
  const all = m.fresh.remoteMsPerHost;
  const scripts = all === undefined ? undefined : all - (m.bare2.remoteMsPerHost ?? 0);
  const remote = `${fix(scripts, 1)} ms (${fix(all, 1)} ms in all, bare client ${fix(m.bare2.remoteMsPerHost, 1)})`;
  const limit = TARGET.remoteCpuMsPerHost;
  return [
    vsFabric(m.fresh, TARGET.freshVsFabric, 'fresh vs Fabric'),
    vsFabric(m.unchanged, TARGET.unchangedVsFabric, 'unchanged vs Fabric'),
    verdict('remote CPU per fresh host beyond sshd', scripts, limit, remote, `<= ${limit} ms`),
    vsBare(m.fresh, m.bare2, 'controller CPU, fresh (2 conn/host)'),
    vsBare(m.unchanged, m.bare1, 'controller CPU, unchanged (1 conn/host)'),
    `floor: fresh = ${times(ratio(m.fresh.seconds, m.bare2.seconds))} the bare client with 2 conn/host, ` +
      `unchanged = ${times(ratio(m.unchanged.seconds, m.bare1.seconds))} with 1; ` +
      `remote ms/host: Fabric ${fix(m.fabric.remoteMsPerHost, 1)}, ` +
      `bare ${fix(m.bare1.remoteMsPerHost, 1)} / ${fix(m.bare2.remoteMsPerHost, 1)}`,
  ];
}

interface ReportInput {
  main: Summary[];
  extra: Summary[];
  latency: Summary[];
  loadBefore: number[];
  labSeconds: number;
  gnuTime: boolean;
}

function report(o: ReportInput): string {
  const m = byKind(o.main);
  const l = byKind(o.latency);
  const rtt = 2 * DELAY_MS;
  const cpu = cpus();
  const load = (xs: number[]) => xs.map((v) => v.toFixed(2)).join(' ');
  const tripsOf = (f: Figures) => fix(f.tripsPerHost, 1);
  return [
    '',
    `fwgen ship benchmark: ${HOSTS} hosts (${ROLES.length} roles x ${PER_ROLE}, each a netns with its own sshd), ` +
      `${RUNS} rounds, ${CONCURRENCY} hosts at a time for fwgen, Fabric and the bare client alike; ` +
      `ipv6: ${IPV6} (${IPV6 === 'manage' ? "fwgen ships IPv4 and IPv6 rules, Fabric IPv4's" : 'IPv4 rules only, as Fabric'})`,
    `node ${process.version}, ${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, load average ` +
      `${load(o.loadBefore)} before the bench, ${load(loadavg())} after; lab set up in ${o.labSeconds.toFixed(1)} s`,
    '',
    table([[...HEADER, ...HEADER_END], ...[...o.main, ...o.extra].map((s) => tableRow(s, false))]),
    '',
    `latency: each host through its own delaying proxy on ${PROXY_NET}.N:22, ` +
      `${DELAY_MS} ms each way (${rtt} ms RTT); ` +
      'trips/host = client flights through the proxy (round trips, all connections of a host)',
    table([[...HEADER, 'trips/host', ...HEADER_END], ...o.latency.map((s) => tableRow(s, true))]),
    '',
    'targets (issue 8), medians of this run:',
    ...targetLines(m),
    `at ${rtt} ms RTT: fresh ${l.fresh.seconds.toFixed(2)} s = ` +
      `${times(ratio(l.fresh.seconds, l.fabric.seconds))} Fabric, ` +
      `${times(ratio(l.fresh.seconds, l.bare2.seconds))} bare 2 conn; ` +
      `unchanged ${l.unchanged.seconds.toFixed(2)} s = ` +
      `${times(ratio(l.unchanged.seconds, l.fabric.seconds))} Fabric, ` +
      `${times(ratio(l.unchanged.seconds, l.bare1.seconds))} bare 1 conn; ` +
      `round trips per host: fresh ${tripsOf(l.fresh)}, unchanged ${tripsOf(l.unchanged)}, ` +
      `Fabric ${tripsOf(l.fabric)}, ` +
      `bare ${tripsOf(l.bare1)} / ${tripsOf(l.bare2)}`,
    '',
    'columns (medians over runs): cpu s = user+sys CPU of the process (fwgen, python3 or node); ' +
      `cpu ms/conn = that over ${HOSTS} x conn/host connections; ` +
      `remote ms/host = CPU of the ${HOSTS} lab sshds and all they ran (the "remote" hosts, ` +
      `on the same ${cpu.length} cores here) per host; ` +
      "other cpu s = the rest of the machine's busy CPU (kernel, other processes, the proxies); " +
      'idle % = machine idle during the run; host ms = per-host time fwgen reports',
    ...(o.gnuTime ? [] : ['peak RSS and CPU not measured: GNU /usr/bin/time not found']),
    '',
    '',
  ].join('\n');
}
