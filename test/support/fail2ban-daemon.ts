/**
 * A real `fail2ban-server` inside a lab host, for tests of how fwgen coexists with the chain fail2ban
 * manages (`f2b-<jail>`, with its jump inserted at the top of INPUT).
 *
 * Everything lives under `<host.root>/fail2ban/`: a config dir (the system's action.d and filter.d,
 * plus fail2ban.conf, jail.conf and a filter of our own), socket, pid file, sqlite db, log file and
 * the "auth log" the one jail watches. The jail's filter matches lines
 * `fwgen-test auth failure from <HOST>`; maxretry 1, so one line bans.
 *
 * Observed with fail2ban 1.0.2 (see test/fixtures/iptables-save/fail2ban.txt): the iptables actions
 * start on demand, so after the jail starts there is no chain; the first ban creates `f2b-<jail>`
 * (`-s <ip>/32 -j REJECT --reject-with icmp-port-unreachable` rules inserted at its top, a final
 * `-j RETURN`) and inserts `-p tcp -m multiport --dports <ports> -j f2b-<jail>` at position 1 of INPUT.
 * An unban leaves chain and jump; stopping the server (actionstop) removes both.
 */
import { cpSync, mkdirSync, appendFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { ExecResult, Lab } from './lab.js';
import { pidAlive, pollUntil, spawnInHost, tailFile, terminatePid } from './daemon-process.js';

/** Options for {@link startFail2ban}. */
export interface Fail2banOptions {
  /** jail name (default 'fwgen-test'); the chain is `f2b-<jail>` */
  jail?: string;
  /** TCP ports the jail protects (default [8080]); ignored by iptables-allports */
  ports?: number[];
  /** fail2ban ban action (default 'iptables-multiport') */
  banaction?: 'iptables-multiport' | 'iptables-allports';
  /** how long to wait for the server and for bans to show (default 30 s) */
  timeoutMs?: number;
}

/** `fail2ban-client status <jail>`, parsed. */
export interface JailStatus {
  currentlyFailed: number;
  totalFailed: number;
  currentlyBanned: number;
  totalBanned: number;
  bannedIps: string[];
  /** the client's output as printed */
  raw: string;
}

/** A running fail2ban-server in a lab host. */
export interface Fail2banDaemon {
  host: string;
  /** the daemon's private directory (`<host.root>/fail2ban`) */
  dir: string;
  socket: string;
  jail: string;
  /** `f2b-<jail>` */
  chain: string;
  /** the log file the jail watches */
  authLog: string;
  /** milliseconds from spawn until the jail answered */
  startupMs: number;
  /** run `fail2ban-client -c <conf> -s <socket> ...args` inside the host */
  client(args: string[]): Promise<ExecResult>;
  /** ban `ip` in the jail (`set <jail> banip`); resolves when the REJECT rule is in iptables */
  ban(ip: string): Promise<void>;
  /** unban `ip` (`set <jail> unbanip`); resolves when its rule is gone from iptables */
  unban(ip: string): Promise<void>;
  /** append one matching failure line for `ip` to the jail's log; resolves when fail2ban banned it in iptables */
  fail(ip: string): Promise<void>;
  /** the jail's status */
  status(): Promise<JailStatus>;
  /** source addresses with a rule in the `f2b-<jail>` chain (empty when the chain does not exist) */
  bannedInIptables(): Promise<string[]>;
  /** `iptables-save` of the host (optionally one table); `counters` adds `-c` */
  iptablesSave(table?: string, opts?: { counters?: boolean }): Promise<string>;
  /** `fail2ban-client stop` (its actionstop removes the chain and jump), kill if needed, delete its dir; idempotent */
  stop(): Promise<void>;
}

const FILTER_CONF = `[Definition]
failregex = ^fwgen-test auth failure from <HOST>$
ignoreregex =
# the test's lines carry no timestamp: take them as "now"
datepattern = {NONE}
`;

const FAIL2BAN_CONF = (dir: string): string => `[DEFAULT]
loglevel = INFO
logtarget = ${dir}/fail2ban.log
syslogsocket = auto
socket = ${dir}/fail2ban.sock
pidfile = ${dir}/fail2ban.pid
dbfile = ${dir}/fail2ban.sqlite3
dbpurgeage = 1d
dbmaxmatches = 10

[Definition]

[Thread]
`;

const JAIL_CONF = (jail: string, authLog: string, banaction: string, ports: number[]): string => `[DEFAULT]
bantime = 1h
findtime = 1h
maxretry = 1
backend = polling
usedns = no
banaction = ${banaction}

[${jail}]
enabled = true
filter = fwgen-test
logpath = ${authLog}
port = ${ports.join(',')}
protocol = tcp
action = %(banaction)s[name=${jail}, port="%(port)s", protocol="%(protocol)s", chain="INPUT"]
`;

/** Start fail2ban-server with one jail in lab host `host` (privateFs or sshd host); waits until the jail runs. */
export async function startFail2ban(lab: Lab, host: string, opts: Fail2banOptions = {}): Promise<Fail2banDaemon> {
  const h = lab.hosts.get(host);
  if (!h) throw new Error(`fail2ban-daemon: unknown lab host ${host}`);
  if (!h.privateFs) {
    throw new Error(`fail2ban-daemon: host ${host} needs privateFs (its own /run for the xtables lock)`);
  }
  const jail = opts.jail ?? 'fwgen-test';
  if (!/^[a-z0-9-]{1,24}$/.test(jail)) throw new Error(`fail2ban-daemon: bad jail name ${jail}`);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const dir = path.join(h.root, 'fail2ban');
  const conf = path.join(dir, 'conf');
  const socket = path.join(dir, 'fail2ban.sock');
  const authLog = path.join(dir, 'auth.log');
  const serverLog = path.join(dir, 'fail2ban.log');
  const chain = `f2b-${jail}`;

  mkdirSync(conf, { recursive: true, mode: 0o700 });
  for (const d of ['action.d', 'filter.d']) {
    cpSync(path.join('/etc/fail2ban', d), path.join(conf, d), { recursive: true });
  }
  writeFileSync(path.join(conf, 'filter.d', 'fwgen-test.conf'), FILTER_CONF);
  writeFileSync(path.join(conf, 'fail2ban.conf'), FAIL2BAN_CONF(dir));
  const banaction = opts.banaction ?? 'iptables-multiport';
  writeFileSync(path.join(conf, 'jail.conf'), JAIL_CONF(jail, authLog, banaction, opts.ports ?? [8080]));
  writeFileSync(authLog, '');

  const client = (args: string[]): Promise<ExecResult> =>
    lab.exec(host, ['fail2ban-client', '-c', conf, '-s', socket, ...args], { timeoutMs: 30_000 });
  const clientOk = async (args: string[]): Promise<string> => {
    const r = await client(args);
    if (r.code !== 0) {
      throw new Error(
        `fail2ban-daemon: fail2ban-client ${args.join(' ')} failed (rc=${r.code}): ${r.stderr}${r.stdout}`,
      );
    }
    return r.stdout;
  };
  const bannedInIptables = async (): Promise<string[]> => {
    const r = await lab.exec(host, ['iptables', '-w', '-S', chain]);
    if (r.code !== 0) return [];
    return [...r.stdout.matchAll(/^-A \S+ -s (\S+?)(?:\/32)? -j REJECT/gm)].map((m) => m[1]!);
  };
  const waitBanned = (ip: string, banned: boolean, what: string): Promise<void> =>
    pollUntil(
      timeoutMs,
      async () => (await bannedInIptables()).includes(ip) === banned,
      async () =>
        `fail2ban-daemon: ${what} ${ip} on ${host}: not ${banned ? 'in' : 'out of'} ${chain} after ${timeoutMs} ms\n` +
        `${(await lab.exec(host, ['iptables-save'])).stdout}\n${tailFile(serverLog)}`,
    );
  const checkIp = (ip: string): void => {
    if (!net.isIP(ip)) throw new Error(`fail2ban-daemon: bad address ${JSON.stringify(ip)}`);
  };

  const t0 = Date.now();
  const pid = await spawnInHost(lab, host, path.join(dir, 'server.out'), [
    'fail2ban-server',
    '-f',
    '-x',
    '-c',
    conf,
    '-s',
    socket,
    '-p',
    path.join(dir, 'fail2ban.pid'),
  ]);
  let stopped = false;

  const daemon: Fail2banDaemon = {
    host,
    dir,
    socket,
    jail,
    chain,
    authLog,
    startupMs: 0,
    client,
    async ban(ip) {
      checkIp(ip);
      await clientOk(['set', jail, 'banip', ip]);
      await waitBanned(ip, true, 'ban');
    },
    async unban(ip) {
      checkIp(ip);
      await clientOk(['set', jail, 'unbanip', ip]);
      await waitBanned(ip, false, 'unban');
    },
    async fail(ip) {
      checkIp(ip);
      appendFileSync(authLog, `fwgen-test auth failure from ${ip}\n`);
      await waitBanned(ip, true, 'failure line for');
    },
    async status() {
      const raw = await clientOk(['status', jail]);
      const num = (label: string): number => Number(new RegExp(`${label}:\\s*(\\d+)`).exec(raw)?.[1] ?? NaN);
      const list = /Banned IP list:\s*(.*)$/m.exec(raw)?.[1]?.trim() ?? '';
      return {
        currentlyFailed: num('Currently failed'),
        totalFailed: num('Total failed'),
        currentlyBanned: num('Currently banned'),
        totalBanned: num('Total banned'),
        bannedIps: list ? list.split(/\s+/) : [],
        raw,
      };
    },
    bannedInIptables,
    iptablesSave: (table, x = {}) =>
      lab.execOk(host, ['iptables-save', ...(x.counters ? ['-c'] : []), ...(table ? ['-t', table] : [])]),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (pidAlive(pid)) await client(['stop']);
      await terminatePid(pid, 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await pollUntil(
      timeoutMs,
      async () => {
        if (!pidAlive(pid)) throw new Error(`fail2ban-daemon: server on ${host} exited:\n${tailFile(serverLog)}`);
        return (await client(['status', jail])).code === 0;
      },
      () => `fail2ban-daemon: jail ${jail} on ${host} not up after ${timeoutMs} ms:\n${tailFile(serverLog)}`,
    );
    daemon.startupMs = Date.now() - t0;
  } catch (e) {
    await daemon.stop().catch(() => undefined);
    throw e;
  }
  return daemon;
}
