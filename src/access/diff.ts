/**
 * The access that changed between two revisions of a fleet: for every role present in both, every
 * connection to the hosts it had in both (every remote address, tcp and udp port, interface) judged
 * with each revision's rules; what changed is kept as regions, split by interface.
 */
import type { Family, Host } from '../inventory/model.js';
import { FULL, type Addr, type AddrSet } from './addresses.js';
import { accessOf, changeZone, type Access, type RulesetInput } from './evaluate.js';
import {
  hostAddr,
  ifaceLabel,
  interfaceClasses,
  localKey,
  localSets,
  namedInterfaces,
  rulesetFor,
  type FleetRules,
} from './fleet.js';
import { equals, intersect, union } from './intervals.js';
import {
  box,
  combine,
  intersectRegion,
  isEmptyRegion,
  segments,
  subtractRegion,
  unionRegion,
  type Region,
} from './region.js';
import type { IfaceClass } from './rule-match.js';
import { ALL_SERVICES, type ServiceSet } from './services.js';

export type ChangeKind = 'added' | 'removed' | 'undetermined';

/** Connections to some hosts of a role, of one family, whose verdict changed the same way. */
export interface RawChange {
  readonly kind: ChangeKind;
  readonly role: string;
  readonly family: Family;
  /** The role's hosts (present in both revisions) these connections go to. */
  readonly hosts: readonly string[];
  /** `any`, an interface name, or `other` (an interface no rule names). */
  readonly iface: string;
  readonly ifaceClass: IfaceClass;
  readonly services: ServiceSet;
  readonly addrs: AddrSet;
  /**
   * A connection of the change whose verdict differs, and the addresses whose verdict differs at its
   * service (`addrs` may be widened beyond them: see changeRegions).
   */
  readonly witness: { readonly remote: Addr; readonly service: number; readonly exact: AddrSet };
}

/** Roles and families whose rules were judged, and what changed. */
export interface AccessDiff {
  readonly changes: readonly RawChange[];
  /** Roles present in both revisions with hosts in both (their hosts judged). */
  readonly roles: readonly string[];
  /** Each role's hosts that are in it in both revisions, per family of their (head) address. */
  readonly commonHosts: ReadonlyMap<string, Readonly<Record<Family, readonly string[]>>>;
  /** The access of each revision's roles, computed once (the diff's, and more on demand). */
  readonly base: FleetAccess;
  readonly head: FleetAccess;
}

/** A fleet's access per role, family, interface and host address, each computed once. */
export class FleetAccess {
  private readonly cache = new Map<string, Access>();
  private readonly classCache = new Map<string, IfaceClass[]>();
  constructor(readonly fleet: FleetRules) {}

  /** The rules of a role's hosts of a family. */
  input(role: string, family: Family): RulesetInput {
    return rulesetFor(this.fleet, role, family);
  }

  /** The interfaces worth telling apart for a role (its rules', and `also`'s). */
  classes(role: string, family: Family, also?: RulesetInput): IfaceClass[] {
    const key = `${role}|${family}|${also ? 'both' : 'one'}`;
    let c = this.classCache.get(key);
    if (!c)
      this.classCache.set(
        key,
        (c = interfaceClasses(namedInterfaces([this.input(role, family), ...(also ? [also] : [])]))),
      );
    return c;
  }

  /** Connections to a role's host at `local` arriving on `iface`, judged: all of them, or those `within`. */
  at(role: string, family: Family, iface: IfaceClass, local: Addr, within?: Region): Access {
    if (within) return accessOf(this.input(role, family), { family, local, iface }, within);
    const key = `${role}|${family}|${'name' in iface ? `n:${iface.name}` : `x:${iface.except.join(',')}`}|${local}`;
    let a = this.cache.get(key);
    if (!a) this.cache.set(key, (a = accessOf(this.input(role, family), { family, local, iface })));
    return a;
  }
}

/** Every change of access between two revisions of a fleet; `same` says a role's rules did not change. */
export function diffAccess(
  base: FleetRules,
  head: FleetRules,
  same?: (role: string, family: Family) => boolean,
): AccessDiff {
  const access = { base: new FleetAccess(base), head: new FleetAccess(head) };
  const changes: RawChange[] = [];
  const roles: string[] = [];
  const commonHosts = new Map<string, Record<Family, string[]>>();
  const baseHosts = new Map(base.inventory.hosts.map((h) => [h.name, h]));
  for (const role of head.inventory.roles) {
    const common = role.hosts.filter((h) => baseHosts.get(h.name)?.role === role.name);
    if (common.length === 0) continue;
    roles.push(role.name);
    const byFamily: Record<Family, string[]> = { ipv4: [], ipv6: [] };
    commonHosts.set(role.name, byFamily);
    for (const family of ['ipv4', 'ipv6'] as const) {
      const pairs = common.flatMap((h) => {
        const b = baseHosts.get(h.name)!;
        const ha = hostAddr(h, family);
        const ba = hostAddr(b, family);
        return ha === undefined || ba === undefined ? [] : [{ host: h, head: ha, base: ba }];
      });
      byFamily[family] = pairs.map((p) => p.host.name);
      if (pairs.length === 0 || same?.(role.name, family)) continue;
      changes.push(...diffRole(access, role.name, family, pairs));
    }
  }
  return { changes, roles, commonHosts, ...access };
}

interface HostPair {
  readonly host: Host;
  readonly head: Addr;
  readonly base: Addr;
}

