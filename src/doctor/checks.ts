import type Ipaddr from 'ipaddr.js';
import { requireCjs } from '../util/require-cjs.js';
import type { ForwardMode, Host, Inventory } from '../inventory/model.js';
import type { RemotePaths } from '../remote/scripts.js';
import { BOOT_HOOK_PATH, whyInactive, type BootMechanism, type BootRunner } from '../remote/boot-hook.js';
import type { HostFacts, LiveState, Tool } from '../remote/facts.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

export type Level = 'ok' | 'warn' | 'fail';

/** One finding: what was checked, how it went, and (unless ok) the one-line fix. */
export interface Check {
  /** The host checked; absent for checks of the inventory itself. */
  readonly host?: string;
  readonly name: string;
  readonly level: Level;
  readonly detail: string;
  readonly fix?: string;
}

/** What evaluating a host's facts needs to know besides the facts. */
export interface HostContext {
  readonly host: Host;
  /** The host's role's `forward:` (reject when unknown). */
  readonly forward?: ForwardMode;
  readonly inventory: Pick<Inventory, 'interface' | 'trust' | 'hasIpv6'> & {
    readonly sets?: Inventory['sets'];
    /** Pull mode: the inventory has an `agent:` block. */
    readonly agent?: unknown;
  };
  readonly paths: RemotePaths;
}

/** A lock or staged file older than this, with no ship in flight, was left by a ship that died. */
export const STALE_AFTER_S = 600;

const fwgenShip = (c: HostContext, flags = '') => `\`fwgen ship --host ${c.host.name}${flags}\``;

/** Turns a host's facts into checks, in the order a person fixes them. */
export function evaluateFacts(f: HostFacts, c: HostContext): Check[] {
  const checks: (Omit<Check, 'host'> | undefined)[] = [
    privileges(f, c),
    tools(f, c),
    agentNeeds(f, c),
    rulesFolder(f, c),
    ...(f.uid === 0
      ? [backend(f), rulesFile(f, c), boot(f, c), ...otherManagers(f, c)]
      : [rulesFile(f, c), boot(f, c)]),
    addresses(f, c),
    internalInterface(f, c),
    ...leftovers(f, c),
  ];
  return checks.filter((x): x is Omit<Check, 'host'> => x !== undefined).map((x) => ({ host: c.host.name, ...x }));
}

function privileges(f: HostFacts, c: HostContext): Omit<Check, 'host'> | undefined {
  if (f.uid === 0)
    return c.host.ssh.sudo ? { name: 'sudo', level: 'ok', detail: `sudo -n works for ${c.host.ssh.user}` } : undefined;
  return {
    name: 'privileges',
    level: 'fail',
    detail: `connected as ${c.host.ssh.user} (uid ${f.uid}) without ssh.sudo: iptables needs root`,
    fix: `set ssh.sudo: true (with passwordless sudo for ${c.host.ssh.user}) or ssh.user: root`,
  };
}

function tools(f: HostFacts, c: HostContext): Omit<Check, 'host'> {
  const needed: Tool[] = [
    'iptables-restore',
    'iptables-save',
    ...(c.inventory.hasIpv6 ? (['ip6tables-restore', 'ip6tables-save'] as const) : []),
  ];
  const missing = needed.filter((t) => !f.tools.has(t));
  if (missing.length > 0)
    return {
      name: 'tools',
      level: 'fail',
      detail: `missing on the host: ${missing.join(', ')}`,
      fix: 'install iptables (`apt-get install iptables`)',
    };
  if (c.inventory.sets === 'ipset' && !f.tools.has('ipset')) {
    const detail = 'ipset missing on the host (the inventory says sets: ipset)';
    return { name: 'tools', level: 'fail', detail, fix: 'install ipset (`apt-get install ipset`)' };
  }
  if (c.inventory.sets === 'ipset') needed.push('ipset');
  return { name: 'tools', level: 'ok', detail: `${needed.join(', ')} present` };
}

/**
 * Pull mode (an `agent:` block, or an agent on the host): what remote/agent.sh runs besides iptables
 * (checked by tools) and sh: sha256sum, curl or GNU wget, and ssh-keygen with -Y (OpenSSH 8.1 or later).
 */
