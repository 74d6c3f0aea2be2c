/**
 * Test lab of Linux network namespaces for end-to-end tests of fwgen.
 *
 * Topology (per lab, `id` = 4 random hex chars, `P` = prefix, default `fw`):
 *
 *   root netns ── veth `Pb-<id>` ──┐
 *     (controller addr, /32 routes)│
 *                                  ├─ netns `P-<id>` (the "switch": bridge br0, nothing else)
 *   netns `P-<id>-<host>` ── eth1 ─┘      (its br_netfilter sysctls are set to 0)
 *
 * The bridge lives in its own namespace, so bridged traffic never traverses the root
 * namespace's iptables (br_netfilter is per-netns). The root namespace (= the vitest
 * process, e.g. ssh2 or the `ssh` client) reaches the hosts through one veth that
 * carries the lab's "controller" address and /32 (/128) routes to each host address only;
 * hosts get no default route, so nothing can leave the lab.
 *
 * Hosts with `sshd` (or `privateFs`) get a private mount namespace held by a `sleep`
 * process: ROOT/etc (a copy of /etc), ROOT/root, ROOT/run, ROOT/tmp, ROOT/var/tmp and
 * ROOT/var/log are bind-mounted over the real paths. sshd, `lab.exec` and everything
 * started over ssh on that host live in that namespace.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
  promises as fsp,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** Specification of one lab host (network namespace). */
export interface LabHostSpec {
  /** short name, [a-z0-9-], used in the namespace name */
  name: string;
  /** primary IPv4 address, e.g. '198.18.0.11' */
  ipv4: string;
  /** IPv4 prefix length on the lab link (default 24) */
  prefix4?: number;
  /** IPv6 address, e.g. '2001:db8:18::11' */
  ipv6?: string;
  /** IPv6 prefix length (default 64) */
  prefix6?: number;
  /** additional IPv4 addresses on the same interface (same prefix4), e.g. to act as several sources */
  extraIpv4?: string[];
  /** interface name inside the namespace (default 'eth1') */
  ifname?: string;
  /** start a real sshd (port 22) in this namespace; implies privateFs */
  sshd?: boolean;
  /** give the host a private mount namespace (/etc copy, /root, /run, /tmp, /var/tmp, /var/log) even without sshd */
  privateFs?: boolean;
  /**
   * privateFs hosts: `ifup` exists (a stub in /usr/local/sbin, as on a Debian host with ifupdown), so that
   * fwgen's boot hook counts as run at boot; default true. `false`: neither ifupdown nor systemd, a host
   * where nothing would run a boot hook. (Boot itself is simulated: flush the tables, run the hook.)
   */
  ifupdown?: boolean;
  /** TCP ports answered by socat (accept, write "ok\n", close) on IPv4 and, if ipv6 is set, IPv6 */
  listen?: number[];
}

/** A created lab host. */
export interface LabHost {
  /** host name from the spec */
  name: string;
  /** network namespace name (`ip netns exec <ns> ...`) */
  ns: string;
  /** interface name inside the namespace */
  ifname: string;
  /** primary IPv4 address */
  ipv4: string;
  /** additional IPv4 addresses */
  extraIpv4: string[];
  /** IPv6 address, if any */
  ipv6?: string;
  /** host's private directory (logs; bind-mount sources when privateFs) */
  root: string;
  /** whether the host has a private mount namespace */
  privateFs: boolean;
  /** whether the host was specified with sshd */
  sshd: boolean;
  /** directory seen as /etc inside the host ('/etc' when not privateFs) */
  etcDir: string;
  /** directory seen as /root inside the host ('/root' when not privateFs) */
  rootHome: string;
  /** sshd host public key line ('ssh-ed25519 AAAA... comment'), sshd hosts only */
  hostKeyPub?: string;
}

/** Result of a command run with {@link Lab.exec}. */
export interface ExecResult {
  /** exit code (128+signal when killed, 124 on timeout) */
  code: number;
  /** captured standard output */
  stdout: string;
  /** captured standard error */
  stderr: string;
}

/** Result of a TCP probe: connected / actively rejected (RST or ICMP error) / no answer. */
export type ProbeResult = 'open' | 'refused' | 'timeout';

/** Special host name for {@link Lab.probe}: probe from the root namespace (the test process itself). */
export const CONTROLLER = '@controller';

