/**
 * Access changes as sentences a reviewer can approve: sources named after inventory hosts and roles,
 * destinations by role, ports as ranges, each with the rule that decides it (the witness connection's
 * deciding rule) and a witness connection whose verdict differs between the revisions. Hosts that
 * joined, left, moved or were readdressed get one line each, carrying the access that comes with them.
 */
import type { Family, Host } from '../inventory/model.js';
import { formatAddr, type Addr, type AddrSet } from './addresses.js';
import type { ChangeKind, AccessDiff, FleetAccess, RawChange } from './diff.js';
import { decide, decidedPieces, type Decision } from './evaluate.js';
import { contains, equals, intersect, union } from './intervals.js';
import { box, servicesWhere } from './region.js';
import type { Rule } from '../model/ruleset.js';
import { hostAddr, rulesetFor, type FleetRules } from './fleet.js';
import type { MembershipChange } from './membership.js';
import {
  indexNames,
  listText,
  mergeSources,
  nameSources,
  sourceJson,
  sourceKey,
  sourceText,
  type NameIndex,
  type Source,
} from './names.js';
import { originOf } from './origin.js';
import type { IfaceClass } from './rule-match.js';
import { ALL_SERVICES, describeServices, serviceOf, serviceRanges, type ServiceSet } from './services.js';

/** A connection whose verdict differs between the two revisions. */
export interface Witness {
  readonly from: string;
  readonly to: string;
  readonly toAddress: string;
  readonly port: string;
  readonly in: string;
}

/** One access change as JSON (`--format json`). */
export interface ChangeJson {
  readonly change: ChangeKind;
  readonly from: readonly string[];
  readonly to: readonly string[];
  readonly port: string;
  readonly in: string;
  /** The deciding rule's origin in the revision where the connection is accepted (or undetermined). */
  readonly rule: string;
  readonly witness: Witness;
}

/** A membership change as JSON, with the access changes that come with it. */
export type MembershipJson = MembershipChange & { readonly access: readonly ChangeJson[] };

/** The whole report of `fwgen diff`. */
export interface DiffReport {
  readonly base: string;
  readonly head: string;
  readonly changes: readonly ChangeJson[];
  readonly membership: readonly MembershipJson[];
  /** Rendered files that differ between the revisions (whether or not access changed). */
  readonly renderedFilesChanged: number;
  /** The report as lines: membership first, then access; `+` granted, `-` taken away, `?` undetermined. */
  readonly lines: readonly string[];
}

/** A named part of a change, with the rule that decides it. */
interface Item {
  readonly kind: ChangeKind;
  readonly role: string;
  readonly family: Family;
  readonly hosts: readonly string[];
  readonly iface: string;
  readonly ifaceClass: IfaceClass;
  readonly services: ServiceSet;
  readonly source: Source;
  readonly rule: string;
  /** For undetermined changes: whether the head revision is the undetermined one. */
  readonly nowUndetermined?: boolean;
  readonly witness: Witness;
}

/** Above this many named parts in one change, the first part's deciding rule stands for all. */
const ATTRIBUTE_EACH = 64;

export interface DescribeInput {
  readonly base: FleetRules;
  readonly head: FleetRules;
  readonly baseLabel: string;
  readonly headLabel: string;
  readonly diff: AccessDiff;
  readonly membership: readonly MembershipChange[];
  readonly renderedFilesChanged: number;
}

/** Names, attributes, folds and groups the changes into the report. */
export function describeDiff(input: DescribeInput): DiffReport {
  const names = { base: indexNames(input.base.inventory), head: indexNames(input.head.inventory) };
  const items = input.diff.changes.flatMap((c) => itemsOf(c, input, names));
  const groups = groupByRole(items, input.diff, names);
  const folded = foldMembership(groups, input.membership);
  const sentences = groupSentences(
    groups.filter((g) => g.sources.length > 0),
    input.diff,
  );
  const membership = input.membership.map((m) => ({ ...m, access: (folded.get(m.host) ?? []).flatMap(foldedJson) }));
  const lines = [...membershipLines(input.membership, folded, input.diff), ...sentences.map((s) => s.line)];
  // Renamed hosts aside, nothing else changed: say that the rendered files change but access does not.
  const quiet = membership.every((m) => m.change === 'renamed' && m.access.length === 0);
  if (sentences.length === 0 && quiet && input.renderedFilesChanged > 0) {
    lines.push(
      `= no access changes: ${plural(input.renderedFilesChanged, 'rendered file')} change, ` +
        'but every connection is admitted or refused as before',
    );
  }
  return {
    base: input.baseLabel,
    head: input.headLabel,
    changes: sentences.flatMap((s) => s.json),
    membership,
    renderedFilesChanged: input.renderedFilesChanged,
    lines,
  };
}

