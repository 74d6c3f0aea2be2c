import { InputError } from '../errors.js';
import type { Locate } from '../inventory/load-inventory.js';
import type { AllowRule, Inventory, Role } from '../inventory/model.js';
import type { PathSegment } from '../inventory/yaml-positions.js';

/**
 * Rules the roles' own entries may expand to, all roles together, counted before merging: each allow or
 * monitoring rule gives one rule per source address and port (in ipset mode one per port, unless a role
 * template reads the per-address entries), management one per network and SSH port, `ports:` one each.
 * A few YAML lines (a role of thousands of hosts allowed to thousands of ports, in every role through
 * `monitoring`) would otherwise build hundreds of millions of rules. The 10,000-host benchmark inventory
 * has about 7,000.
 */
export const MAX_ROLE_RULES = 1_000_000;

/**
 * Rules all rendered files may hold together: each role's file repeats the fleet-trust rules (one per
 * inventory address, before merging), so roles × hosts grows fast. The 10,000-host, 200-role benchmark
 * renders about 2,000,000 (188 MB); ten times that is far beyond what a repository should hold.
 */
export const MAX_RENDERED_RULES = 20_000_000;

/** One part of the count: what it is, where it is written, how many rules it gives. */
interface Share {
  readonly path: PathSegment[];
  /** Made only for the message: formatting numbers costs Intl's start-up (a tenth of a second). */
  readonly what: () => string;
  readonly rules: number;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

/** What an inventory expands to, counted from its sizes alone (before merging). */
export interface Expansion {
  /** The roles' own rules: allow, monitoring, management and ports, all roles together. */
  readonly roleRules: number;
  /** Every rendered file's rules together (the role's own rules and the fleet's, per file). */
  readonly renderedRules: number;
}

/** Counts what an inventory expands to; `expandsAllow`: the role's allow entries are built per address. */
export function countExpansion(inv: Inventory, expandsAllow: (role: Role) => boolean): Expansion {
  const roleRules = roleShares(inv, expandsAllow).reduce((sum, s) => sum + s.rules, 0);
  return { roleRules, renderedRules: roleRules + fleetRules(inv) };
}

/**
 * Refuses an inventory that would expand past MAX_ROLE_RULES or MAX_RENDERED_RULES, before anything
 * is expanded. Throws InputError at the largest share.
 */
export function checkExpansion(
  inv: Inventory,
  expandsAllow: (role: Role) => boolean,
  // Without a way to find the value, the problem points at the top of the file.
  locate: Locate = () => ({ line: 1, col: 1 }),
): void {
  const shares = roleShares(inv, expandsAllow);
  const total = shares.reduce((sum, s) => sum + s.rules, 0);
  if (total > MAX_ROLE_RULES) {
    const top = shares.reduce((a, b) => (b.rules > a.rules ? b : a));
    const why = `${top.what()} expands to ${fmt(top.rules)} rules, the inventory's roles to ${fmt(total)} in all`;
    const expected = `at most ${fmt(MAX_ROLE_RULES)}: allow networks (CIDRs) rather than many hosts, or port ranges`;
    throw problem(inv, locate, top.path, `${why} (expected ${expected})`);
  }
  const rendered = total + fleetRules(inv);
  if (rendered > MAX_RENDERED_RULES) {
    const files = inv.roles.length * (inv.hasIpv6 ? 2 : 1);
    const why = `every role's rules file repeats the fleet's addresses: ${fmt(files)} files would hold ${fmt(rendered)}`;
    const expected = `at most ${fmt(MAX_RENDERED_RULES)}; with \`sets: ipset\` the fleet is one set, written once`;
    throw problem(inv, locate, ['trust'], `${why} rules (expected ${expected})`);
  }
}

function problem(inv: Inventory, locate: Locate, path: PathSegment[], message: string): InputError {
  return new InputError(
    [{ file: inv.file, ...locate(path), message, severity: 'error' }],
    'make the inventory smaller; nothing was rendered or shipped',
  );
}

/** Addresses of each role and host, and the distinct SSH ports of each role: one pass over the hosts. */
function sizes(inv: Inventory) {
  const roleAddresses = new Map<string, number>();
  const hostAddresses = new Map<string, number>();
  const sshPorts = new Map<string, number>();
  for (const role of inv.roles) {
    let addresses = 0;
    const ports: number[] = [];
    for (const h of role.hosts) {
      addresses += h.addresses.length;
      hostAddresses.set(h.name, h.addresses.length);
      if (!ports.includes(h.ssh.port)) ports.push(h.ssh.port);
    }
    roleAddresses.set(role.name, addresses);
    sshPorts.set(role.name, ports.length || 1);
  }
  return { roleAddresses, hostAddresses, sshPorts };
}

/** Every role's rules that are its own (allow, monitoring, management, ports), as shares. */
function roleShares(inv: Inventory, expandsAllow: (role: Role) => boolean): Share[] {
  const { roleAddresses, hostAddresses, sshPorts } = sizes(inv);
  const sources = new Map<AllowRule, number>();
  const sourcesOf = (rule: AllowRule): number => {
    let n = sources.get(rule);
    if (n === undefined) {
      n = 0;
      for (const s of rule.from)
        n += s.kind === 'net' ? 1 : ((s.kind === 'role' ? roleAddresses : hostAddresses).get(s.name) ?? 0);
      sources.set(rule, n);
    }
    return n;
  };
  const sourcesTimesPorts = (rule: AllowRule): string =>
    `${fmt(sourcesOf(rule))} source addresses × ${fmt(rule.ports.length)} ports`;
  const perRole = (rule: AllowRule, expands: boolean): number =>
    expands ? sourcesOf(rule) * rule.ports.length : rule.ports.length;
  const shares: Share[] = [];
  const monitoring = inv.monitoring.map(() => 0);
  for (const role of inv.roles) {
    const expands = expandsAllow(role);
    role.allow.forEach((rule, i) => {
      const what = (): string => `allow#${i + 1} of role "${role.name}" (${sourcesTimesPorts(rule)})`;
      shares.push({ path: ['roles', role.name, 'allow', i], what, rules: perRole(rule, expands) });
    });
    inv.monitoring.forEach((rule, i) => (monitoring[i] += perRole(rule, expands)));
    const ports = sshPorts.get(role.name)!;
    const management = (): string =>
      `management (${fmt(inv.management.length)} networks × ${fmt(ports)} SSH ports of role "${role.name}")`;
    shares.push({ path: ['management'], what: management, rules: inv.management.length * ports });
    const own = (): string => `ports of role "${role.name}"`;
    shares.push({ path: ['roles', role.name, 'ports'], what: own, rules: role.ports.length });
  }
  inv.monitoring.forEach((rule, i) => {
    const what = (): string =>
      `monitoring#${i + 1} (${sourcesTimesPorts(rule)}, in each of ${fmt(inv.roles.length)} roles)`;
    shares.push({ path: ['monitoring', i], what, rules: monitoring[i]! });
  });
  return shares;
}

/** The fleet-trust rules of all files: one per address of the family in each role's file of that family. */
function fleetRules(inv: Inventory): number {
  if (inv.trust !== 'fleet') return 0;
  if (inv.sets === 'ipset') return inv.roles.length * (inv.hasIpv6 ? 2 : 1);
  let addresses = 0;
  for (const h of inv.hosts) addresses += h.addresses.length;
  return inv.roles.length * addresses;
}