/** A running lab. */
export interface Lab {
  /** short random id (4 hex chars) */
  id: string;
  /** name prefix used for namespaces/links */
  prefix: string;
  /** lab temp directory (keys, known_hosts, host dirs) */
  dir: string;
  /** hosts by name */
  hosts: Map<string, LabHost>;
  /** address(es) the root namespace (test process) uses to talk to the hosts, if enabled */
  controller?: { ipv4: string; ipv6?: string; ifname: string };
  /** run argv inside host's network namespace (and, for privateFs/sshd hosts, its mount+uts namespace) */
  exec(host: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** like exec but throws unless the exit code is 0; returns stdout */
  execOk(host: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** TCP connect from a host's namespace (or CONTROLLER) to address-or-hostname:port, optionally from a chosen source address */
  probe(from: string, to: string, port: number, opts?: { source?: string; timeoutMs?: number }): Promise<ProbeResult>;
  /** client key material for ssh into sshd hosts (root@) */
  sshKey: { privatePath: string; publicKey: string };
  /** known_hosts file listing every sshd host's addresses with its host key */
  knownHostsPath: string;
  /** ssh client argv (without the 'ssh' itself) to reach `host` as root: options + 'root@addr' */
  sshArgs(host: string, opts?: { ipv6?: boolean }): string[];
  /** stop the host's sshd listener (existing sessions survive, like `systemctl stop ssh`) */
  stopSshd(host: string): Promise<void>;
  /** (re)start the host's sshd and wait until port 22 listens */
  startSshd(host: string): Promise<void>;
  /** kill every process in the lab's namespaces and cgroups ({@link labCgroupName}), delete namespaces, links,
   * cgroups, temp dir; idempotent */
  destroy(): Promise<void>;
}

/** Options for {@link createLab}. */
export interface CreateLabOptions {
  /** name prefix, [a-z][a-z0-9]{0,8}, default 'fw' (namespaces `<prefix>-<id>[-host]`, root link `<prefix>b-<id>`) */
  prefix?: string;
  /** hosts to create */
  hosts: LabHostSpec[];
  /**
   * root-namespace connectivity. Default: enabled, ipv4 = highest free .N in the first host's /24
   * (usually .254), ipv6 = <first ipv6 host's /64>::fffe. `false` disables it.
   */
  controller?: false | { ipv4?: string; ipv6?: string };
  /** max hosts set up in parallel (default 8) */
  concurrency?: number;
}

// ---------------------------------------------------------------------------------------
// binaries & prerequisites

const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function findBin(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_DIRS];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

const binCache = new Map<string, string>();
function bin(name: string): string {
  let p = binCache.get(name);
  if (!p) {
    p = findBin(name);
    if (!p) throw new Error(`lab: required binary not found: ${name}`);
    binCache.set(name, p);
  }
  return p;
}

const REQUIRED_BINS = [
  'ip',
  'iptables',
  'iptables-restore',
  'ip6tables',
  'sshd',
  'ssh',
  'ssh-keygen',
  'socat',
  'unshare',
  'nsenter',
  'mount',
  'hostname',
  'sleep',
  'cp',
  'perl',
  'sh',
];

/** Returns the list of missing prerequisites (empty = the lab can run). Tests should fail, not skip, when non-empty. */
export function labPrereqs(): string[] {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push('linux');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('root (uid 0)');
  for (const b of REQUIRED_BINS) if (!findBin(b)) missing.push(b);
  return missing;
}

// ---------------------------------------------------------------------------------------
// process helpers

interface RunOpts {
  input?: string;
  timeoutMs?: number;
  cwd?: string;
}

function run(argv: string[], opts: RunOpts = {}): Promise<ExecResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd ?? '/',
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true, // own process group so a timeout kills the whole tree
      });
    } catch (e) {
      reject(e);
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.stdin!.on('error', () => {
      /* EPIPE if the command does not read stdin */
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      let stderr = Buffer.concat(err).toString();
      let rc = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1);
      if (timedOut) {
        rc = 124;
        stderr += `\n[lab] timed out after ${opts.timeoutMs}ms: ${argv.join(' ')}`;
      }
      dbg(`${Date.now() - t0}ms rc=${rc} ${argv.slice(0, 8).join(' ').slice(0, 160)}`);
      resolve({ code: rc, stdout: Buffer.concat(out).toString(), stderr });
    });
    if (opts.timeoutMs && opts.timeoutMs > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid, 'SIGKILL');
      }, opts.timeoutMs);
    }
    child.stdin!.end(opts.input ?? '');
  });
}

async function runOk(argv: string[], opts: RunOpts = {}): Promise<string> {
  const r = await run(argv, { timeoutMs: 60_000, ...opts });
  if (r.code !== 0) {
    throw new Error(`lab: command failed (rc=${r.code}): ${argv.join(' ')}\n${r.stderr.trim()}\n${r.stdout.trim()}`);
  }
  return r.stdout;
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function procStartTime(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

const DEBUG = !!process.env.FWLAB_DEBUG;
const T0 = Date.now();
function dbg(msg: string): void {
  if (DEBUG) process.stderr.write(`[lab +${Date.now() - T0}ms] ${msg}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
  return results;
}

// ---------------------------------------------------------------------------------------
// namespace / socket inspection via /proc (no spawning)

function nsInode(ns: string): number | undefined {
  try {
    return statSync(`/run/netns/${ns}`).ino;
  } catch {
    return undefined;
  }
}

function pidNetIno(pid: number): number | undefined {
  try {
    const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/net`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** true when `pid` lives in netns inode `ino` and that netns has a TCP socket listening on `port` (v4 or v6 table). */
function isListening(pid: number, ino: number, port: number, v6: boolean): boolean {
  if (pidNetIno(pid) !== ino) return false;
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  try {
    const lines = readFileSync(`/proc/${pid}/net/${v6 ? 'tcp6' : 'tcp'}`, 'utf8')
      .split('\n')
      .slice(1);
    return lines.some((l) => {
      const f = l.trim().split(/\s+/);
      return f[3] === '0A' && f[1]?.endsWith(`:${hex}`);
    });
  } catch {
    return false;
  }
}

async function waitFor(
  what: string,
  timeoutMs: number,
  cond: () => boolean,
  abort?: () => string | undefined,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return;
    const why = abort?.();
    if (why) throw new Error(`lab: ${what}: ${why}`);
    if (Date.now() > end) throw new Error(`lab: timed out waiting for ${what}`);
    await sleep(15);
  }
}

// ---------------------------------------------------------------------------------------
// address helpers

function expandV6(addr: string): number[] {
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g || '0', 16));
}

function v6ToString(g: number[]): string {
  return g
    .map((x) => x.toString(16))
    .join(':')
    .replace(/(^|:)0(:0)+(:|$)/, '::');
}

function defaultController(hosts: LabHostSpec[]): { ipv4: string; ipv6?: string } {
  const used = new Set(hosts.flatMap((h) => [h.ipv4, ...(h.extraIpv4 ?? [])]));
  const base = hosts[0]!.ipv4.split('.').slice(0, 3).join('.');
  let ipv4: string | undefined;
  for (let i = 254; i > 0 && !ipv4; i--) if (!used.has(`${base}.${i}`)) ipv4 = `${base}.${i}`;
  if (!ipv4) throw new Error('lab: no free controller address; pass opts.controller');
  const first6 = hosts.find((h) => h.ipv6);
  let ipv6: string | undefined;
  if (first6) {
    const g = expandV6(first6.ipv6!);
    const used6 = new Set(hosts.filter((h) => h.ipv6).map((h) => expandV6(h.ipv6!).join(':')));
    for (let i = 0xfffe; i > 0 && !ipv6; i--) {
      const c = [...g.slice(0, 4), 0, 0, 0, i];
      if (!used6.has(c.join(':'))) ipv6 = v6ToString(c);
    }
  }
  return { ipv4, ipv6 };
}

// ---------------------------------------------------------------------------------------
// stale-lab cleanup

const LAB_ID_RE = '[0-9a-f]{4}';

/**
 * Where lab dirs go: $FWLAB_TMPDIR, else /dev/shm (tmpfs: copying /etc 50 times onto the
 * ext4 /tmp of the CI VM costs seconds per host, on tmpfs ~0.1s), else os.tmpdir().
 */
function labBaseDir(): string {
  const env = process.env.FWLAB_TMPDIR;
  if (env) return env;
  try {
    if (statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    /* fall through */
  }
  return os.tmpdir();
}

function labTmpDirs(prefix: string, id?: string): string[] {
  const re = new RegExp(`^${prefix}lab-(${id ?? LAB_ID_RE})-`);
  const found: string[] = [];
  for (const base of new Set([labBaseDir(), os.tmpdir()])) {
    try {
      for (const n of readdirSync(base)) if (re.test(n)) found.push(path.join(base, n));
    } catch {
      /* missing base */
    }
  }
  return found;
}

function labNamespaces(prefix: string, id: string): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n === `${prefix}-${id}` || n.startsWith(`${prefix}-${id}-`));
  } catch {
    return [];
  }
}