function itemsOf(c: RawChange, input: DescribeInput, names: { base: NameIndex; head: NameIndex }): Item[] {
  const useBase = c.kind === 'removed';
  const parts = nameSources(useBase ? names.base : names.head, c.family, c.addrs);
  let shared: Omit<Item, 'source' | 'kind'> | undefined;
  return parts.map((p, i) => {
    if (i >= ATTRIBUTE_EACH && shared) return { ...shared, kind: c.kind, source: p.source };
    const attributed = attribute(c, p.addrs, input);
    if (i === 0) shared = attributed;
    return { ...attributed, kind: c.kind, source: p.source };
  });
}

/** The deciding rule for the first connection of a part: in head for what is granted, in base for what is taken. */
function attribute(c: RawChange, addrs: AddrSet, input: DescribeInput): Omit<Item, 'source' | 'kind'> {
  const host = c.hosts[0]!;
  // A connection of this part that changed (the change's own witness when none of the part did).
  const changed = intersect(addrs, c.witness.exact);
  const remote = contains(addrs, c.witness.remote)
    ? c.witness.remote
    : changed.length > 0
      ? changed[0]!
      : c.witness.remote;
  const service = c.witness.service;
  const judge = (fleet: FleetRules): { d: Decision; local: Addr } => {
    const h = fleet.inventory.hosts.find((x) => x.name === host)!;
    const local = hostAddr(h, c.family)!;
    const place = { family: c.family, local, iface: c.ifaceClass };
    return { d: decide(rulesetFor(fleet, c.role, c.family), place, { remote, service }), local };
  };
  const headSide = judge(input.head);
  let decision = headSide.d;
  let nowUndetermined: boolean | undefined;
  if (c.kind === 'removed') decision = judge(input.base).d;
  if (c.kind === 'undetermined') {
    nowUndetermined = headSide.d.verdict === 'undetermined';
    if (!nowUndetermined) decision = judge(input.base).d;
  }
  const origin = originOf(decision.rule, decision.policy);
  const why = decision.verdict === 'undetermined' && decision.why ? `: ${decision.why}` : '';
  const { proto, port } = serviceOf(service);
  const witness: Witness = {
    from: formatAddr(c.family, remote),
    to: host,
    toAddress: formatAddr(c.family, headSide.local),
    port: `${proto}/${port}`,
    in: c.iface === 'other' || c.iface === 'any' ? otherIfaceWitness(c.ifaceClass) : c.iface,
  };
  return {
    role: c.role,
    family: c.family,
    hosts: c.hosts,
    iface: c.iface,
    ifaceClass: c.ifaceClass,
    services: c.services,
    rule: `${origin.label}${why}`,
    ...(nowUndetermined === undefined ? {} : { nowUndetermined }),
    witness,
  };
}

/** A name for "an interface no rule names", usable with `fwgen query --in`. */
function otherIfaceWitness(cls: IfaceClass): string {
  if ('name' in cls) return cls.name;
  for (let i = 0; ; i++) if (!cls.except.includes(`eth${i}`)) return `eth${i}`;
}

// ---- membership ----------------------------------------------------------------------------------------

/**
 * Changes of one kind to one role, on the same ports and interface and decided by the same rule, with
 * their sources: hosts collapsed into roles (and the fleet) across both address families.
 */
interface RoleGroup {
  readonly first: Item;
  readonly role: string;
  readonly hosts: ReadonlySet<string>;
  readonly families: ReadonlySet<Family>;
  sources: Source[];
  /** Each host source's first item (its witness). */
  readonly byHost: ReadonlyMap<string, Item>;
  /** The names the sources were given with (head's, or base's for what was taken away). */
  readonly idx: NameIndex;
}

