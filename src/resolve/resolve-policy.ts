import type { AllowRule, Family, Host, Inventory, PortSpec, Role } from '../inventory/model.js';
import type { Locate } from '../inventory/load-inventory.js';
import { parsePort } from '../inventory/ports.js';
import { aggregate, aggregateNets, describeAggregate, mergeList, type Aggregate, type Member } from './aggregate.js';
import { checkExpansion } from './expansion-bound.js';
import type { AddressList, AllowEntry, AllowList, FleetSource, RolePolicy, SetLists } from './policy.js';

const PUBLIC_PORTS = ['tcp/80', 'tcp/443'].map((t) => parsePort(t) as PortSpec);
const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.0/8', ipv6: '::1/128' };

/** Template choice for a role, made by the command layer from what exists on disk. */
export type TemplateChooser = (role: Role) => string;

/** Resolves the inventory into one policy per role and family (IPv6 only when the inventory uses it). */
export function resolvePolicies(
  inv: Inventory,
  chooseTemplate: TemplateChooser,
  onlyRoles?: ReadonlySet<string>,
  locate?: Locate,
): RolePolicy[] {
  // In ipset mode, per-address allow entries are built only for a role template to read.
  checkExpansion(inv, (role) => inv.sets !== 'ipset' || chooseTemplate(role) !== 'base.rules.njk', locate);
  const families: Family[] = inv.hasIpv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
  const hostsByName = new Map<string, Host>();
  for (const h of inv.hosts) hostsByName.set(h.name, h);
  const rolesByName = new Map(inv.roles.map((r) => [r.name, r]));
  const fleetMembers = new Map(families.map((f) => [f, inv.trust === 'fleet' ? hostMembers(inv.hosts, f) : []]));
  const fleet = memo((f: Family) => fleetSources(aggregate(fleetMembers.get(f)!)));
  const management = new Map(
    families.map((f) => [f, aggregateNets(inv.management.filter((n) => n.family === f)).map((n) => n.cidr)]),
  );
  const ruleMembers = (rule: AllowRule, family: Family): Member[] =>
    rule.from.flatMap((src) => expandSource(src, hostsByName, rolesByName)).filter((m) => m.net.family === family);
  // Monitoring rules go into every role: their sources are merged once per family, not once per role.
  const merged = new Map(families.map((f) => [f, new Map<AllowRule, Aggregate[]>()]));
  const mergeRule = (rule: AllowRule, family: Family): Aggregate[] => {
    const cache = merged.get(family)!;
    let aggregates = cache.get(rule);
    if (!aggregates) cache.set(rule, (aggregates = aggregate(ruleMembers(rule, family))));
    return aggregates;
  };
  const lists =
    inv.sets === 'ipset' ? listMaker(families, fleetMembers, management, inv.monitoring, ruleMembers) : undefined;
  const out: RolePolicy[] = [];
  for (const role of inv.roles) {
    if (onlyRoles && !onlyRoles.has(role.name)) continue;
    for (const family of families) {
      const entries = (): AllowEntry[] =>
        allowEntries([...role.allow, ...inv.monitoring], (rule) => mergeRule(rule, family));
      const policy: Omit<RolePolicy, 'fleet' | 'allow'> = {
        role: role.name,
        family,
        hosts: role.hosts.map((h) => h.name),
        interface: inv.interface,
        loopback: LOOPBACK[family],
        management: management.get(family) ?? [],
        sshPorts: sshPorts(role),
        public: role.public,
        publicPorts: role.public ? PUBLIC_PORTS : [],
        ports: role.ports,
        forward: role.forward,
        sets: inv.sets,
        ...(lists ? { lists: lists(role, family) } : {}),
        template: chooseTemplate(role),
      };
      // ipset mode's rules match the lists; per-CIDR entries are only for role templates, built if one reads them.
      out.push(
        lists
          ? withLazyEntries(policy, () => fleet(family), entries)
          : { ...policy, fleet: fleet(family), allow: entries() },
      );
    }
  }
  return out;
}

/** The policy with `fleet` and `allow` computed on first read, then kept. */
function withLazyEntries(
  policy: Omit<RolePolicy, 'fleet' | 'allow'>,
  fleet: () => readonly FleetSource[],
  allow: () => readonly AllowEntry[],
): RolePolicy {
  let f: readonly FleetSource[] | undefined;
  let a: readonly AllowEntry[] | undefined;
  return Object.defineProperties(policy, {
    fleet: { enumerable: true, get: () => (f ??= fleet()) },
    allow: { enumerable: true, get: () => (a ??= allow()) },
  }) as RolePolicy;
}