function diffRole(
  access: { base: FleetAccess; head: FleetAccess },
  role: string,
  family: Family,
  pairs: readonly HostPair[],
): RawChange[] {
  const base = access.base.input(role, family);
  const head = access.head.input(role, family);
  const classes = access.base.classes(role, family, head);
  const baseLocals = localSets([base]);
  const headLocals = localSets([head]);
  // Hosts alike for every local address condition of both revisions are judged once.
  const groups = new Map<string, HostPair[]>();
  for (const p of pairs) {
    const key = `${localKey(baseLocals, p.base)}|${localKey(headLocals, p.head)}`;
    const g = groups.get(key);
    if (g) g.push(p);
    else groups.set(key, [p]);
  }
  const out: RawChange[] = [];
  // Only where the two rulesets may differ is worth judging (one host's address, when it joins the fleet).
  const zone = changeZone(base, head) ?? box(ALL_SERVICES, FULL[family]);
  if (isEmptyRegion(zone)) return [];
  for (const group of groups.values()) {
    const first = group[0]!;
    const perClass = classes.map((iface) => {
      const before = accessOf(base, { family, local: first.base, iface }, zone);
      const after = accessOf(head, { family, local: first.head, iface }, zone);
      return changeRegions(before, after, zone);
    });
    const hosts = group.map((p) => p.host.name);
    for (const kind of ['added', 'removed', 'undetermined'] as const) {
      const regions = perClass.map((c) => c[kind]);
      for (const { iface, ifaceClass, region } of splitByInterface(regions, classes)) {
        // The witness is a connection that did change, on the interface the witness names.
        const exact = perClass[classes.indexOf(ifaceClass)]![kind === 'added' ? 'addedExact' : kind];
        for (const { services, addrs } of groupSegments(region)) {
          const witness = witnessOf(exact, services, addrs);
          out.push({ kind, role, family, hosts, iface, ifaceClass, services, addrs, witness });
        }
      }
    }
  }
  return out;
}

/**
 * Denied before and accepted now (added), the reverse (removed), and changes into or out of
 * undetermined. Where every connection of the zone is accepted now, what was added is widened to all
 * of them: "anyone may reach web on tcp/80" reads better than "anyone but the fleet", who could before.
 */
function changeRegions(before: Access, after: Access, zone: Region): Record<ChangeKind | 'addedExact', Region> {
  const deniedBefore = subtractRegion(subtractRegion(zone, before.accept), before.undetermined);
  const deniedAfter = subtractRegion(subtractRegion(zone, after.accept), after.undetermined);
  const undetermined = unionRegion(
    subtractRegion(after.undetermined, before.undetermined),
    subtractRegion(before.undetermined, after.undetermined),
  );
  const addedExact = intersectRegion(after.accept, deniedBefore);
  const everyone = combine(zone, after.accept, (z, acc) => (z.length > 0 && equals(z, acc) ? z : []));
  const added = combine(addedExact, everyone, (a, all) => (a.length > 0 && all.length > 0 ? all : a));
  return { added, addedExact, removed: intersectRegion(before.accept, deniedAfter), undetermined };
}

/** A changed connection inside a change: its first service, and an address that changed there. */
function witnessOf(exact: Region, services: ServiceSet, addrs: AddrSet): RawChange['witness'] {
  const service = services[0]!;
  for (let i = 0; i < exact.sets.length; i++) {
    if (exact.bounds[i]! <= service && service < exact.bounds[i + 1]!) {
      const hit = intersect(exact.sets[i]!, addrs);
      // Inside a network, an address a host could have rather than the network's own.
      if (hit.length > 0) return { remote: inside(hit[0]!, hit[1]!), service, exact: hit };
    }
  }
  return { remote: inside(addrs[0]!, addrs[1]!), service, exact: addrs };
}

function inside(lo: Addr, hi: Addr): Addr {
  if (typeof lo === 'bigint') return (hi as bigint) - lo > 2n ? lo + 1n : lo;
  return (hi as number) - lo > 2 ? lo + 1 : lo;
}

/**
 * What changed on every interface (`any`), and, for the addresses with more changed on one interface,
 * all that changed there for them (overlapping `any`: "every port via eth1" reads better than "every
 * port except tcp/5432 via eth1" beside "tcp/5432").
 */
function splitByInterface(
  regions: readonly Region[],
  classes: readonly IfaceClass[],
): { iface: string; ifaceClass: IfaceClass; region: Region }[] {
  const everywhere = regions.reduce((acc, r) => intersectRegion(acc, r));
  const out: { iface: string; ifaceClass: IfaceClass; region: Region }[] = [];
  const anyClass = classes[classes.length - 1]!;
  if (!isEmptyRegion(everywhere)) out.push({ iface: 'any', ifaceClass: anyClass, region: everywhere });
  if (classes.length === 1) return out;
  regions.forEach((r, i) => {
    const extra = subtractRegion(r, everywhere);
    if (isEmptyRegion(extra)) return;
    // Addresses with more changed here: all that changed here for them.
    const addrs = segments(extra).reduce<AddrSet>((acc, [, , set]) => union(acc, set), []);
    const region = intersectRegion(r, box(ALL_SERVICES, addrs));
    out.push({ iface: ifaceLabel(classes[i]!, classes), ifaceClass: classes[i]!, region });
  });
  return out;
}

/** The region's segments grouped by their set of addresses: each set once, with every service that has it. */
function groupSegments(region: Region): { services: ServiceSet; addrs: AddrSet }[] {
  const groups: { services: number[]; addrs: AddrSet }[] = [];
  for (const [lo, hi, set] of segments(region)) {
    let g = groups.find((x) => x.addrs === set) ?? groups.find((x) => equals(x.addrs, set));
    if (!g) groups.push((g = { services: [], addrs: set }));
    const s = g.services;
    if (s.length > 0 && s[s.length - 1] === lo) s[s.length - 1] = hi;
    else s.push(lo, hi);
  }
  return groups;
}