function groupByRole(
  items: readonly Item[],
  diff: AccessDiff,
  names: { base: NameIndex; head: NameIndex },
): RoleGroup[] {
  const groups = new Map<string, Item[]>();
  for (const i of items) {
    const key = [i.kind, i.nowUndetermined, i.role, i.iface, i.services.join(','), i.rule].join('|');
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  }
  return [...groups.values()].map((list) => {
    const first = list[0]!;
    const common = diff.commonHosts.get(first.role);
    // The families the role has hosts in: a source host is whole when all its addresses of these are there.
    const relevant = (['ipv4', 'ipv6'] as const).filter((f) => (common?.[f].length ?? 0) > 0);
    const byHost = new Map<string, Item>();
    for (const i of list) if (i.source.kind === 'host' && !byHost.has(i.source.name)) byHost.set(i.source.name, i);
    const idx = first.kind === 'removed' ? names.base : names.head;
    return {
      first,
      role: first.role,
      hosts: new Set(list.flatMap((i) => i.hosts)),
      families: new Set(list.map((i) => i.family)),
      sources: collapse(list, idx, relevant),
      byHost,
      idx,
    };
  });
}

/** Host sources collapsed: a role whose hosts (more than one) are all there, the fleet when every host is. */
function collapse(items: readonly Item[], idx: NameIndex, relevant: readonly Family[]): Source[] {
  const present = new Map<string, Set<Family>>();
  const others: Source[] = [];
  for (const i of items) {
    if (i.source.kind === 'host') present.set(i.source.name, (present.get(i.source.name) ?? new Set()).add(i.family));
    else others.push(i.source);
  }
  const inv = idx.inventory;
  const counts = (h: Host) => h.addresses.some((a) => relevant.includes(a.family));
  const whole = (h: Host) =>
    h.addresses.every((a) => !relevant.includes(a.family) || (present.get(h.name)?.has(a.family) ?? false));
  const out: Source[] = [];
  const countable = countableHosts(idx, relevant);
  if (
    present.size >= countable &&
    countable > 1 &&
    inv.roles.length > 1 &&
    inv.hosts.every((h) => !counts(h) || whole(h))
  ) {
    out.push({ kind: 'fleet', hosts: inv.hosts.length });
  } else {
    // Only the roles of hosts that are there can be whole.
    const taken = new Set<string>();
    const roles = new Set([...present.keys()].map((n) => idx.hostsByName.get(n)?.role));
    for (const role of inv.roles) {
      if (!roles.has(role.name)) continue;
      const mine = role.hosts.filter(counts);
      if (mine.length > 1 && mine.every(whole)) {
        out.push({ kind: 'role', name: role.name, hosts: role.hosts.length });
        for (const h of mine) taken.add(h.name);
      }
    }
    for (const name of present.keys()) {
      if (!taken.has(name)) out.push({ kind: 'host', name, role: idx.hostsByName.get(name)?.role ?? '' });
    }
  }
  // Anyone of every family the role has hosts in is anyone.
  const merged = mergeSources([...out, ...others]);
  return merged.map((src) =>
    src.kind === 'any' && relevant.every((f) => src.families.includes(f))
      ? { ...src, families: ['ipv4', 'ipv6'] as Family[] }
      : src,
  );
}

const countable = new WeakMap<NameIndex, Map<string, number>>();

/** How many hosts have an address of one of these families (once per index and families). */
function countableHosts(idx: NameIndex, families: readonly Family[]): number {
  let byKey = countable.get(idx);
  if (!byKey) countable.set(idx, (byKey = new Map()));
  const key = families.join(',');
  let n = byKey.get(key);
  if (n === undefined) {
    n = idx.inventory.hosts.filter((h) => h.addresses.some((a) => families.includes(a.family))).length;
    byKey.set(key, n);
  }
  return n;
}

/** A host's share of a role group, moved to the host's membership line. */
interface Folded {
  readonly group: RoleGroup;
  readonly item: Item;
}