/** A function that computes each key's value once. */
function memo<K, V>(compute: (key: K) => V): (key: K) => V {
  const cache = new Map<K, V>();
  return (key) => {
    if (!cache.has(key)) cache.set(key, compute(key));
    return cache.get(key)!;
  };
}

/** Every inventory address of the family, as members labelled with their host and role. */
function hostMembers(hosts: readonly Host[], family: Family): Member[] {
  const members: Member[] = [];
  for (const h of hosts) {
    for (const net of h.addresses) {
      if (net.family === family) members.push({ net, via: `${h.role}/${h.name}`, group: h.role, isHost: true });
    }
  }
  return members;
}

/** Each merged fleet CIDR, labelled with the hosts it covers. */
function fleetSources(aggregates: readonly Aggregate[]): FleetSource[] {
  return aggregates.map((a) => ({ cidr: a.net.cidr, label: describeAggregate(a.members) }));
}

/**
 * The address lists of ipset mode, per role and family. Fleet, management and each monitoring rule's
 * list are built once per family and shared, so the renderer writes their sets once.
 */
function listMaker(
  families: readonly Family[],
  fleetMembers: ReadonlyMap<Family, Member[]>,
  management: ReadonlyMap<Family, string[]>,
  monitoring: readonly AllowRule[],
  ruleMembers: (rule: AllowRule, family: Family) => Member[],
): (role: Role, family: Family) => SetLists {
  const fleet = new Map(
    families.map(
      (f): [Family, AddressList] => [
        f,
        mergeList(fleetMembers.get(f) ?? [], true),
      ] /* load refuses an address used twice */,
    ),
  );
  const mgmt = new Map(
    families.map((f): [Family, AddressList] => [f, { cidrs: management.get(f) ?? [], via: 'management' }]),
  );
  const ruleLists = new Map<string, AllowList>();
  const allowList = (rule: AllowRule, family: Family, owner: string): AllowList => {
    const key = `${owner}|${rule.label}|${family}`;
    let list = ruleLists.get(key);
    if (!list) {
      list = { ...mergeList(ruleMembers(rule, family)), label: rule.label, ports: rule.ports };
      ruleLists.set(key, list);
    }
    return list;
  };
  return (role, family) => ({
    fleet: fleet.get(family)!,
    management: mgmt.get(family)!,
    allow: [
      ...role.allow.map((r) => allowList(r, family, role.name)),
      ...monitoring.map((r) => allowList(r, family, '')),
    ].filter((l) => l.cidrs.length > 0),
  });
}

/** The SSH ports that ship connects to on this role's hosts: management must reach every one. */
function sshPorts(role: Role): number[] {
  const ports = new Set(role.hosts.map((h) => h.ssh.port));
  if (ports.size === 0) ports.add(22);
  return [...ports].sort((a, b) => a - b);
}

/**
 * One entry per merged source CIDR of each rule and port, sorted by port then address, de-duplicated:
 * a CIDR and port that two rules both yield keeps the first rule written, so comments stay stable.
 */
function allowEntries(rules: readonly AllowRule[], mergeRule: (rule: AllowRule) => Aggregate[]): AllowEntry[] {
  const seen = new Map<string, AllowEntry & { netKey: string }>();
  for (const rule of rules) {
    for (const { net, members } of mergeRule(rule)) {
      const via = describeAggregate(members);
      for (const port of rule.ports) {
        const id = `${port.proto}|${port.from}|${port.to}|${net.key}`;
        if (!seen.has(id)) seen.set(id, { cidr: net.cidr, via, label: rule.label, port, netKey: net.key });
      }
    }
  }
  return [...seen.values()].sort(comparePortThenNet).map(({ cidr, via, label, port }) => ({ cidr, via, label, port }));
}

function comparePortThenNet(a: { port: PortSpec; netKey: string }, b: { port: PortSpec; netKey: string }): number {
  if (a.port.proto !== b.port.proto) return a.port.proto < b.port.proto ? -1 : 1;
  return a.port.from - b.port.from || a.port.to - b.port.to || (a.netKey < b.netKey ? -1 : a.netKey > b.netKey ? 1 : 0);
}

function expandSource(src: AllowRule['from'][number], hosts: Map<string, Host>, roles: Map<string, Role>): Member[] {
  switch (src.kind) {
    case 'net':
      return [{ net: src.net, via: src.net.cidr, group: src.net.cidr, isHost: false }];
    case 'host':
      return (hosts.get(src.name)?.addresses ?? []).map((net) => ({
        net,
        via: src.name,
        group: src.name,
        isHost: true,
      }));
    case 'role': {
      const members: Member[] = [];
      for (const h of roles.get(src.name)?.hosts ?? []) {
        for (const net of h.addresses)
          members.push({ net, via: `${src.name}/${h.name}`, group: src.name, isHost: true });
      }
      return members;
    }
  }
}
