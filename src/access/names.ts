/**
 * Names for sets of addresses, as a reviewer reads them: inventory hosts by name, a whole role by its
 * name, every inventory host as the fleet, any address as anyone; CIDRs where addresses are not hosts.
 */
import type { Family, Host, Inventory } from '../inventory/model.js';
import { FULL, parseCidr, setCidrs, type Addr, type AddrSet } from './addresses.js';
import { equals, subtract } from './intervals.js';

/** A named part of a set of source addresses. */
export type Source =
  | { readonly kind: 'host'; readonly name: string; readonly role: string }
  | { readonly kind: 'role'; readonly name: string; readonly hosts: number }
  | { readonly kind: 'fleet'; readonly hosts: number }
  | { readonly kind: 'cidr'; readonly cidr: string }
  | { readonly kind: 'any'; readonly families: readonly Family[]; readonly except?: readonly Source[] };

/** A source and the addresses (of one family) it stands for. */
export interface NamedPart {
  readonly source: Source;
  readonly addrs: AddrSet;
}

/** An inventory's hosts by address, for naming. */
export interface NameIndex {
  readonly inventory: Inventory;
  readonly byFamily: Readonly<Record<Family, { readonly addrs: readonly Addr[]; readonly hosts: readonly Host[] }>>;
  /** Per role and family, how many of its hosts have an address of the family. */
  readonly roleHosts: ReadonlyMap<string, Readonly<Record<Family, number>>>;
  readonly hostsByName: ReadonlyMap<string, Host>;
}

/** Indexes an inventory's host addresses, sorted per family. */
export function indexNames(inv: Inventory): NameIndex {
  const rows: Record<Family, [Addr, Host][]> = { ipv4: [], ipv6: [] };
  const roleHosts = new Map<string, Record<Family, number>>();
  for (const r of inv.roles) roleHosts.set(r.name, { ipv4: 0, ipv6: 0 });
  for (const h of inv.hosts) {
    for (const a of h.addresses) {
      const r = parseCidr(a.cidr)!;
      rows[a.family].push([r.lo, h]);
      roleHosts.get(h.role)![a.family]++;
    }
  }
  const sorted = (list: [Addr, Host][]) => {
    list.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return { addrs: list.map((x) => x[0]), hosts: list.map((x) => x[1]) };
  };
  return {
    inventory: inv,
    byFamily: { ipv4: sorted(rows.ipv4), ipv6: sorted(rows.ipv6) },
    roleHosts,
    hostsByName: new Map(inv.hosts.map((h) => [h.name, h])),
  };
}

function lowerBound(list: readonly Addr[], x: Addr): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The inventory hosts whose address (of the family) is in `[lo, hi)`, as index range into byFamily. */
function hostsIn(idx: NameIndex, family: Family, lo: Addr, hi: Addr): [number, number] {
  const addrs = idx.byFamily[family].addrs;
  return [lowerBound(addrs, lo), lowerBound(addrs, hi)];
}

/**
 * Names a set of addresses of one family: CIDRs that hold only inventory hosts become those hosts,
 * others stay CIDRs; the whole family is anyone, and a set with more gaps than ranges is "any address
 * except" what it leaves out (named with roles and the fleet collapsed). Hosts are not collapsed into
 * roles here: that needs both families (see the report's grouping).
 */
export function nameSources(idx: NameIndex, family: Family, addrs: AddrSet): NamedPart[] {
  const full = FULL[family];
  if (equals(addrs, full)) return [{ source: { kind: 'any', families: [family] }, addrs }];
  const rest = subtract(full, addrs);
  if (rest.length < addrs.length) {
    const except = collapseRoles(idx, family, hostsAndCidrs(idx, family, rest)).map((p) => p.source);
    return [{ source: { kind: 'any', families: [family], except }, addrs }];
  }
  return hostsAndCidrs(idx, family, addrs).flatMap((x) =>
    'host' in x
      ? [{ source: { kind: 'host', name: x.host.name, role: x.host.role }, addrs: one(family, x.addr) }]
      : [x],
  );
}

function hostsAndCidrs(idx: NameIndex, family: Family, addrs: AddrSet): ({ host: Host; addr: Addr } | NamedPart)[] {
  const out: ({ host: Host; addr: Addr } | NamedPart)[] = [];
  for (const cidr of setCidrs(family, addrs)) {
    const r = parseCidr(cidr)!;
    const [i, j] = hostsIn(idx, family, r.lo, r.hi);
    const size = family === 'ipv4' ? (r.hi as number) - (r.lo as number) : Number((r.hi as bigint) - (r.lo as bigint));
    if (j - i === size) {
      for (let k = i; k < j; k++)
        out.push({ host: idx.byFamily[family].hosts[k]!, addr: idx.byFamily[family].addrs[k]! });
    } else out.push({ source: { kind: 'cidr', cidr }, addrs: [r.lo, r.hi] });
  }
  return out;
}

function one(family: Family, a: Addr): AddrSet {
  return family === 'ipv4' ? [a, (a as number) + 1] : [a, (a as bigint) + 1n];
}