/** true when some temp dir of that lab names a still-running owner process (or is brand new). */
function labIsLive(prefix: string, id: string): boolean {
  for (const d of labTmpDirs(prefix, id)) {
    try {
      const o = JSON.parse(readFileSync(path.join(d, 'owner.json'), 'utf8')) as { pid: number; start: string };
      if (pidAlive(o.pid) && procStartTime(o.pid) === o.start) return true;
    } catch {
      // owner.json not written yet (lab being created right now) -> live if fresh
      try {
        if (Date.now() - statSync(d).mtimeMs < 60_000) return true;
      } catch {
        /* vanished */
      }
    }
  }
  return false;
}

/** Synchronously kill everything in the lab's namespaces and delete namespaces, root link and temp dirs. */
function teardownSync(prefix: string, id: string, dirs: string[]): void {
  const nss = labNamespaces(prefix, id);
  const inos = new Set(nss.map(nsInode).filter((x): x is number => x !== undefined));
  // kill all processes living in any of the lab's network namespaces
  for (let round = 0; round < 100 && inos.size; round++) {
    const victims: number[] = [];
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const pid = Number(e);
      if (pid === process.pid) continue;
      const ino = pidNetIno(pid);
      if (ino !== undefined && inos.has(ino)) victims.push(pid);
    }
    if (!victims.length) break;
    for (const pid of victims) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    sleepSync(20);
  }
  killLabCgroups(prefix, id);
  const ip = findBin('ip') ?? 'ip';
  if (nss.length) {
    spawnSync(ip, ['-force', '-batch', '-'], {
      input: nss.map((n) => `netns del ${n}\n`).join(''),
      stdio: ['pipe', 'ignore', 'ignore'],
    });
  }
  const link = `${prefix}b-${id}`;
  if (existsSync(`/sys/class/net/${link}`)) spawnSync(ip, ['link', 'del', link], { stdio: 'ignore' });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * Name of the cgroup (under each hierarchy's root) that a lab host's daemons put their children in, e.g.
 * dockerd's `--cgroup-parent`. Container processes live in network namespaces of their own, so killing by
 * network namespace misses them; teardown kills and removes every `<prefix>lab-<id>-*` cgroup instead.
 */
export function labCgroupName(lab: Pick<Lab, 'prefix' | 'id'>, host: string): string {
  return `${lab.prefix}lab-${lab.id}-${host}`;
}

/** Cgroup directories of a lab (or, without id, of every lab of that prefix) in every mounted hierarchy. */
function labCgroups(prefix: string, id?: string): string[] {
  const re = new RegExp(`^${prefix}lab-(${id ?? LAB_ID_RE})-`);
  const found: string[] = [];
  let hierarchies: string[] = [CGROUP_ROOT];
  try {
    hierarchies = hierarchies.concat(readdirSync(CGROUP_ROOT).map((n) => path.join(CGROUP_ROOT, n)));
  } catch {
    return [];
  }
  for (const h of hierarchies) {
    try {
      for (const n of readdirSync(h))
        if (re.test(n) && statSync(path.join(h, n)).isDirectory()) found.push(path.join(h, n));
    } catch {
      /* not a directory / not a hierarchy */
    }
  }
  return found;
}

/** SIGKILL every process in the lab's cgroups (all depths), then remove the cgroups, deepest first. */
function killLabCgroups(prefix: string, id: string): void {
  killCgroupTrees(labCgroups(prefix, id));
}

/** Kill every process in one lab host's cgroup ({@link labCgroupName}), in every hierarchy, and remove it. */
export function killHostCgroups(lab: Pick<Lab, 'prefix' | 'id'>, host: string): void {
  const name = labCgroupName(lab, host);
  killCgroupTrees(labCgroups(lab.prefix, lab.id).filter((d) => path.basename(d) === name));
}

function killCgroupTrees(tops: string[]): void {
  const tree = (d: string): string[] => {
    const subs = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory());
    return [...subs.flatMap((e) => tree(path.join(d, e.name))), d];
  };
  for (const top of tops) {
    let dirs: string[];
    try {
      dirs = tree(top);
    } catch {
      continue;
    }
    for (let round = 0; round < 100; round++) {
      const pids = dirs.flatMap((d) => safeRead(path.join(d, 'cgroup.procs')).split('\n').filter(Boolean).map(Number));
      if (!pids.length) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      sleepSync(20);
    }
    for (const d of dirs) {
      try {
        rmdirSync(d); // rmdir(2) is how a cgroup is removed, its control files with it
      } catch {
        /* busy or gone: left for the next cleanupStaleLabs */
      }
    }
  }
}