function agentNeeds(f: HostFacts, c: HostContext): Omit<Check, 'host'> | undefined {
  if (!c.inventory.agent && !f.agent) return undefined;
  const installed = f.agent ? 'installed' : 'not installed yet';
  const missing = [
    f.tools.has('sha256sum') ? undefined : 'sha256sum',
    f.tools.has('curl') || f.wget === 'gnu'
      ? undefined
      : f.wget === 'other'
        ? 'curl (its wget is not GNU wget)'
        : 'curl or wget',
    !f.tools.has('ssh-keygen') ? 'ssh-keygen' : f.sshsig === false ? 'ssh-keygen -Y (OpenSSH 8.1 or later)' : undefined,
  ].filter((m): m is string => m !== undefined);
  if (missing.length > 0)
    return {
      name: 'agent',
      level: 'fail',
      detail: `the pull agent (${installed}) needs ${missing.join(', ')}`,
      fix: 'install them (`apt-get install curl openssh-client coreutils`); OpenSSH must be 8.1 or later',
    };
  const fetcher = f.tools.has('curl') ? 'curl' : 'GNU wget';
  return {
    name: 'agent',
    level: 'ok',
    detail: `the pull agent (${installed}) has sha256sum, ${fetcher}, ssh-keygen -Y`,
  };
}

/** The backend `iptables` uses, from `iptables -V`; before 1.8 there was only legacy. */
export function backendOf(version: string): 'nf_tables' | 'legacy' | undefined {
  if (/\(nf_tables\)/.test(version)) return 'nf_tables';
  if (/\(legacy\)/.test(version) || /^iptables v1\.[0-7]\./.test(version)) return 'legacy';
  return undefined;
}

function backend(f: HostFacts): Omit<Check, 'host'> | undefined {
  const current = backendOf(f.iptablesVersion);
  if (!current)
    return f.iptablesVersion
      ? { name: 'backend', level: 'warn', detail: `cannot tell the backend from "${f.iptablesVersion}"` }
      : undefined;
  const other = current === 'nf_tables' ? 'legacy' : 'nft';
  const counts =
    current === 'nf_tables' ? [f.ruleCounts.legacy4, f.ruleCounts.legacy6] : [f.ruleCounts.nft4, f.ruleCounts.nft6];
  const inOther = counts.reduce<number>((a, n) => a + (n ?? 0), 0);
  if (inOther === 0) return { name: 'backend', level: 'ok', detail: `iptables uses ${current}; no rules in ${other}` };
  return {
    name: 'backend',
    level: 'fail',
    detail: `iptables uses ${current}, but ${other} holds ${inOther} more rule(s): the kernel filters every packet through both, and \`iptables-save\` shows only ${current}`,
    fix: `review with \`iptables-${other}-save\` (and ip6tables-${other}-save), then remove them: \`iptables-${other} -F && iptables-${other} -X\` for each table`,
  };
}

/** ship, status and rollback refuse a rules folder that someone other than root can change. */
function rulesFolder(f: HostFacts, c: HostContext): Omit<Check, 'host'> | undefined {
  if (f.unsafeFolder === undefined) return undefined;
  const folder = c.paths.rules.slice(0, c.paths.rules.lastIndexOf('/')) || '/';
  return {
    name: 'rules folder',
    level: 'fail',
    detail: `${f.unsafeFolder}: fwgen runs and stages files beside ${c.paths.rules} as root, so ship, status and rollback refuse this host`,
    fix: `make ${folder} and every folder above it owned by root and writable by root only (chown root, chmod go-w)`,
  };
}