/** Host sources that belong to a host's membership change move to that host's line. */
function foldMembership(groups: RoleGroup[], membership: readonly MembershipChange[]): Map<string, Folded[]> {
  // Which host name, seen in which revision's names, belongs to which membership line.
  const inHead = new Map<string, string>();
  const inBase = new Map<string, string>();
  for (const m of membership) {
    if (m.change !== 'left') inHead.set(m.host, m.host);
    if (m.change === 'left' || m.change === 'moved' || m.change === 'readdressed') inBase.set(m.host, m.host);
    if (m.change === 'renamed') inBase.set(m.from, m.host);
  }
  const folded = new Map<string, Folded[]>(membership.map((m) => [m.host, []]));
  for (const g of groups) {
    const names = g.first.kind === 'removed' ? inBase : inHead;
    g.sources = g.sources.filter((src) => {
      // A host, or a role (the fleet) all of whose hosts are members that changed: a new role, a new fleet.
      const members =
        src.kind === 'host'
          ? [src.name]
          : src.kind === 'role' || src.kind === 'fleet'
            ? [...g.byHost.keys()].filter((h) => src.kind === 'fleet' || g.idx.hostsByName.get(h)?.role === src.name)
            : [];
      if (members.length === 0 || !members.every((h) => names.has(h))) return true;
      for (const h of members) folded.get(names.get(h)!)!.push({ group: g, item: g.byHost.get(h)! });
      return false;
    });
  }
  // A readdressed (or renamed) host keeps what it had: the same access taken from its old address and
  // granted to its new one cancels out.
  for (const [host, list] of folded) {
    const key = (f: Folded) => `${f.group.role}|${f.item.iface}|${f.item.services.join(',')}`;
    const removed = new Map<string, number>();
    list.forEach((f, n) => f.item.kind === 'removed' && removed.set(key(f), n));
    const drop = new Set<number>();
    list.forEach((f, n) => {
      const r = f.item.kind === 'added' ? removed.get(key(f)) : undefined;
      if (r !== undefined && !drop.has(r)) drop.add(r).add(n);
    });
    folded.set(
      host,
      list.filter((_, n) => !drop.has(n)),
    );
  }
  return folded;
}

function membershipLines(
  membership: readonly MembershipChange[],
  folded: ReadonlyMap<string, readonly Folded[]>,
  diff: AccessDiff,
): string[] {
  // A host that joins (or leaves) is described by all it may reach (or could), not only by what an
  // unknown address at its place could not: the change it brings is what it gets.
  const clauses = (m: MembershipChange): string[] => {
    if (m.change === 'joined') return hostAccessClauses(m.host, diff.head, 'added');
    if (m.change === 'left') return hostAccessClauses(m.host, diff.base, 'removed');
    const own = (folded.get(m.host) ?? []).map((f) => ({ ...f.group, first: f.item, sources: [] }));
    return groupSentences(own, diff).map((s) => s.clause);
  };
  // Hosts joining (or leaving) one role with the same consequences share a line.
  const shared = new Map<string, { names: string[]; m: MembershipChange; clauses: string[] }>();
  const lines: string[] = [];
  for (const m of membership) {
    const c = clauses(m);
    if (m.change === 'joined' || m.change === 'left') {
      const key = `${m.change}|${m.role}|${c.join('|')}`;
      const g = shared.get(key);
      if (g) g.names.push(m.host);
      else shared.set(key, { names: [m.host], m, clauses: c });
      continue;
    }
    lines.push(membershipLine(m, [m.host], c));
  }
  for (const g of shared.values()) lines.push(membershipLine(g.m, g.names, g.clauses));
  return lines.sort((a, b) => lineOrder(a) - lineOrder(b));
}

/**
 * What a host may reach in one revision, by the rules that name its address (rules open to any
 * address left out: they are no news), grouped by rule, roles and ports.
 */