/** Remove leftovers (namespaces `<prefix>-<id>*`, link `<prefix>b-<id>`, temp dirs) of labs whose owner process is gone. */
export async function cleanupStaleLabs(prefix = 'fw'): Promise<string[]> {
  checkPrefix(prefix);
  const ids = new Set<string>();
  const nsRe = new RegExp(`^${prefix}-(${LAB_ID_RE})(?:-|$)`);
  const linkRe = new RegExp(`^${prefix}b-(${LAB_ID_RE})$`);
  const scan = (d: string, re: RegExp): void => {
    try {
      for (const n of readdirSync(d)) {
        const m = re.exec(n);
        if (m) ids.add(m[1]!);
      }
    } catch {
      /* directory missing */
    }
  };
  scan('/run/netns', nsRe);
  scan('/sys/class/net', linkRe);
  const cgRe = new RegExp(`^${prefix}lab-(${LAB_ID_RE})-`);
  for (const d of labCgroups(prefix)) {
    const m = cgRe.exec(path.basename(d));
    if (m) ids.add(m[1]!);
  }
  const dirRe = new RegExp(`^${prefix}lab-(${LAB_ID_RE})-`);
  for (const d of labTmpDirs(prefix)) {
    const m = dirRe.exec(path.basename(d));
    if (m) ids.add(m[1]!);
  }
  const cleaned: string[] = [];
  for (const id of ids) {
    if (activeLabs.has(`${prefix}-${id}`) || labIsLive(prefix, id)) continue;
    teardownSync(prefix, id, labTmpDirs(prefix, id));
    cleaned.push(id);
  }
  return cleaned;
}

// labs of this process, torn down synchronously if the process exits without destroy()
const activeLabs = new Map<string, { prefix: string; id: string; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const l of activeLabs.values()) {
      try {
        teardownSync(l.prefix, l.id, [l.dir]);
      } catch {
        /* best effort */
      }
    }
  });
}

function checkPrefix(prefix: string): void {
  if (!/^[a-z][a-z0-9]{0,8}$/.test(prefix))
    throw new Error(`lab: invalid prefix ${JSON.stringify(prefix)} (want [a-z][a-z0-9]{0,8})`);
}

// ---------------------------------------------------------------------------------------
// probe
//
// Probes are a small Perl script (perl-base is Essential on Debian, starts in ~5ms) rather than
// node or socat, because it can set IP_RECVERR/IPV6_RECVERR. Reason: on veth links the
// REJECT's ICMP error comes back synchronously *inside* the connect() syscall while the socket
// is locked; the kernel then only records a soft error (TcpExtLockDroppedIcmps) and a plain
// connect() keeps waiting until the SYN retransmit ~1s later (so short timeouts said
// 'timeout' for REJECTed ports ~60% of the time). With RECVERR the ICMP is also queued on the
// socket's error queue (POLLERR), so a rejection is seen immediately.

const PROBE_PL = String.raw`
use strict; use warnings; use Socket qw(:all); use Fcntl;
my ($host, $port, $src, $tmo) = @ARGV;
my $v6 = index($host, ':') >= 0;
my $fam = $v6 ? AF_INET6 : AF_INET;
sub sa { my ($a, $p) = @_; return $v6 ? pack_sockaddr_in6($p, inet_pton(AF_INET6, $a)) : pack_sockaddr_in($p, inet_pton(AF_INET, $a)); }
sub out { print $_[0], "\n"; exit 0; }
socket(my $s, $fam, SOCK_STREAM, 0) or out('error ' . ($!+0) . " socket: $!");
setsockopt($s, $v6 ? 41 : 0, $v6 ? 25 : 11, pack('i', 1)) or out('error ' . ($!+0) . " recverr: $!");
if ($src ne '') { bind($s, sa($src, 0)) or out('error ' . ($!+0) . " bind $src: $!"); }
fcntl($s, F_SETFL, O_NONBLOCK) or out("error 0 fcntl: $!");
if (!connect($s, sa($host, $port))) {
  out('refused ' . ($!+0)) unless $!{EINPROGRESS};
}
my $left = $tmo / 1000;
while ($left > 0) {
  my $w = ''; vec($w, fileno($s), 1) = 1;
  my $n = select(undef, my $wo = $w, my $eo = $w, $left);
  out('timeout') if $n == 0;
  if ($n > 0) {
    my $err = unpack('i', getsockopt($s, SOL_SOCKET, SO_ERROR));
    out('refused ' . $err) if $err;
    out('open') if defined getpeername($s);
    my $buf;
    out('refused icmp') if defined recv($s, $buf, 512, 0x2000); # MSG_ERRQUEUE
  }
  select(undef, undef, undef, 0.01); $left -= 0.01;
}
out('timeout');
`;

