import type { AllowRule, Family, Host, Inventory, Net, PortSpec, Role } from '../inventory/model.js';
import { parsePort } from '../inventory/ports.js';
import type { AllowEntry, FleetSource, RolePolicy } from './policy.js';

const PUBLIC_PORTS = ['tcp/80', 'tcp/443'].map((t) => parsePort(t) as PortSpec);
const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.0/8', ipv6: '::1/128' };

/** Template choice for a role, made by the command layer from what exists on disk. */
export type TemplateChooser = (role: Role) => string;

/** Resolves the inventory into one policy per role and family (IPv6 only when the inventory uses it). */
export function resolvePolicies(inv: Inventory, chooseTemplate: TemplateChooser, onlyRoles?: ReadonlySet<string>): RolePolicy[] {
  const families: Family[] = inv.hasIpv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
  const hostsByName = new Map(inv.hosts.map((h) => [h.name, h]));
  const rolesByName = new Map(inv.roles.map((r) => [r.name, r]));
  const fleet = new Map(families.map((f) => [f, inv.trust === 'fleet' ? fleetSources(inv.hosts, f) : []]));
  const out: RolePolicy[] = [];
  for (const role of inv.roles) {
    if (onlyRoles && !onlyRoles.has(role.name)) continue;
    for (const family of families) {
      out.push({
        role: role.name,
        family,
        hosts: role.hosts.map((h) => h.name),
        interface: inv.interface,
        loopback: LOOPBACK[family],
        management: inv.management.filter((n) => n.family === family).map((n) => n.cidr),
        sshPorts: sshPorts(role),
        fleet: fleet.get(family) ?? [],
        public: role.public,
        publicPorts: role.public ? PUBLIC_PORTS : [],
        ports: role.ports,
        allow: allowEntries([...role.allow, ...inv.monitoring], family, hostsByName, rolesByName),
        forward: role.forward,
        template: chooseTemplate(role),
      });
    }
  }
  return out;
}

function fleetSources(hosts: readonly Host[], family: Family): FleetSource[] {
  return hosts
    .flatMap((h) => h.addresses.filter((a) => a.family === family).map((a) => ({ key: a.key, cidr: a.cidr, host: h.name, role: h.role })))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ cidr, host, role }) => ({ cidr, host, role }));
}

/** The SSH ports that ship connects to on this role's hosts: management must reach every one. */
function sshPorts(role: Role): number[] {
  const ports = new Set(role.hosts.map((h) => h.ssh.port));
  if (ports.size === 0) ports.add(22);
  return [...ports].sort((a, b) => a - b);
}

/** Expands every rule's sources into addresses of one family; one entry per source and port, sorted, de-duplicated. */
function allowEntries(rules: readonly AllowRule[], family: Family, hosts: Map<string, Host>, roles: Map<string, Role>): AllowEntry[] {
  const seen = new Map<string, AllowEntry & { sortKey: string }>();
  for (const rule of rules) {
    for (const src of rule.from) {
      for (const { net, via } of expandSource(src, hosts, roles)) {
        if (net.family !== family) continue;
        for (const port of rule.ports) {
          // Same source and port from two rules: the first rule written keeps it, so comments stay stable.
          const id = `${port.proto}|${port.from}|${port.to}|${net.key}`;
          if (!seen.has(id)) seen.set(id, { cidr: net.cidr, via, label: rule.label, port, sortKey: id });
        }
      }
    }
  }
  return [...seen.values()]
    .sort((a, b) => comparePortThenNet(a, b))
    .map(({ cidr, via, label, port }) => ({ cidr, via, label, port }));
}

function comparePortThenNet(a: { port: PortSpec; sortKey: string }, b: { port: PortSpec; sortKey: string }): number {
  if (a.port.proto !== b.port.proto) return a.port.proto < b.port.proto ? -1 : 1;
  return a.port.from - b.port.from || a.port.to - b.port.to || (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0);
}

function expandSource(src: AllowRule['from'][number], hosts: Map<string, Host>, roles: Map<string, Role>): { net: Net; via: string }[] {
  switch (src.kind) {
    case 'net':
      return [{ net: src.net, via: src.net.cidr }];
    case 'host':
      return (hosts.get(src.name)?.addresses ?? []).map((net) => ({ net, via: src.name }));
    case 'role':
      return (roles.get(src.name)?.hosts ?? []).flatMap((h) => h.addresses.map((net) => ({ net, via: `${src.name}/${h.name}` })));
  }
}