function hostAccessClauses(name: string, access: FleetAccess, kind: 'added' | 'removed'): string[] {
  const inv = access.fleet.inventory;
  const host = inv.hosts.find((h) => h.name === name);
  if (!host) return [];
  // Per interface label: what the host reaches per role (by any rule), and per deciding rule.
  const reach = new Map<string, Map<string, ServiceSet>>();
  const byRule = new Map<string, { cls: IfaceClass; roles: Map<string, ServiceSet> }>();
  const add = (m: Map<string, ServiceSet>, role: string, svcs: ServiceSet) =>
    m.set(role, union(m.get(role) ?? [], svcs));
  for (const net of host.addresses) {
    const family = net.family;
    const addr = hostAddr(host, family)!;
    for (const role of inv.roles) {
      const target = role.hosts.find((h) => hostAddr(h, family) !== undefined);
      if (!target) continue;
      const local = hostAddr(target, family)!;
      const input = access.input(role.name, family);
      for (const cls of access.classes(role.name, family)) {
        const label = ifaceKey(cls);
        const only = box(
          ALL_SERVICES,
          family === 'ipv4' ? [addr, (addr as number) + 1] : [addr, (addr as bigint) + 1n],
        );
        const svcs = servicesWhere(access.at(role.name, family, cls, local, only).accept, (set) => contains(set, addr));
        if (svcs.length === 0) continue;
        if (!reach.has(label)) reach.set(label, new Map());
        add(reach.get(label)!, role.name, svcs);
        for (const [lo, hi, d] of decidedPieces(input, { family, local, iface: cls }, addr, svcs)) {
          if (!d.rule || !namesSource(d.rule)) continue;
          const key = `${originOf(d.rule).label}\u0000${label}`;
          if (!byRule.has(key)) byRule.set(key, { cls, roles: new Map() });
          add(byRule.get(key)!.roles, role.name, [lo, hi]);
        }
      }
    }
  }
  const clauses = new Set<string>();
  const allRoles = inv.roles.map((r) => r.name);
  for (const [key, { cls, roles }] of byRule) {
    const [rule, label] = key.split('\u0000') as [string, string];
    // Said of one interface only when the host does not reach the same on the others anyway.
    const elsewhere = [...reach.keys()].filter((l) => l !== label);
    const everywhere = [...roles].every(([role, svcs]) =>
      elsewhere.every((l) => equals(intersect(reach.get(l)?.get(role) ?? [], svcs), svcs)),
    );
    const via = everywhere ? '' : ifaceText(ifaceLabel(cls), cls);
    const groups = new Map<string, { roles: string[]; svcs: ServiceSet }>();
    for (const [role, svcs] of roles) {
      const k = svcs.join(',');
      if (!groups.has(k)) groups.set(k, { roles: [], svcs });
      groups.get(k)!.roles.push(role);
    }
    for (const g of groups.values()) {
      const dst =
        g.roles.length === allRoles.length && allRoles.length > 1
          ? 'every role'
          : listText(
              g.roles.sort().map((r) => `${r} (${plural(inv.roles.find((x) => x.name === r)!.hosts.length, 'host')})`),
            );
      const ports = describeServices(g.svcs).join(', ');
      clauses.add(
        kind === 'added'
          ? `may reach ${dst} on ${ports}${via} (${rule})`
          : `could reach ${dst} on ${ports}${via} (by ${rule})`,
      );
    }
  }
  // The widest first: every role before one role.
  return [...clauses].sort(
    (a, b) => Number(b.includes('every role')) - Number(a.includes('every role')) || (a < b ? -1 : 1),
  );
}

function ifaceKey(cls: IfaceClass): string {
  return 'name' in cls ? cls.name : `other:${cls.except.join(',')}`;
}

function ifaceLabel(cls: IfaceClass): string {
  return 'name' in cls ? cls.name : cls.except.length === 0 ? 'any' : 'other';
}

/** Whether a rule matches its source address (a rule without one admits any address). */
function namesSource(rule: Rule): boolean {
  const a = rule.args;
  return a.some((w, i) => (w === '-s' && a[i - 1] !== '!') || (w === '--match-set' && a[i + 2] === 'src'));
}

function lineOrder(line: string): number {
  return { '+': 0, '~': 1, '-': 2, '?': 3, '=': 4 }[line[0]!] ?? 5;
}

function membershipLine(m: MembershipChange, hosts: readonly string[], clauses: readonly string[]): string {
  const many = hosts.length > 1;
  const who = listText([...hosts]);
  const it = many ? 'they' : 'it';
  const addrs = many ? '' : ` (${m.addresses.join(', ')})`;
  const tail = clauses.map((c) => `; ${it} ${c}`).join('');
  switch (m.change) {
    case 'joined':
      return `+ ${who} ${many ? 'join' : 'joins'} ${m.role}${addrs}: ${it} ${many ? 'get' : 'gets'} ${m.role}'s rules${tail}`;
    case 'left':
      return `- ${who} ${many ? 'leave' : 'leaves'} ${m.role}${addrs}: ${many ? 'their' : 'its'} rules go${tail}`;
    case 'moved':
      return `~ ${who} moves from ${m.from} to ${m.role}${addrs}: it gets ${m.role}'s rules instead of ${m.from}'s${tail}`;
    case 'readdressed':
      return `~ ${who} is readdressed from ${m.was.join(', ')} to ${m.addresses.join(', ')}${tail || ': its access moves with it'}`;
    case 'renamed':
      return `~ ${m.from} is renamed ${who} (same role and addresses)${tail}`;
  }
}

// ---- sentences -----------------------------------------------------------------------------------------

interface Sentence {
  /** `+ SOURCES may reach ROLES on PORTS (RULE)`. */
  readonly line: string;
  /** The same without its sign and sources, for a membership line: `may reach ROLES on PORTS (RULE)`. */
  readonly clause: string;
  readonly json: ChangeJson[];
}