const ERRNO_REFUSED = new Set([
  os.constants.errno.ECONNREFUSED,
  os.constants.errno.EHOSTUNREACH,
  os.constants.errno.ENETUNREACH,
  os.constants.errno.EACCES,
  os.constants.errno.EPERM,
  os.constants.errno.ECONNRESET,
]);

function parseProbe(r: ExecResult, what: string): ProbeResult {
  const line = r.stdout.trim();
  if (line === 'open' || line === 'timeout') return line;
  const m = /^refused (\d+|icmp)$/.exec(line);
  if (m) {
    if (m[1] === 'icmp') return 'refused';
    const errno = Number(m[1]);
    if (ERRNO_REFUSED.has(errno)) return 'refused';
    if (errno === os.constants.errno.ETIMEDOUT) return 'timeout';
    throw new Error(`lab.probe ${what}: connect failed with errno ${errno}`);
  }
  throw new Error(`lab.probe ${what}: ${line || `probe helper failed (rc=${r.code})`} ${r.stderr.trim()}`);
}

// ---------------------------------------------------------------------------------------
// lab creation

interface HostState {
  spec: LabHostSpec;
  host: LabHost;
  idx: number;
  nsIno: number;
  holder?: ChildProcess;
  sshd?: ChildProcess;
}

const SSHD_CONFIG = (name: string): string => `# fwgen test lab sshd for ${name}
Port 22
AddressFamily any
ListenAddress 0.0.0.0
ListenAddress ::
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
LoginGraceTime 60
X11Forwarding no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
LogLevel INFO
`;

const ICMP_SYSCTLS = [
  'echo 0 > /proc/sys/net/ipv4/icmp_ratelimit',
  'echo 0 > /proc/sys/net/ipv6/icmp/ratelimit',
  'echo 100000 > /proc/sys/net/ipv4/icmp_msgs_per_sec',
  'echo 10000 > /proc/sys/net/ipv4/icmp_msgs_burst',
  'true',
]
  .map((c) => `${c} 2>/dev/null`)
  .join('; ');

// mounts for private-fs hosts; $1 = host root dir (possibly under /tmp, so /tmp is bound last), $2 = hostname
const HOLDER_SCRIPT = [
  'set -e',
  'for d in etc root run var/log var/tmp tmp; do mount --bind "$1/$d" "/$d"; done',
  // A stub ifup: the host has ifupdown, so if-pre-up.d hooks count as run at boot.
  'if [ "$3" = 1 ]; then mkdir -p "$1/stub-sbin" && printf "#!/bin/sh\\nexit 0\\n" > "$1/stub-sbin/ifup" && chmod 755 "$1/stub-sbin/ifup" && mount --bind "$1/stub-sbin" /usr/local/sbin; fi',
  'hostname "$2"',
  'echo ready',
  'exec sleep infinity',
].join('\n');

