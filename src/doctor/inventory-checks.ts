import type { AllowRule, Host, Inventory, PortSpec, Role, SourceRef } from '../inventory/model.js';
import type { RolePolicy } from '../resolve/policy.js';
import type { Check } from './checks.js';

/** Checks of the inventory alone (no host contacted): what would make its rules useless or misleading. */
export function inventoryChecks(inv: Inventory, policies: readonly RolePolicy[]): Check[] {
  return [management(inv), ...emptyRoles(inv), ...allowRules(inv, policies)];
}

function management(inv: Inventory): Check {
  if (inv.management.length > 0)
    return {
      name: 'management',
      level: 'ok',
      detail: `${inv.management.map((n) => n.cidr).join(', ')} may always reach SSH`,
    };
  return {
    name: 'management',
    level: 'fail',
    detail:
      'no management networks: SSH to the hosts is admitted only through fleet trust and allow rules, and one wrong rule locks you out',
    fix: 'list the networks you administer from under `management:`',
  };
}

function emptyRoles(inv: Inventory): Check[] {
  return inv.roles
    .filter((r) => r.hosts.length === 0)
    .map((r) => ({
      name: 'role without hosts',
      level: 'warn',
      detail: `role ${r.name} has no hosts: its rules file goes nowhere`,
      fix: `add hosts to ${r.name}, or remove the role`,
    }));
}

const describeRule = (rule: AllowRule, owner: string) =>
  `${owner ? `${owner} ` : ''}${rule.label} (from ${rule.from.map(sourceText).join(', ')} to ${rule.ports.map((p) => p.text).join(', ')})`;

function sourceText(s: SourceRef): string {
  return s.kind === 'net' ? s.net.cidr : s.name;
}

/**
 * `allow` and `monitoring` rules every source of which is an inventory host, under `trust: fleet`: fleet
 * trust already admits those hosts to every port (on `interface`), so the rule changes nothing there.
 * Render and validate print these too, where the rules are written.
 */
export function shadowedRuleChecks(inv: Inventory): Check[] {
  if (inv.trust !== 'fleet') return [];
  const hosts = new Map(inv.hosts.map((h) => [h.name, h]));
  const roles = new Map(inv.roles.map((r) => [r.name, r]));
  const fleet = new Set(inv.hosts.flatMap((h) => h.addresses.map((a) => a.cidr)));
  return writtenRules(inv).flatMap(([rule, owner]) => {
    const addresses = rule.from.flatMap((s) => sourceAddresses(s, hosts, roles));
    return addresses.length > 0 && addresses.every((a) => fleet.has(a)) ? [shadowed(rule, owner, inv.interface)] : [];
  });
}

/** Every allow rule with the role it belongs to, then the monitoring rules (every role's). */
function writtenRules(inv: Inventory): [AllowRule, string][] {
  return [
    ...inv.roles.flatMap((r) => r.allow.map((a): [AllowRule, string] => [a, `role ${r.name}`])),
    ...inv.monitoring.map((m): [AllowRule, string] => [m, '']),
  ];
}

function allowRules(inv: Inventory, policies: readonly RolePolicy[]): Check[] {
  const hosts = new Map(inv.hosts.map((h) => [h.name, h]));
  const roles = new Map(inv.roles.map((r) => [r.name, r]));
  const checks: Check[] = [];
  // Monitoring rules go into every role: check their sources once, their ports per role.
  for (const [rule, owner] of writtenRules(inv)) {
    const addresses = rule.from.flatMap((s) => sourceAddresses(s, hosts, roles));
    if (addresses.length === 0) {
      checks.push({
        name: 'rule never matches',
        level: 'warn',
        detail: `${describeRule(rule, owner)}: its sources have no address (${
          rule.from
            .filter((s) => s.kind === 'role')
            .map((s) => `role ${sourceText(s)} has no hosts`)
            .join(', ') || 'none'
        })`,
        fix: `add hosts to the roles it names, or remove ${rule.label}`,
      });
    }
  }
  // Host addresses, not the merged fleet CIDRs: "shadowed" means every source is an inventory host.
  checks.push(...shadowedRuleChecks(inv));
  for (const role of inv.roles) {
    const open = policies.find((p) => p.role === role.name);
    if (!open) continue;
    const openToAll: [PortSpec, string][] = [
      ...open.publicPorts.map((p): [PortSpec, string] => [p, 'public']),
      ...open.ports.map((p): [PortSpec, string] => [p, 'ports']),
    ];
    for (const rule of [...role.allow, ...inv.monitoring]) {
      for (const port of rule.ports) {
        const by = openToAll.find(([o]) => o.proto === port.proto && o.from <= port.from && port.to <= o.to);
        if (!by) continue;
        checks.push({
          name: 'rule adds nothing',
          level: 'warn',
          detail: `${describeRule(rule, `role ${role.name}`)}: ${port.text} is already open to everyone on ${role.name} by \`${by[1]}\``,
          fix:
            by[1] === 'public'
              ? `drop ${port.text} from ${rule.label}`
              : `drop ${port.text} from ${rule.label}, or from \`ports\` of ${role.name} if only these sources should reach it`,
        });
      }
    }
  }
  return checks;
}

function shadowed(rule: AllowRule, owner: string, iface: string | undefined): Check {
  const where = iface ? ` on ${iface}` : '';
  return {
    name: 'rule shadowed',
    level: 'warn',
    detail: `${describeRule(rule, owner)} is shadowed${where} by fleet trust: every source is an inventory host, which already reaches every port${where}${iface ? ` (the rule still counts on other interfaces)` : ''}`,
    fix: iface
      ? `remove ${rule.label} unless these hosts also arrive on interfaces other than ${iface}, or set trust: none`
      : `remove ${rule.label}, or set trust: none to admit only what allow rules say`,
  };
}

/** Every address a source stands for, in any family, as fleet trust writes them (`cidr`). */
function sourceAddresses(s: SourceRef, hosts: Map<string, Host>, roles: Map<string, Role>): string[] {
  switch (s.kind) {
    case 'net':
      return [s.net.cidr];
    case 'host':
      return (hosts.get(s.name)?.addresses ?? []).map((n) => n.cidr);
    case 'role':
      return (roles.get(s.name)?.hosts ?? []).flatMap((h) => h.addresses.map((n) => n.cidr));
  }
}