function rulesFile(f: HostFacts, c: HostContext): Omit<Check, 'host'> | undefined {
  const { rules, rules6 } = c.paths;
  const states: [string, LiveState][] = [
    [rules, f.live4],
    ...(c.inventory.hasIpv6 ? [[rules6, f.live6] as [string, LiveState]] : []),
  ];
  const missing = states.filter(([, s]) => s === 'no-file').map(([p]) => p);
  if (missing.length > 0)
    return {
      name: 'rules file',
      level: 'warn',
      detail: `${missing.join(', ')} missing: this host has not been shipped yet`,
      fix: fwgenShip(c),
    };
  const present = states.map(([p]) => p).join(', ');
  // Without root or without iptables-save the live rules cannot be read; other checks say why.
  if (f.uid !== 0 || states.some(([, s]) => s === 'no-tool'))
    return { name: 'rules file', level: 'ok', detail: `${present} present (live rules not compared)` };
  const differ = states.filter(([, s]) => s === 'differ').map(([p]) => p);
  if (differ.length > 0) {
    return {
      name: 'rules file',
      level: 'warn',
      detail: `the live rules differ from ${differ.join(', ')} (changed by hand, by another tool, or not restored at boot)`,
      fix: `see the difference with \`iptables-save -t filter\` on the host; ${fwgenShip(c)} re-applies the file`,
    };
  }
  return { name: 'rules file', level: 'ok', detail: `${present} present and live` };
}

/**
 * Is the rules file loaded at boot, by something that will actually run? Each fix is what `fwgen ship`
 * does about it (its boot-hook step, remote/boot-hook.sh), so following it never leads back here.
 * `runner`: what would run fwgen's hook on the host (unknown: an older facts step).
 */
export function evaluateBoot(
  mechanisms: readonly BootMechanism[],
  rules: string,
  shipFix: string,
  runner?: BootRunner,
): Omit<Check, 'host'> {
  const ours = mechanisms.filter((m) => m.loadsRules);
  const working = ours.find((m) => m.state === 'ok');
  const others = mechanisms.filter((m) => !m.loadsRules);
  const elsewise = `load ${rules} at boot another way`;
  if (working?.outdated) return outdatedBoot(working, rules, shipFix);
  if (working && others.length === 0)
    return { name: 'boot', level: 'ok', detail: `${rules} is loaded at boot by ${working.path} (${working.kind})` };
  if (working) {
    return {
      name: 'boot',
      level: 'warn',
      detail: `${rules} is loaded at boot by ${working.path}, but ${others.map((m) => m.path).join(', ')} loads other rules too: whichever runs last wins`,
      fix: `remove ${others.map((m) => m.path).join(', ')}`,
    };
  }
  if (ours.length > 0) {
    const m = ours[0];
    return {
      name: 'boot',
      level: 'fail',
      detail: `${m.path} would load ${rules} at boot, but ${whyInactive(m)}: a reboot drops the firewall`,
      fix: bootFix(m, shipFix, runner, elsewise),
    };
  }
  if (others.length > 0) {
    const m = others[0];
    return {
      name: 'boot',
      level: 'fail',
      detail: `${m.path} (${m.kind}) loads other rules at boot, not ${rules}: a reboot brings back the old firewall`,
      fix:
        m.kind === 'netfilter-persistent'
          ? `set defaults.rules_path: /etc/iptables/rules.v4 so fwgen ships the file netfilter-persistent loads`
          : runner === 'none'
            ? `point ${m.path} at ${rules}`
            : `point ${m.path} at ${rules}, or remove it and run ${shipFix}, which installs fwgen's boot hook`,
    };
  }
  if (runner === 'none')
    return {
      name: 'boot',
      level: 'fail',
      detail: `nothing loads ${rules} at boot, and neither ifupdown nor systemd runs on this host to run a boot hook: a reboot drops the firewall`,
      fix: `install ifupdown, then run ${shipFix} (it installs the hook); or ${elsewise}`,
    };
  return {
    name: 'boot',
    level: 'fail',
    detail: `nothing loads ${rules} at boot: a reboot drops the firewall`,
    fix: `${shipFix} installs a boot hook (unless shipped with --no-persist)`,
  };
}

/** fwgen's own hook or unit loads the rules at boot, but not as this version would write it. */
function outdatedBoot(m: BootMechanism, rules: string, shipFix: string): Omit<Check, 'host'> {
  const fix = `${shipFix} rewrites it`;
  return m.outdated === 'no-sets'
    ? {
        name: 'boot',
        level: 'fail',
        detail: `${m.path} loads ${rules} at boot, but not first the ipsets those rules match (an older fwgen wrote it, or it was edited): at boot the rules fail to load and the host comes up without fwgen's firewall`,
        fix,
      }
    : {
        name: 'boot',
        level: 'warn',
        detail: `${m.path} loads ${rules} at boot, but differs from what this fwgen writes there (another version wrote it, or it was edited)`,
        fix,
      };
}