/** One family's hosts collapsed: all of a role's hosts (more than one) to the role, all hosts to the fleet. */
function collapseRoles(
  idx: NameIndex,
  family: Family,
  parts: readonly ({ host: Host; addr: Addr } | NamedPart)[],
): NamedPart[] {
  const hosts = parts.filter((p): p is { host: Host; addr: Addr } => 'host' in p);
  const others = parts.filter((p): p is NamedPart => !('host' in p));
  const byRole = new Map<string, { host: Host; addr: Addr }[]>();
  for (const h of hosts) byRole.set(h.host.role, [...(byRole.get(h.host.role) ?? []), h]);
  const addrsOf = (list: { addr: Addr }[]): AddrSet => merged(list.flatMap((h) => [...one(family, h.addr)]));
  if (hosts.length === idx.byFamily[family].addrs.length && idx.inventory.hosts.length > 1) {
    return [{ source: { kind: 'fleet', hosts: countHosts(idx) }, addrs: addrsOf(hosts) }, ...others];
  }
  const out: NamedPart[] = [];
  for (const [role, list] of byRole) {
    if (list.length > 1 && list.length === idx.roleHosts.get(role)![family]) {
      const total = idx.inventory.roles.find((r) => r.name === role)!.hosts.length;
      out.push({ source: { kind: 'role', name: role, hosts: total }, addrs: addrsOf(list) });
    } else {
      for (const h of list) out.push({ source: { kind: 'host', name: h.host.name, role }, addrs: one(family, h.addr) });
    }
  }
  return [...out, ...others];
}

function countHosts(idx: NameIndex): number {
  return idx.inventory.hosts.length;
}

/** Adjacent single addresses joined (they arrive sorted by address). */
function merged(set: AddrSet): AddrSet {
  const out: Addr[] = [];
  for (let i = 0; i < set.length; i += 2) {
    if (out.length > 0 && out[out.length - 1] === set[i]) out[out.length - 1] = set[i + 1]!;
    else out.push(set[i]!, set[i + 1]!);
  }
  return out;
}

/** A stable key for a source (family left out for hosts, roles, the fleet and anyone). */
export function sourceKey(s: Source): string {
  switch (s.kind) {
    case 'host':
      return `h:${s.name}`;
    case 'role':
      return `r:${s.name}`;
    case 'fleet':
      return 'f:';
    case 'cidr':
      return `c:${s.cidr}`;
    case 'any':
      return `a:${(s.except ?? []).map(sourceKey).sort().join(',')}`;
  }
}

/** A source as text: `web1`, `worker (3 hosts)`, `every inventory host (12)`, `192.0.2.0/24`, `anyone`. */
export function sourceText(s: Source): string {
  switch (s.kind) {
    case 'host':
      return s.name;
    case 'role':
      return `${s.name} (${s.hosts} hosts)`;
    case 'fleet':
      return `every inventory host (${s.hosts})`;
    case 'cidr':
      return s.cidr.endsWith('/32') || s.cidr.endsWith('/128') ? s.cidr.slice(0, s.cidr.lastIndexOf('/')) : s.cidr;
    case 'any': {
      const who = s.families.length > 1 ? 'anyone' : s.families[0] === 'ipv4' ? 'any IPv4 address' : 'any IPv6 address';
      return s.except && s.except.length > 0 ? `${who} except ${listText(s.except.map(sourceText))}` : who;
    }
  }
}

/** A source in JSON: the name of a host or role, a CIDR, `fleet`, or `any`. */
export function sourceJson(s: Source): string {
  switch (s.kind) {
    case 'host':
    case 'role':
      return s.name;
    case 'fleet':
      return 'fleet';
    case 'cidr':
      return s.cidr;
    case 'any':
      return s.except && s.except.length > 0 ? `any except ${s.except.map(sourceJson).join(' ')}` : 'any';
  }
}

/** Merges the same source seen in both families (anyone: both families). */
export function mergeSources(list: readonly Source[]): Source[] {
  const byKey = new Map<string, Source>();
  for (const s of list) {
    const key = sourceKey(s);
    const prev = byKey.get(key);
    if (prev && prev.kind === 'any' && s.kind === 'any') {
      byKey.set(key, { ...prev, families: [...new Set([...prev.families, ...s.families])].sort() });
    } else if (!prev) byKey.set(key, s);
  }
  return [...byKey.values()].sort(compareSources);
}

const ORDER: Record<Source['kind'], number> = { any: 0, fleet: 1, role: 2, host: 3, cidr: 4 };

function compareSources(a: Source, b: Source): number {
  if (a.kind !== b.kind) return ORDER[a.kind] - ORDER[b.kind];
  const ka = sourceKey(a);
  const kb = sourceKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** `a`, `a and b`, `a, b and c`; more than `max` items end in `and N more`. */
export function listText(items: readonly string[], max = 12): string {
  if (items.length <= 1) return items[0] ?? '';
  const shown = items.length > max ? [...items.slice(0, max), `${items.length - max} more`] : [...items];
  return `${shown.slice(0, -1).join(', ')} and ${shown[shown.length - 1]}`;
}