/** Create a lab with the given hosts; throws (after cleaning up) if anything fails. */
export async function createLab(opts: CreateLabOptions): Promise<Lab> {
  const missing = labPrereqs();
  if (missing.length) throw new Error(`lab: missing prerequisites: ${missing.join(', ')}`);
  const prefix = opts.prefix ?? 'fw';
  checkPrefix(prefix);
  validateSpecs(opts.hosts);
  const controller =
    opts.controller === false ? undefined : { ...defaultController(opts.hosts), ...(opts.controller ?? {}) };
  if (controller && !net.isIPv4(controller.ipv4)) throw new Error(`lab: bad controller ipv4 ${controller.ipv4}`);
  if (controller?.ipv6 && !net.isIPv6(controller.ipv6)) throw new Error(`lab: bad controller ipv6 ${controller.ipv6}`);

  await cleanupStaleLabs(prefix);

  // reserve an id: temp dir (with owner.json) first, then the switch namespace (atomic)
  const ip = bin('ip');
  let id = '';
  let dir = '';
  for (let attempt = 0; ; attempt++) {
    id = randomBytes(2).toString('hex');
    dir = await fsp.mkdtemp(path.join(labBaseDir(), `${prefix}lab-${id}-`));
    writeFileSync(
      path.join(dir, 'owner.json'),
      JSON.stringify({ pid: process.pid, start: procStartTime(process.pid) }),
    );
    const r = existsSync(`/run/netns/${prefix}-${id}`)
      ? { code: 1, stderr: 'exists' }
      : await run([ip, 'netns', 'add', `${prefix}-${id}`]);
    if (r.code === 0) break;
    rmSync(dir, { recursive: true, force: true });
    if (attempt > 20) throw new Error(`lab: cannot create switch namespace: ${r.stderr}`);
  }
  const swNs = `${prefix}-${id}`;
  const ctlLink = `${prefix}b-${id}`;
  activeLabs.set(swNs, { prefix, id, dir });
  installExitHook();

  const states = new Map<string, HostState>();
  const children = new Set<ChildProcess>();
  let destroyed = false;

  const track = (c: ChildProcess): ChildProcess => {
    children.add(c);
    c.on('exit', () => children.delete(c));
    c.unref();
    return c;
  };

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    for (const c of children) killGroup(c.pid, 'SIGKILL');
    teardownSync(prefix, id, [dir]);
    activeLabs.delete(swNs);
  };

  const nsExecArgv = (st: HostState, argv: string[]): string[] =>
    st.host.privateFs
      ? [bin('nsenter'), '-t', String(st.holder!.pid), '-m', '-u', '-n', '--', ...argv]
      : [ip, 'netns', 'exec', st.host.ns, ...argv];

  const getState = (name: string): HostState => {
    if (destroyed) throw new Error('lab: already destroyed');
    const st = states.get(name);
    if (!st) throw new Error(`lab: unknown host ${JSON.stringify(name)}`);
    return st;
  };

  const startSshd = async (name: string): Promise<void> => {
    const st = getState(name);
    if (!st.spec.sshd) throw new Error(`lab: host ${name} has no sshd`);
    if (st.sshd && st.sshd.exitCode === null && st.sshd.signalCode === null) return;
    const logPath = path.join(st.host.root, 'sshd.log');
    const fd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      child = track(
        spawn(
          bin('nsenter'),
          [
            '-t',
            String(st.holder!.pid),
            '-m',
            '-u',
            '-n',
            '--',
            bin('sshd'),
            '-D',
            '-e',
            '-f',
            '/etc/ssh/sshd_config_lab',
          ],
          {
            cwd: '/',
            stdio: ['ignore', fd, fd],
            detached: true,
          },
        ),
      );
    } finally {
      closeSync(fd);
    }
    st.sshd = child;
    let exited: string | undefined;
    child.on('exit', (c, s) => (exited = `sshd exited (code ${c}, signal ${s})`));
    child.on('error', (e) => (exited = `sshd spawn error: ${e.message}`));
    await waitFor(
      `sshd on ${name}`,
      15_000,
      () => isListening(child.pid!, st.nsIno, 22, false) && isListening(child.pid!, st.nsIno, 22, true),
      () => (exited ? `${exited}\n${safeRead(logPath).slice(-2000)}` : undefined),
    );
  };

  const stopSshd = async (name: string): Promise<void> => {
    const st = getState(name);
    const c = st.sshd;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    try {
      process.kill(c.pid!, 'SIGTERM');
    } catch {
      /* gone */
    }
    const t = setTimeout(() => killGroup(c.pid, 'SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
    st.sshd = undefined;
  };

  try {
    const sw = (cmds: string[]): Promise<string> =>
      runOk([ip, '-n', swNs, '-batch', '-'], { input: cmds.join('\n') + '\n' });
    // switch namespace: no netfilter on bridged frames, no IPv6 on the bridge itself
    await runOk([
      ip,
      'netns',
      'exec',
      swNs,
      'sh',
      '-c',
      'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; ' +
        'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; true',
    ]);
    await sw([
      'link set lo up',
      'link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0',
      'link set br0 up',
    ]);

    // client key (one per lab)
    const keyPath = path.join(dir, 'id_ed25519');
    await runOk([bin('ssh-keygen'), '-q', '-t', 'ed25519', '-N', '', '-C', `fwlab-${id}`, '-f', keyPath]);
    const publicKey = readFileSync(`${keyPath}.pub`, 'utf8').trim();
    const knownHostsPath = path.join(dir, 'known_hosts');
    writeFileSync(knownHostsPath, '');

    // controller link (root namespace <-> bridge)
    if (controller) {
      await runOk([ip, 'link', 'add', ctlLink, 'type', 'veth', 'peer', 'name', 'ctl0', 'netns', swNs]);
      await sw(['link set ctl0 master br0', 'link set ctl0 up']);
      const sysctl6 = (k: string, v: string): void => {
        try {
          writeFileSync(`/proc/sys/net/ipv6/conf/${ctlLink}/${k}`, v);
        } catch {
          /* ipv6 disabled? */
        }
      };
      if (controller.ipv6) {
        sysctl6('accept_ra', '0');
        sysctl6('accept_dad', '0');
      } else {
        sysctl6('disable_ipv6', '1');
      }
      const cmds = [`link set ${ctlLink} up`, `addr add ${controller.ipv4}/32 dev ${ctlLink}`];
      if (controller.ipv6) cmds.push(`addr add ${controller.ipv6}/128 dev ${ctlLink} nodad`);
      await runOk([ip, '-batch', '-'], { input: cmds.join('\n') + '\n' });
    }

    // hosts
    await mapLimit(opts.hosts, opts.concurrency ?? 8, async (spec, idx) => {
      const ns = `${swNs}-${spec.name}`;
      const ifname = spec.ifname ?? 'eth1';
      const privateFs = !!(spec.sshd || spec.privateFs);
      const root = path.join(dir, 'hosts', spec.name);
      mkdirSync(root, { recursive: true, mode: 0o700 });
      const host: LabHost = {
        name: spec.name,
        ns,
        ifname,
        ipv4: spec.ipv4,
        extraIpv4: [...(spec.extraIpv4 ?? [])],
        ...(spec.ipv6 ? { ipv6: spec.ipv6 } : {}),
        root,
        privateFs,
        sshd: !!spec.sshd,
        etcDir: privateFs ? path.join(root, 'etc') : '/etc',
        rootHome: privateFs ? path.join(root, 'root') : '/root',
      };
      await runOk([ip, 'netns', 'add', ns]);
      const nsIno = nsInode(ns);
      if (nsIno === undefined) throw new Error(`lab: namespace ${ns} vanished`);
      const st: HostState = { spec, host, idx, nsIno };
      states.set(spec.name, st);

      await runOk([ip, '-n', swNs, 'link', 'add', `v${idx}`, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns]);
      await runOk([ip, '-n', swNs, 'link', 'set', `v${idx}`, 'master', 'br0', 'up']);
      const p4 = spec.prefix4 ?? 24;
      const cmds = ['link set lo up', `link set ${ifname} up`, `addr add ${spec.ipv4}/${p4} dev ${ifname}`];
      for (const a of host.extraIpv4) cmds.push(`addr add ${a}/${p4} dev ${ifname}`);
      if (spec.ipv6) cmds.push(`addr add ${spec.ipv6}/${spec.prefix6 ?? 64} dev ${ifname} nodad`);
      if (controller) {
        cmds.push(`route replace ${controller.ipv4}/32 dev ${ifname}`);
        if (controller.ipv6 && spec.ipv6) cmds.push(`route replace ${controller.ipv6}/128 dev ${ifname}`);
      }
      await runOk([ip, '-n', ns, '-batch', '-'], { input: cmds.join('\n') + '\n' });
      // no ICMP rate limiting: many parallel probes against a REJECT rule must all see the ICMP error
      await runOk([ip, 'netns', 'exec', ns, 'sh', '-c', ICMP_SYSCTLS]);

      if (privateFs) {
        await runOk([bin('cp'), '-a', '/etc', host.etcDir]);
        for (const f of readdirSync(path.join(host.etcDir, 'ssh'))) {
          if (f.startsWith('ssh_host_')) rmSync(path.join(host.etcDir, 'ssh', f), { force: true });
        }
        writeFileSync(path.join(host.etcDir, 'hostname'), `${spec.name}\n`);
        unlockRoot(host.etcDir);
        mkdirSync(path.join(host.rootHome, '.ssh'), { recursive: true, mode: 0o700 });
        writeFileSync(path.join(host.rootHome, '.ssh', 'authorized_keys'), publicKey + '\n', { mode: 0o600 });
        for (const d of ['run/sshd', 'var/log', 'var/tmp', 'tmp'])
          mkdirSync(path.join(root, d), { recursive: true, mode: 0o755 });
        await fsp.chmod(path.join(root, 'root'), 0o700);
        await fsp.chmod(path.join(root, 'tmp'), 0o1777);
        await fsp.chmod(path.join(root, 'var/tmp'), 0o1777);
        for (const f of ['lastlog', 'wtmp', 'btmp']) writeFileSync(path.join(root, 'var/log', f), '');
        writeFileSync(path.join(root, 'run', 'utmp'), '');

        // mount-namespace holder
        const holder = track(
          spawn(
            bin('ip'),
            [
              'netns',
              'exec',
              ns,
              bin('unshare'),
              '-m',
              '-u',
              '--propagation',
              'private',
              bin('sh'),
              '-c',
              HOLDER_SCRIPT,
              'sh',
              root,
              spec.name,
              spec.ifupdown === false ? '0' : '1',
            ],
            {
              cwd: '/',
              stdio: ['ignore', 'pipe', 'pipe'],
              detached: true,
            },
          ),
        );
        st.holder = holder;
        await new Promise<void>((resolve, reject) => {
          let out = '';
          let err = '';
          const t = setTimeout(() => reject(new Error(`lab: holder for ${spec.name} not ready: ${err}`)), 15_000);
          holder.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('ready')) {
              clearTimeout(t);
              holder.stdout!.destroy();
              holder.stderr!.destroy();
              resolve();
            }
          });
          holder.stderr!.on('data', (d: Buffer) => (err += d.toString()));
          holder.on('exit', (c) => {
            clearTimeout(t);
            reject(new Error(`lab: holder for ${spec.name} exited (${c}): ${err}`));
          });
        });
      }

      dbg(`${spec.name}: net+fs ready`);
      if (spec.sshd) {
        const keyFile = path.join(host.etcDir, 'ssh', 'ssh_host_ed25519_key');
        await runOk([bin('ssh-keygen'), '-q', '-t', 'ed25519', '-N', '', '-C', `root@${spec.name}`, '-f', keyFile]);
        host.hostKeyPub = readFileSync(`${keyFile}.pub`, 'utf8').trim();
        writeFileSync(path.join(host.etcDir, 'ssh', 'sshd_config_lab'), SSHD_CONFIG(spec.name));
        await startSshd(spec.name);
        dbg(`${spec.name}: sshd up`);
      }

      // socat listeners
      for (const port of spec.listen ?? []) {
        const fams: Array<[string, boolean]> = [[`TCP4-LISTEN:${port},fork,reuseaddr`, false]];
        if (spec.ipv6) fams.push([`TCP6-LISTEN:${port},fork,reuseaddr,ipv6only=1`, true]);
        for (const [addr, v6] of fams) {
          const fd = openSync(path.join(root, `socat-${port}${v6 ? '-6' : ''}.log`), 'a');
          let c: ChildProcess;
          try {
            c = track(
              spawn(bin('ip'), ['netns', 'exec', ns, bin('socat'), addr, 'SYSTEM:echo ok'], {
                cwd: '/',
                stdio: ['ignore', fd, fd],
                detached: true,
              }),
            );
          } finally {
            closeSync(fd);
          }
          let exited: string | undefined;
          c.on('exit', (code) => (exited = `socat exited (${code})`));
          await waitFor(
            `socat ${spec.name}:${port}`,
            10_000,
            () => isListening(c.pid!, nsIno, port, v6),
            () => exited,
          );
        }
      }
    });

    // root-namespace routes to every host address
    if (controller) {
      const cmds: string[] = [];
      for (const { host } of states.values()) {
        for (const a of [host.ipv4, ...host.extraIpv4])
          cmds.push(`route add ${a}/32 dev ${ctlLink} src ${controller.ipv4}`);
        if (host.ipv6 && controller.ipv6) cmds.push(`route add ${host.ipv6}/128 dev ${ctlLink} src ${controller.ipv6}`);
      }
      if (cmds.length) {
        const r = await run([ip, '-batch', '-'], { input: cmds.join('\n') + '\n', timeoutMs: 30_000 });
        if (r.code !== 0) {
          throw new Error(
            `lab: adding root-namespace routes failed (another running lab probably uses the same host addresses; ` +
              `use a distinct subnet per test file, or controller: false): ${r.stderr.trim()}`,
          );
        }
      }
    }

    // known_hosts
    const kh: string[] = [];
    for (const { host } of states.values()) {
      if (!host.hostKeyPub) continue;
      const [type, key] = host.hostKeyPub.split(/\s+/);
      for (const a of [host.ipv4, ...host.extraIpv4, ...(host.ipv6 ? [host.ipv6] : [])]) kh.push(`${a} ${type} ${key}`);
    }
    writeFileSync(knownHostsPath, kh.join('\n') + (kh.length ? '\n' : ''));

    const hosts = new Map<string, LabHost>();
    for (const s of opts.hosts) hosts.set(s.name, states.get(s.name)!.host);

    const exec = async (
      name: string,
      argv: string[],
      o: { input?: string; timeoutMs?: number } = {},
    ): Promise<ExecResult> => {
      if (!argv.length) throw new Error('lab.exec: empty argv');
      return run(nsExecArgv(getState(name), argv), { input: o.input, timeoutMs: o.timeoutMs ?? 120_000 });
    };

    const lab: Lab = {
      id,
      prefix,
      dir,
      hosts,
      ...(controller
        ? {
            controller: {
              ipv4: controller.ipv4,
              ...(controller.ipv6 ? { ipv6: controller.ipv6 } : {}),
              ifname: ctlLink,
            },
          }
        : {}),
      exec,
      async execOk(name, argv, o) {
        const r = await exec(name, argv, o);
        if (r.code !== 0) throw new Error(`lab.exec on ${name} failed (rc=${r.code}): ${argv.join(' ')}\n${r.stderr}`);
        return r.stdout;
      },
      async probe(from, to, port, o = {}) {
        const timeoutMs = o.timeoutMs ?? 1500;
        const target = hosts.get(to)?.ipv4 ?? to;
        if (!net.isIP(target)) throw new Error(`lab.probe: bad target ${to}`);
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`lab.probe: bad port ${port}`);
        if (o.source !== undefined && !net.isIP(o.source)) throw new Error(`lab.probe: bad source ${o.source}`);
        const probeArgv = [bin('perl'), '-e', PROBE_PL, target, String(port), o.source ?? '', String(timeoutMs)];
        const argv = from === CONTROLLER ? probeArgv : [ip, 'netns', 'exec', getState(from).host.ns, ...probeArgv];
        const r = await run(argv, { timeoutMs: timeoutMs + 15_000 });
        return parseProbe(r, `${from} -> ${target}:${port}`);
      },
      sshKey: { privatePath: keyPath, publicKey },
      knownHostsPath,
      sshArgs(name, o = {}) {
        const h = getState(name).host;
        const addr = o.ipv6 ? h.ipv6 : h.ipv4;
        if (!addr) throw new Error(`lab.sshArgs: host ${name} has no ${o.ipv6 ? 'ipv6' : 'ipv4'}`);
        return [
          '-i',
          keyPath,
          '-o',
          'IdentitiesOnly=yes',
          '-o',
          `UserKnownHostsFile=${knownHostsPath}`,
          '-o',
          'GlobalKnownHostsFile=/dev/null',
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          'BatchMode=yes',
          '-o',
          'ConnectTimeout=10',
          '-o',
          'LogLevel=ERROR',
          '-F',
          '/dev/null',
          `root@${addr}`,
        ];
      },
      stopSshd,
      startSshd,
      destroy,
    };
    return lab;
  } catch (e) {
    await destroy();
    throw e;
  }
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/** With UsePAM=no sshd refuses accounts whose shadow password starts with '!' (locked); use '*' instead in the private copy. */
function unlockRoot(etcDir: string): void {
  const p = path.join(etcDir, 'shadow');
  const s = safeRead(p);
  if (!s) return;
  const fixed = s.replace(/^root:!+[^:]*:/m, 'root:*:');
  if (fixed !== s) writeFileSync(p, fixed);
}