/** How to make a mechanism that would load the rules actually run, consistent with what ship does. */
function bootFix(m: BootMechanism, shipFix: string, runner: BootRunner | undefined, elsewise: string): string {
  switch (m.state) {
    case 'no-ifupdown':
      if (runner === 'none') return `install ifupdown, so that the hook runs; or ${elsewise}`;
      // With systemd, ship replaces fwgen's own hook by a unit; another tool's hook is for a person to remove.
      return m.path === BOOT_HOOK_PATH
        ? `${shipFix} replaces it with a systemd unit (or install ifupdown)`
        : `install ifupdown, or remove ${m.path} and run ${shipFix}, which installs a systemd unit`;
    case 'not-executable':
      return `chmod 755 ${m.path}`;
    case 'bad-name':
      return `rename ${m.path} to a name of letters, digits, _ and - only`;
    default:
      return m.kind === 'netfilter-persistent'
        ? 'systemctl enable netfilter-persistent'
        : `systemctl enable ${m.path.slice(m.path.lastIndexOf('/') + 1)}`;
  }
}

function boot(f: HostFacts, c: HostContext): Omit<Check, 'host'> | undefined {
  if (f.live4 === 'no-file') return undefined; // nothing to load yet: the rules-file check says so
  return evaluateBoot(f.boot, c.paths.rules, fwgenShip(c), f.bootRunner);
}

function otherManagers(f: HostFacts, c: HostContext): Omit<Check, 'host'>[] {
  const found: Omit<Check, 'host'>[] = [];
  if (f.ufwEnabled || f.ufwChains > 0) {
    found.push({
      name: 'other firewall',
      level: 'fail',
      detail: `ufw is ${f.ufwEnabled ? 'enabled' : 'active'}: it rewrites the same tables as fwgen`,
      fix: '`ufw disable` on the host',
    });
  }
  if (f.firewalldActive)
    found.push({
      name: 'other firewall',
      level: 'fail',
      detail: 'firewalld is running: it rewrites the rules fwgen applies',
      fix: '`systemctl disable --now firewalld` on the host',
    });
  // fwgen keeps Docker's chains (preserve:), but with forward: reject its FWGEN-FORWARD rejects what Docker forwards.
  if (f.dockerChains > 0 && (c.forward ?? 'reject') === 'reject') {
    found.push({
      name: 'other firewall',
      level: 'fail',
      detail: `Docker's chains are loaded (${f.dockerChains} DOCKER* chains), and role ${c.host.role} has forward: reject: fwgen's FWGEN-FORWARD rejects the forwarded traffic of published ports and containers`,
      fix: `set \`forward: leave\` on role ${c.host.role} (fwgen then leaves FORWARD to Docker), render and ship`,
    });
  }
  if (f.nftablesEnabled) {
    found.push({
      name: 'other firewall',
      level: 'warn',
      detail: "nftables.service is enabled: it loads /etc/nftables.conf at boot, beside fwgen's rules",
      fix: '`systemctl disable nftables` on the host',
    });
  }
  const docker =
    f.dockerChains > 0 ? `Docker's chains kept, FORWARD left to Docker (forward: leave)` : 'no Docker chains';
  return found.length > 0
    ? found
    : [{ name: 'other firewall', level: 'ok', detail: `no ufw, firewalld or nftables.service; ${docker}` }];
}

function canonical(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}

function addresses(f: HostFacts, c: HostContext): Omit<Check, 'host'> {
  const onHost = new Map(f.addresses.map((a) => [canonical(a.address), a.ifname]));
  const wanted = c.host.addresses.map((n) => canonical(n.cidr.slice(0, n.cidr.indexOf('/'))));
  const missing = wanted.filter((a) => !onHost.has(a));
  if (missing.length === 0)
    return { name: 'addresses', level: 'ok', detail: wanted.map((a) => `${a} on ${onHost.get(a)}`).join(', ') };
  return {
    name: 'addresses',
    level: 'warn',
    detail: `${missing.join(', ')} not on the host (it has ${[...onHost.keys()].filter((a) => !a.startsWith('127.') && a !== '::1').join(', ') || 'none'}); fine only behind 1:1 NAT, else other hosts' rules name the wrong address`,
    fix: `correct the address of ${c.host.name} in the inventory, then \`fwgen render\` and ship`,
  };
}