/** Role groups with the same change, ports, interface, rule and sources are one sentence, listing their roles. */
function groupSentences(groups: readonly RoleGroup[], diff: AccessDiff): Sentence[] {
  const bySources = new Map<
    string,
    { first: Item; sources: Source[]; dst: Map<string, Set<string>>; families: Set<Family> }
  >();
  for (const g of groups) {
    const f = g.first;
    const key = [f.kind, f.nowUndetermined, f.iface, f.services.join(','), f.rule, ...g.sources.map(sourceKey)].join(
      '|',
    );
    let s = bySources.get(key);
    if (!s) bySources.set(key, (s = { first: f, sources: g.sources, dst: new Map(), families: new Set() }));
    const hosts = s.dst.get(g.role) ?? new Set<string>();
    for (const h of g.hosts) hosts.add(h);
    s.dst.set(g.role, hosts);
    for (const fam of g.families) s.families.add(fam);
  }
  const out = [...bySources.values()].map((s) => sentence(s.first, s.sources, s.dst, [...s.families], diff));
  return out.sort((a, b) => lineOrder(a.line) - lineOrder(b.line) || (a.line < b.line ? -1 : a.line > b.line ? 1 : 0));
}

function sentence(
  first: Item,
  sources: readonly Source[],
  dst: ReadonlyMap<string, ReadonlySet<string>>,
  families: readonly Family[],
  diff: AccessDiff,
): Sentence {
  const from = listText(sources.map(sourceText));
  const to = destinationText(dst, families, diff);
  const ports = describeServices(first.services).join(', ');
  const via = ifaceText(first.iface, first.ifaceClass);
  let verb: string;
  let sign: string;
  let rule = first.rule;
  if (first.kind === 'added') [sign, verb] = ['+', 'may reach'];
  else if (first.kind === 'removed') [sign, verb, rule] = ['-', 'may no longer reach', `was ${first.rule}`];
  else if (first.nowUndetermined) [sign, verb] = ['?', 'may or may not reach'];
  else [sign, verb, rule] = ['?', 'is decided again on reaching', `was undetermined: ${first.rule}`];
  const clause = `${verb} ${to} on ${ports}${via} (${rule})`;
  const toJson = [...dst.entries()].flatMap(([role, hosts]) =>
    whole(diff, role, hosts, families) ? [role] : [...hosts].sort(),
  );
  const json = serviceRanges(first.services).map((port) => ({
    change: first.kind,
    from: sources.map(sourceJson),
    to: toJson,
    port,
    in: first.iface,
    rule: first.rule,
    witness: first.witness,
  }));
  return { line: `${sign} ${from} ${clause}`, clause, json };
}

/** Whether `hosts` are all of a role's hosts (in both revisions) that have an address of these families. */
function whole(diff: AccessDiff, role: string, hosts: ReadonlySet<string>, families: readonly Family[]): boolean {
  const common = diff.commonHosts.get(role);
  return common !== undefined && families.every((f) => common[f].every((h) => hosts.has(h)));
}

function destinationText(
  dst: ReadonlyMap<string, ReadonlySet<string>>,
  families: readonly Family[],
  diff: AccessDiff,
): string {
  const roles = [...dst.keys()].sort();
  const count = (role: string) => {
    const c = diff.commonHosts.get(role)!;
    return new Set([...c.ipv4, ...c.ipv6]).size;
  };
  if (
    roles.length === diff.roles.length &&
    roles.length > 1 &&
    roles.every((r) => whole(diff, r, dst.get(r)!, families))
  ) {
    return 'every role';
  }
  return listText(
    roles.map((r) => {
      const hosts = dst.get(r)!;
      if (whole(diff, r, hosts, families)) return `${r} (${plural(count(r), 'host')})`;
      return `${listText([...hosts].sort(), 6)} of ${r}`;
    }),
  );
}

function ifaceText(iface: string, cls: IfaceClass): string {
  if (iface === 'other' && 'except' in cls && cls.except.length === 0) return '';
  if (iface === 'any') return '';
  if (iface === 'other' && 'except' in cls) return ` via interfaces other than ${listText([...cls.except])}`;
  return ` via ${iface}`;
}

function foldedJson(f: Folded): ChangeJson[] {
  const i = f.item;
  return serviceRanges(i.services).map((port) => ({
    change: i.kind,
    from: [sourceJson(i.source)],
    to: [f.group.role],
    port,
    in: i.iface,
    rule: i.rule,
    witness: i.witness,
  }));
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