function validateSpecs(specs: LabHostSpec[]): void {
  if (!specs.length) throw new Error('lab: no hosts');
  const names = new Set<string>();
  const addrs = new Set<string>();
  for (const s of specs) {
    if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(s.name)) throw new Error(`lab: bad host name ${JSON.stringify(s.name)}`);
    if (names.has(s.name)) throw new Error(`lab: duplicate host ${s.name}`);
    names.add(s.name);
    for (const a of [s.ipv4, ...(s.extraIpv4 ?? [])]) {
      if (!net.isIPv4(a)) throw new Error(`lab: bad ipv4 ${JSON.stringify(a)} for ${s.name}`);
      if (addrs.has(a)) throw new Error(`lab: duplicate address ${a}`);
      addrs.add(a);
    }
    if (s.ipv6 !== undefined) {
      if (!net.isIPv6(s.ipv6)) throw new Error(`lab: bad ipv6 ${JSON.stringify(s.ipv6)} for ${s.name}`);
      const k = expandV6(s.ipv6).join(':');
      if (addrs.has(k)) throw new Error(`lab: duplicate address ${s.ipv6}`);
      addrs.add(k);
    }
    if (s.ifname !== undefined && (!/^[A-Za-z0-9_.-]{1,15}$/.test(s.ifname) || s.ifname === 'lo')) {
      throw new Error(`lab: bad ifname ${JSON.stringify(s.ifname)}`);
    }
    for (const p of [s.prefix4, s.prefix6])
      if (p !== undefined && !Number.isInteger(p)) throw new Error(`lab: bad prefix for ${s.name}`);
    for (const p of s.listen ?? []) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`lab: bad listen port ${p}`);
      if (s.sshd && p === 22) throw new Error(`lab: ${s.name}: port 22 is taken by sshd`);
    }
  }
}