function internalInterface(f: HostFacts, c: HostContext): Omit<Check, 'host'> | undefined {
  const iface = c.inventory.interface;
  if (!iface) return undefined;
  const matches = iface.endsWith('+')
    ? f.links.filter((l) => l.startsWith(iface.slice(0, -1)))
    : f.links.filter((l) => l === iface);
  if (matches.length > 0) return { name: 'interface', level: 'ok', detail: `${matches.join(', ')} present` };
  const used = c.inventory.trust === 'fleet';
  return {
    name: 'interface',
    level: used ? 'fail' : 'warn',
    detail: `no interface ${iface} on the host (it has ${f.links.filter((l) => l !== 'lo').join(', ') || 'none'})${used ? ': fleet trust rules never match here' : ''}`,
    fix: "set defaults.interface to the internal interface's name (a trailing + matches a prefix)",
  };
}

function leftovers(f: HostFacts, c: HostContext): Omit<Check, 'host'>[] {
  const out: Omit<Check, 'host'>[] = [];
  const inFlight = f.armed.some((a) => a.alive) || (f.lock !== undefined && f.lock.ageS < STALE_AFTER_S);
  for (const a of f.armed) {
    if (a.alive) {
      out.push({
        name: 'dead-man switch',
        level: 'warn',
        detail: `ship ${a.id} is in flight: its dead-man switch is armed (${a.ageS}s ago)`,
        fix: 'wait for it to finish, then run doctor again',
      });
    } else {
      out.push({
        name: 'dead-man switch',
        level: 'fail',
        detail: `ship ${a.id} left its dead-man switch armed ${ago(a.ageS)} with nothing left to fire it (rebooted mid-ship?): the live rules were never confirmed`,
        fix: `on the host: \`rm -f ${a.path} ${c.paths.rules}.fwgen-deadman.${a.id}*\`, then ${fwgenShip(c, ' --force')}`,
      });
    }
  }
  if (f.lock && f.lock.ageS >= STALE_AFTER_S && !f.armed.some((a) => a.alive)) {
    out.push({
      name: 'lock',
      level: 'fail',
      detail: `stale lock ${f.lock.path}, ${ago(f.lock.ageS)} old (${f.lock.owner || 'unknown owner'}): every ship of this host is refused`,
      fix: `make sure no fwgen runs against ${c.host.name}, then on the host: \`rm -rf ${f.lock.path}\``,
    });
  } else if (f.lock) {
    out.push({
      name: 'lock',
      level: 'warn',
      detail: `a ship holds ${f.lock.path} (${f.lock.owner || 'unknown owner'}, ${ago(f.lock.ageS)})`,
      fix: 'wait for it to finish, then run doctor again',
    });
  }
  const staged = f.staged.filter((s) => !inFlight || s.ageS >= STALE_AFTER_S);
  if (staged.length > 0) {
    out.push({
      name: 'interrupted ship',
      level: 'warn',
      detail: `a ship was cut off and left ${staged.map((s) => s.path).join(', ')}`,
      fix: `on the host: \`rm -f ${staged.map((s) => s.path).join(' ')}\`, then ${fwgenShip(c)}`,
    });
  }
  return out.length > 0 ? out : [{ name: 'leftovers', level: 'ok', detail: 'no armed switch, lock or staged file' }];
}

function ago(s: number): string {
  return s < 120
    ? `${s}s`
    : s < 7200
      ? `${Math.round(s / 60)} min`
      : s < 172800
        ? `${Math.round(s / 3600)} h`
        : `${Math.round(s / 86400)} days`;
}

/** The worst level among checks. */
export function worstLevel(checks: readonly Check[]): Level {
  return checks.some((c) => c.level === 'fail') ? 'fail' : checks.some((c) => c.level === 'warn') ? 'warn' : 'ok';
}
