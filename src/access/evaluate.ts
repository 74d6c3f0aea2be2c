/**
 * The evaluator: which connections to a host its ruleset admits. A connection is seen from the host:
 * a remote address and port, a local service (protocol and port), the interface it arrives on. Its
 * packets cross netfilter as the lockout check walks them (the first packet, the client's later
 * packets, the replies), every table and chain, jumps included. Three answers: accepted, denied, and
 * undetermined where a rule that may decide has a match this cannot read (`-m recent`, a rate limit,
 * an unknown target): never a guess.
 *
 * Rules are compiled once per table: conditions become sets of remote addresses and of services, and
 * runs of rules that differ only in their source (the fleet's thousands of `-s CIDR` rules) become one
 * rule matching the union. The same compiled rules answer for one connection (the deciding rule) and
 * for regions of connections (every address and service at once, for `diff` and port ranges).
 */
import type { Family } from '../inventory/model.js';
import { isBlock, type Rule, type RuleBlock, type Ruleset, type Table, type TableName } from '../model/ruleset.js';
import { FULL, parseCidr, type Addr, type AddrSet } from './addresses.js';
import { contains, equals, fromRanges, intersect, subtract, union } from './intervals.js';
import { EMPTY_REGION, box, isEmptyRegion, splitRegion, unionRegion, type Region } from './region.js';
import {
  flip,
  ifaceIn,
  membersAsSets,
  parseRuleMatch,
  portRanges,
  portsIn,
  worse,
  type Condition,
  type IfaceClass,
  type Match,
} from './rule-match.js';
import { ALL_SERVICES, PROTO_SERVICES, SERVICE_END, UDP_BASE, portServices, type ServiceSet } from './services.js';

/** The ports a client connects from (as the lockout check assumes): unprivileged, ephemeral. */
const CLIENT_PORTS = [1024, 65535] as const;

/** Which way a packet goes: from the remote end to the host (`in`), or from the host to it (`out`). */
type Way = 'in' | 'out';

/** A rule's conditions seen from one way: what is left to decide per connection. */
interface Frame {
  /** Remote addresses it matches; undefined: every address. */
  readonly remote: AddrSet | undefined;
  /** Local addresses it matches; undefined: every address. */
  readonly local: AddrSet | undefined;
  /** Local services it matches. */
  readonly svc: ServiceSet;
  /** Conditions decided per packet: interface, state, direction, the remote port, unknown options. */
  readonly fixed: readonly Condition[];
  /** Unknown whatever the packet: a condition on an address or port it cannot read. */
  readonly unknown: boolean;
}

/** Rules that share everything but their source, compiled as one. */
export interface CompiledRule {
  readonly members: readonly Rule[];
  /** Each member's own source, flat (`[lo0, hi0, lo1, hi1, ...]`), to name the member holding an address. */
  readonly memberRanges?: readonly Addr[];
  readonly target: string;
  readonly goto: boolean;
  readonly frames: Readonly<Record<Way, Frame>>;
  /** Options not understood, for messages. */
  readonly unknownOptions: readonly string[];
}

export interface CompiledTable {
  readonly name: string;
  readonly chains: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly policies: ReadonlyMap<string, string>;
  readonly declared: ReadonlySet<string>;
}

/** What a ruleset is judged with: its family, and the members of the sets its rules match. */
export interface RulesetInput {
  readonly ruleset: Ruleset;
  readonly family: Family;
  readonly sets?: ReadonlyMap<string, readonly string[]>;
}

/** Targets that never drop, divert, rewrite or reroute a packet (the lockout check's list). */
const HARMLESS = new Set(['LOG', 'NFLOG', 'ULOG', 'TRACE', 'AUDIT', 'TCPMSS', 'CHECKSUM']);
const FINAL = new Set(['ACCEPT', 'DROP', 'REJECT']);

// ---- compiling ---------------------------------------------------------------------------------------

const NO_SETS: ReadonlyMap<string, readonly string[]> = new Map();
const tableCache = new WeakMap<Table, Map<string, CompiledTable>>();
const blockCache = new WeakMap<object, WeakMap<RuleBlock, CompiledRule[]>>();

/** A table compiled for a family and a set of set members; cached per table object. */
export function compileTable(table: Table, family: Family, sets: ReadonlyMap<string, readonly string[]> = NO_SETS) {
  let byFamily = tableCache.get(table);
  if (!byFamily) tableCache.set(table, (byFamily = new Map()));
  const key = family;
  let ct = byFamily.get(key);
  if (ct && setsOf.get(ct) === sets) return ct;
  ct = buildTable(table, family, sets);
  setsOf.set(ct, sets);
  byFamily.set(key, ct);
  return ct;
}

const setsOf = new WeakMap<CompiledTable, ReadonlyMap<string, readonly string[]>>();

function buildTable(table: Table, family: Family, sets: ReadonlyMap<string, readonly string[]>): CompiledTable {
  const chains = new Map<string, CompiledRule[]>();
  const into = (chain: string): CompiledRule[] => {
    let list = chains.get(chain);
    if (!list) chains.set(chain, (list = []));
    return list;
  };
  let plain: Rule[] = [];
  const flush = (): void => {
    for (const run of runsOf(plain)) into(run[0]!.chain).push(...compileRun(run, family, sets));
    plain = [];
  };
  for (const r of table.rules) {
    if (isBlock(r)) {
      flush();
      into(r.chain).push(...compiledBlock(r, family, sets));
    } else plain.push(r);
  }
  flush();
  const policies = new Map(table.chains.map((c) => [c.name, c.policy]));
  const declared = new Set([...table.chains.map((c) => c.name), ...chains.keys()]);
  return { name: table.name, chains, policies, declared };
}

function compiledBlock(block: RuleBlock, family: Family, sets: ReadonlyMap<string, readonly string[]>): CompiledRule[] {
  let byBlock = blockCache.get(sets);
  if (!byBlock) blockCache.set(sets, (byBlock = new WeakMap()));
  let compiled = byBlock.get(block);
  if (!compiled) {
    compiled = runsOf(block.rules).flatMap((run) => compileRun(run, family, sets));
    byBlock.set(block, compiled);
  }
  return compiled;
}

/** Rules in runs of neighbours (of one chain) that differ only in their one plain source and comment. */
function runsOf(rules: readonly Rule[]): Rule[][] {
  const runs: Rule[][] = [];
  let run: Rule[] = [];
  for (const r of rules) {
    const prev = run[run.length - 1];
    if (prev && mergeable(prev, r)) run.push(r);
    else {
      if (run.length > 0) runs.push(run);
      run = [r];
    }
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/**
 * Whether two rules say the same but for the value of their one `-s` (not negated) and of their
 * comment: their words compared in place, nothing built (a 10,000-host fleet's rules are compared).
 */
function mergeable(x: Rule, y: Rule): boolean {
  const a = x.args;
  const b = y.args;
  if (x.chain !== y.chain || a.length !== b.length) return false;
  let sources = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '-s' && b[i] === '-s') {
      if (a[i - 1] === '!') return false;
      sources++;
      i++;
    } else if (a[i] === '--comment' && b[i] === '--comment') i++;
    else if (a[i] !== b[i]) return false;
  }
  return sources === 1;
}

/** Compiled rules for a run of rules that differ only in their source: one rule when every source reads. */
function compileRun(
  rules: readonly Rule[],
  family: Family,
  sets: ReadonlyMap<string, readonly string[]>,
): CompiledRule[] {
  if (rules.length === 1) return [compileSingle(rules[0]!, family, sets)];
  const first = parseRuleMatch(rules[0]!.args);
  // runsOf made sure each has one plain `-s`: each member's range, flat, in rule order.
  const ranges: Addr[] = new Array(rules.length * 2);
  for (let k = 0; k < rules.length; k++) {
    const a = rules[k]!.args;
    const r = parseCidr(a[a.indexOf('-s') + 1] ?? '');
    if (!r) return rules.map((x) => compileSingle(x, family, sets));
    // A source of the other family matches nothing here: an empty range.
    ranges[2 * k] = r.family === family ? r.lo : 0;
    ranges[2 * k + 1] = r.family === family ? r.hi : 0;
  }
  const rest = { ...first, conditions: first.conditions.filter((c) => !(c.kind === 'addr' && c.side === 'src')) };
  const one = compileOne(rules[0]!, rest, family, sets, unionOfRanges(ranges));
  return [{ ...one, members: rules, memberRanges: ranges }];
}

/** The set of flat ranges in any order; fwgen writes merged sources sorted and apart, which costs no sort. */
function unionOfRanges(flat: readonly Addr[]): AddrSet {
  let sorted = true;
  for (let i = 2; i < flat.length && sorted; i += 2) sorted = flat[i - 1]! < flat[i]!;
  if (!sorted) {
    const pairs: [Addr, Addr][] = [];
    for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
    return fromRanges(pairs);
  }
  return flat.filter((_, i) => flat[i - (i % 2)]! < flat[i - (i % 2) + 1]!);
}

/** A CIDR's addresses in this family: empty when it is of the other family; undefined when unreadable. */
function addrSet(cidr: string, family: Family): AddrSet | undefined {
  const r = parseCidr(cidr);
  if (!r) return undefined;
  return r.family === family ? [r.lo, r.hi] : [];
}

const singles = new WeakMap<object, Map<string, CompiledRule>>();

/**
 * A rule on its own. Rules of the same words (the baseline every role's file repeats, hooks, public
 * ports) are compiled once per family and set members; each keeps its own rule object, for its line.
 */
function compileSingle(rule: Rule, family: Family, sets: ReadonlyMap<string, readonly string[]>): CompiledRule {
  let bySets = singles.get(sets);
  if (!bySets) singles.set(sets, (bySets = new Map()));
  const key = `${family}\u0000${rule.args.join('\u0000')}`;
  const known = bySets.get(key);
  if (known) return known.members[0] === rule ? known : { ...known, members: [rule] };
  const compiled = compileOne(rule, parseRuleMatch(rule.args), family, sets);
  bySets.set(key, compiled);
  return compiled;
}

function compileOne(
  rule: Rule,
  m: ReturnType<typeof parseRuleMatch>,
  family: Family,
  sets: ReadonlyMap<string, readonly string[]>,
  extraSource?: AddrSet,
): CompiledRule {
  const modules = new Set<string>();
  const unknownOptions = m.conditions.flatMap((c) => {
    if (c.kind !== 'unknown') return [];
    const first = c.module !== undefined && !modules.has(c.module);
    if (c.module !== undefined) modules.add(c.module);
    return [first ? `-m ${c.module} ${c.option}` : c.option];
  });
  const frame = (way: Way): Frame => compileFrame(m.conditions, way, family, sets, extraSource);
  return {
    members: [rule],
    target: m.target,
    goto: m.goto,
    frames: { in: frame('in'), out: frame('out') },
    unknownOptions,
  };
}

function compileFrame(
  conditions: readonly Condition[],
  way: Way,
  family: Family,
  sets: ReadonlyMap<string, readonly string[]>,
  extraSource?: AddrSet,
): Frame {
  const full = FULL[family];
  let remote: AddrSet | undefined;
  let local: AddrSet | undefined;
  let svc: ServiceSet = [0, SERVICE_END];
  let unknown = false;
  const fixed: Condition[] = [];
  const remoteSide = way === 'in' ? 'src' : 'dst';
  const narrow = (side: 'src' | 'dst', set: AddrSet): void => {
    if (side === remoteSide) remote = remote === undefined ? set : intersect(remote, set);
    else local = local === undefined ? set : intersect(local, set);
  };
  if (extraSource) narrow('src', extraSource);
  for (const c of conditions) {
    switch (c.kind) {
      case 'addr': {
        const set = addrSet(c.cidr, family);
        if (set === undefined) unknown = true;
        else narrow(c.side, c.neg ? subtract(full, set) : set);
        break;
      }
      case 'set': {
        const members = sets.get(c.name);
        if (members === undefined || c.side === undefined) {
          unknown = true;
          break;
        }
        const m = membersAsSets(members);
        if (m.unreadable > 0) unknown = true;
        const set = family === 'ipv4' ? m.v4 : m.v6;
        narrow(c.side, c.neg ? subtract(full, set) : set);
        break;
      }
      case 'proto': {
        const p = PROTO_BY_NAME[c.value] ?? [];
        svc = intersect(svc, c.neg ? subtract([0, SERVICE_END], p) : p);
        break;
      }
      case 'ports': {
        const ranges = portRanges(c.specs);
        if (!ranges) {
          unknown = true;
          break;
        }
        const ports = fromRanges(portServices(ranges));
        const localSide = way === 'in' ? 'dst' : 'src';
        const remoteMatch = portsIn(c.specs, CLIENT_PORTS);
        if (c.side === localSide || (c.side === 'either' && remoteMatch === 'no')) {
          svc = intersect(svc, c.neg ? subtract([0, SERVICE_END], ports) : ports);
        } else if (c.side === 'either' && remoteMatch === 'unknown') {
          unknown = true;
        } else {
          // The remote port: decided the same way for every connection.
          const m = flip(remoteMatch, c.neg);
          if (m === 'no') svc = [];
          if (m === 'unknown') unknown = true;
        }
        break;
      }
      default:
        fixed.push(c);
    }
  }
  return { remote, local, svc, fixed, unknown };
}

const PROTO_BY_NAME: Readonly<Record<string, ServiceSet>> = {
  tcp: PROTO_SERVICES.tcp,
  '6': PROTO_SERVICES.tcp,
  udp: PROTO_SERVICES.udp,
  '17': PROTO_SERVICES.udp,
  all: [0, SERVICE_END],
  '0': [0, SERVICE_END],
};

// ---- the packets of a connection ---------------------------------------------------------------------

/** The host and interface a connection is judged at. */
export interface Place {
  readonly family: Family;
  /** The host's own address (the connection's destination). */
  readonly local: Addr;
  /** The interface the connection arrives on (and its replies leave by). */
  readonly iface: IfaceClass;
}

interface PacketKind {
  readonly label: 'new connection' | 'client packets' | 'replies';
  readonly way: Way;
  readonly state: 'NEW' | 'ESTABLISHED';
  readonly dir: 'ORIGINAL' | 'REPLY';
  readonly opt: '-i' | '-o';
  readonly path: readonly Hook[];
}

interface Hook {
  readonly table: TableName;
  readonly chain: string;
  readonly newOnly?: boolean;
}

/** Netfilter's order for a packet to a local socket, and for a locally generated one (as in the lockout check). */
const REQUEST_PATH: readonly Hook[] = [
  { table: 'raw', chain: 'PREROUTING' },
  { table: 'mangle', chain: 'PREROUTING' },
  { table: 'nat', chain: 'PREROUTING', newOnly: true },
  { table: 'mangle', chain: 'INPUT' },
  { table: 'filter', chain: 'INPUT' },
  { table: 'security', chain: 'INPUT' },
  { table: 'nat', chain: 'INPUT', newOnly: true },
];
const REPLY_PATH: readonly Hook[] = [
  { table: 'raw', chain: 'OUTPUT' },
  { table: 'mangle', chain: 'OUTPUT' },
  { table: 'filter', chain: 'OUTPUT' },
  { table: 'security', chain: 'OUTPUT' },
  { table: 'mangle', chain: 'POSTROUTING' },
];

const PACKETS: readonly PacketKind[] = [
  { label: 'new connection', way: 'in', state: 'NEW', dir: 'ORIGINAL', opt: '-i', path: REQUEST_PATH },
  { label: 'client packets', way: 'in', state: 'ESTABLISHED', dir: 'ORIGINAL', opt: '-i', path: REQUEST_PATH },
  // conntrack marks every packet in the reply direction ESTABLISHED, the SYN-ACK included.
  { label: 'replies', way: 'out', state: 'ESTABLISHED', dir: 'REPLY', opt: '-o', path: REPLY_PATH },
];

/** The per-packet conditions of a frame: interface, conntrack state and direction, the local address. */
function fixedMatch(f: Frame, place: Place, pk: PacketKind): Match {
  let m: Match = f.unknown ? 'unknown' : 'yes';
  if (f.local !== undefined) m = worse(m, contains(f.local, place.local) ? 'yes' : 'no');
  for (const c of f.fixed) {
    if (m === 'no') return m;
    switch (c.kind) {
      case 'iface':
        m = worse(m, c.opt === pk.opt ? flip(ifaceIn(c.name, place.iface), c.neg) : 'unknown');
        break;
      case 'state':
        m = worse(m, flip(c.values.includes(pk.state) ? 'yes' : 'no', c.neg));
        break;
      case 'ctdir':
        m = worse(m, flip(c.value === pk.dir ? 'yes' : 'no', c.neg));
        break;
      default:
        m = worse(m, 'unknown');
    }
  }
  return m;
}

// ---- regions -----------------------------------------------------------------------------------------

/** Which connections a ruleset accepts, and where it cannot say; the rest it denies. */
export interface Access {
  readonly accept: Region;
  readonly undetermined: Region;
}

interface Walked {
  accept: Region;
  deny: Region;
  undet: Region;
  fall: Region;
}

/**
 * Every connection to the host at `place` (tcp and udp, every remote address of the family), judged;
 * with `within`, only the connections of that region.
 */
export function accessOf(input: RulesetInput, place: Place, within?: Region): Access {
  let alive = within ?? box(ALL_SERVICES, FULL[place.family]);
  let undet = EMPTY_REGION;
  for (const pk of PACKETS) {
    for (const hook of pk.path) {
      if (hook.newOnly && pk.state !== 'NEW') continue;
      const table = input.ruleset.tables.find((t) => t.name === hook.table);
      if (!table) continue;
      const ct = compileTable(table, input.family, input.sets);
      const w = walkRegion(ct, hook.chain, alive, place, pk, 0);
      const policy = ct.policies.get(hook.chain) ?? 'ACCEPT';
      undet = unionRegion(undet, w.undet);
      alive = policy === 'ACCEPT' ? unionRegion(w.accept, w.fall) : w.accept;
      if (isEmptyRegion(alive)) return { accept: alive, undetermined: undet };
    }
  }
  return { accept: alive, undetermined: undet };
}

function walkRegion(
  ct: CompiledTable,
  chain: string,
  region: Region,
  place: Place,
  pk: PacketKind,
  depth: number,
): Walked {
  const out: Walked = { accept: EMPTY_REGION, deny: EMPTY_REGION, undet: EMPTY_REGION, fall: EMPTY_REGION };
  if (depth > 16) {
    out.undet = region;
    return out;
  }
  let alive = region;
  for (const rule of ct.chains.get(chain) ?? []) {
    if (isEmptyRegion(alive)) break;
    const t = rule.target;
    if (t === '' || HARMLESS.has(t)) continue;
    const f = rule.frames[pk.way];
    const m = fixedMatch(f, place, pk);
    if (m === 'no') continue;
    const { hit, rest } = splitRegion(alive, f.svc, f.remote);
    if (isEmptyRegion(hit)) continue;
    alive = rest;
    if (m === 'unknown') out.undet = unionRegion(out.undet, hit);
    else if (t === 'ACCEPT') out.accept = unionRegion(out.accept, hit);
    else if (t === 'DROP' || t === 'REJECT') out.deny = unionRegion(out.deny, hit);
    else if (t === 'RETURN') out.fall = unionRegion(out.fall, hit);
    else if (ct.declared.has(t) && !FINAL.has(t)) {
      const inner = walkRegion(ct, t, hit, place, pk, depth + 1);
      out.accept = unionRegion(out.accept, inner.accept);
      out.deny = unionRegion(out.deny, inner.deny);
      out.undet = unionRegion(out.undet, inner.undet);
      // After a jump the packet comes back to the next rule; after a goto, to the chain that called this one.
      if (rule.goto) out.fall = unionRegion(out.fall, inner.fall);
      else alive = unionRegion(alive, inner.fall);
    } else out.undet = unionRegion(out.undet, hit);
  }
  out.fall = unionRegion(out.fall, alive);
  return out;
}

// ---- one connection ----------------------------------------------------------------------------------

/** One connection: a remote address, a local service (see services.ts), at a place. */
export interface Connection {
  readonly remote: Addr;
  readonly service: number;
}

/** How one connection fares, and the rule (or chain policy) that decided. */
export interface Decision {
  readonly verdict: 'accept' | 'deny' | 'undetermined';
  /** Which packets were decided: the new connection's unless a later packet is stopped. */
  readonly packets: PacketKind['label'];
  readonly table: string;
  readonly chain: string;
  /** The deciding rule; absent when the chain's policy decided. */
  readonly rule?: Rule;
  /** The policy that decided (`ACCEPT`, `DROP`), when no rule did. */
  readonly policy?: string;
  /** Why a rule leaves the verdict undetermined. */
  readonly why?: string;
}

interface PointOutcome {
  readonly kind: 'accept' | 'deny' | 'undet' | 'fall';
  readonly chain: string;
  readonly rule?: Rule;
  readonly why?: string;
}

/** The decision for one connection: every packet of it through every hook, as `accessOf` judges regions. */
export function decide(input: RulesetInput, place: Place, conn: Connection): Decision {
  let decided: Decision | undefined;
  for (const pk of PACKETS) {
    for (const hook of pk.path) {
      if (hook.newOnly && pk.state !== 'NEW') continue;
      const table = input.ruleset.tables.find((t) => t.name === hook.table);
      if (!table) continue;
      const ct = compileTable(table, input.family, input.sets);
      const o = walkPoint(ct, hook.chain, conn, place, pk, 0);
      const where = { packets: pk.label, table: hook.table };
      const policy = ct.policies.get(hook.chain) ?? 'ACCEPT';
      let d: Decision;
      if (o.kind === 'fall') {
        d = { verdict: policy === 'ACCEPT' ? 'accept' : 'deny', ...where, chain: hook.chain, policy };
      } else {
        const verdict = o.kind === 'undet' ? 'undetermined' : o.kind;
        d = {
          verdict,
          ...where,
          chain: o.chain,
          ...(o.rule ? { rule: o.rule } : {}),
          ...(o.why ? { why: o.why } : {}),
        };
      }
      if (d.verdict !== 'accept') return d;
      // The rule named for an accepted connection is the one that admitted its first packet in filter INPUT.
      if (!decided && hook.table === 'filter' && pk.label === 'new connection') decided = d;
    }
  }
  return decided ?? { verdict: 'accept', packets: 'new connection', table: 'filter', chain: 'INPUT', policy: 'ACCEPT' };
}

function walkPoint(
  ct: CompiledTable,
  chain: string,
  c: Connection,
  place: Place,
  pk: PacketKind,
  depth: number,
): PointOutcome {
  if (depth > 16) return { kind: 'undet', chain, why: `jumps nested deeper than 16 at ${chain}` };
  for (const rule of ct.chains.get(chain) ?? []) {
    const t = rule.target;
    if (t === '' || HARMLESS.has(t)) continue;
    const f = rule.frames[pk.way];
    if (!contains(f.svc, c.service)) continue;
    if (f.remote !== undefined && !contains(f.remote, c.remote)) continue;
    const m = fixedMatch(f, place, pk);
    if (m === 'no') continue;
    const member = memberHolding(rule, c.remote);
    if (m === 'unknown') return { kind: 'undet', chain, rule: member, why: unknownWhy(rule) };
    if (t === 'ACCEPT') return { kind: 'accept', chain, rule: member };
    if (t === 'DROP' || t === 'REJECT') return { kind: 'deny', chain, rule: member };
    if (t === 'RETURN') return { kind: 'fall', chain };
    if (ct.declared.has(t) && !FINAL.has(t)) {
      const inner = walkPoint(ct, t, c, place, pk, depth + 1);
      if (inner.kind !== 'fall') return inner;
      if (rule.goto) return inner;
      continue;
    }
    return { kind: 'undet', chain, rule: member, why: `target ${t} is not known to accept or deny` };
  }
  return { kind: 'fall', chain };
}

function memberHolding(rule: CompiledRule, remote: Addr): Rule {
  const r = rule.memberRanges;
  if (!r) return rule.members[0]!;
  for (let k = 0; k < rule.members.length; k++)
    if (r[2 * k]! <= remote && remote < r[2 * k + 1]!) return rule.members[k]!;
  return rule.members[0]!;
}

function unknownWhy(rule: CompiledRule): string {
  const opts = rule.unknownOptions;
  return opts.length > 0
    ? `not understood: ${opts.join(' ')}`
    : 'a match it cannot read (a set without members, an address)';
}

// ---- pieces of a service set ---------------------------------------------------------------------------

const boundaries = new WeakMap<Ruleset, Map<string, number[]>>();

/** Every service number at which some rule's services start or end (per ruleset, family and sets: once). */
function ruleBoundaries(input: RulesetInput): number[] {
  let byInput = boundaries.get(input.ruleset);
  if (!byInput) boundaries.set(input.ruleset, (byInput = new Map()));
  const key = `${input.family}`;
  const known = byInput.get(key);
  if (known) return known;
  const cuts = new Set<number>();
  for (const table of input.ruleset.tables) {
    const ct = compileTable(table, input.family, input.sets);
    for (const list of ct.chains.values()) {
      for (const r of list) for (const f of [r.frames.in, r.frames.out]) for (const b of f.svc) cuts.add(b);
    }
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  byInput.set(key, sorted);
  return sorted;
}

/**
 * A set of services from one remote address, cut where rules start or end, each piece decided;
 * neighbours of one protocol decided by the same rule are joined.
 */
export function decidedPieces(
  input: RulesetInput,
  place: Place,
  remote: Addr,
  svcs: ServiceSet,
): [number, number, Decision][] {
  const cuts = ruleBoundaries(input);
  const out: [number, number, Decision][] = [];
  for (let i = 0; i < svcs.length; i += 2) {
    const points = [svcs[i]!, ...cuts.filter((c) => c > svcs[i]! && c < svcs[i + 1]!), svcs[i + 1]!];
    for (let k = 0; k + 1 < points.length; k++) {
      const d = decide(input, place, { remote, service: points[k]! });
      const last = out[out.length - 1];
      const sameProto = last !== undefined && last[0] >= UDP_BASE === points[k]! >= UDP_BASE;
      if (last && last[1] === points[k] && last[2].rule === d.rule && last[2].policy === d.policy && sameProto) {
        last[1] = points[k + 1]!;
      } else out.push([points[k]!, points[k + 1]!, d]);
    }
  }
  return out;
}

// ---- where two rulesets may differ ---------------------------------------------------------------------

const shapes = new WeakMap<CompiledRule['frames'], string>();

/** Everything about a compiled rule, seen one way, but the remote addresses it matches. */
function shapeOf(rule: CompiledRule, ways: readonly Way[]): string {
  const id = ways.join('+');
  let key = shapes.get(rule.frames);
  if (key === undefined || !key.startsWith(`${id}|`)) {
    const frame = (f: Frame) =>
      [f.svc.join(','), setId(f.local), f.remote === undefined ? '*' : 'set', f.unknown, JSON.stringify(f.fixed)].join(
        ';',
      );
    key = [id, rule.target, rule.goto, ...ways.map((w) => frame(rule.frames[w]))].join('|');
    shapes.set(rule.frames, key);
  }
  return key;
}

const setIds = new Map<string, { set: AddrSet; id: number }[]>();
const idOfSet = new WeakMap<AddrSet, string>();

/** A short key naming a set by its content: the same for equal sets. */
function setId(set: AddrSet | undefined): string {
  if (set === undefined) return '*';
  if (set.length <= 16) return set.join(',');
  let id = idOfSet.get(set);
  if (id === undefined) {
    const bucketKey = `${set.length}:${set[0]}:${set[set.length - 1]}`;
    const bucket = setIds.get(bucketKey) ?? [];
    setIds.set(bucketKey, bucket);
    let hit = bucket.find((b) => equals(b.set, set));
    if (!hit) bucket.push((hit = { set, id: bucket.length }));
    id = `${bucketKey}#${hit.id}`;
    idOfSet.set(set, id);
  }
  return id;
}

/** Which ways packets walk each chain of a table: from the hooks of requests (in) and replies (out), jumps followed. */
function waysOf(ct: CompiledTable): Map<string, Set<Way>> {
  const ways = new Map<string, Set<Way>>();
  const visit = (chain: string, way: Way, depth: number): void => {
    const seen = ways.get(chain) ?? new Set<Way>();
    if (seen.has(way) || depth > 16) return;
    ways.set(chain, seen.add(way));
    for (const r of ct.chains.get(chain) ?? []) if (ct.declared.has(r.target)) visit(r.target, way, depth + 1);
  };
  for (const [path, way] of [
    [REQUEST_PATH, 'in'],
    [REPLY_PATH, 'out'],
  ] as const) {
    for (const h of path) if (h.table === ct.name) visit(h.chain, way, 0);
  }
  return ways;
}

const symmetric = new WeakMap<AddrSet, WeakMap<AddrSet, AddrSet>>();

/** Addresses in one set and not the other, computed once per pair. */
function symmetricDifference(a: AddrSet, b: AddrSet): AddrSet {
  if (a === b) return [];
  let inner = symmetric.get(a);
  if (!inner) symmetric.set(a, (inner = new WeakMap()));
  let d = inner.get(b);
  if (!d) inner.set(b, (d = union(subtract(a, b), subtract(b, a))));
  return d;
}

/**
 * The connections whose verdict may differ between two rulesets of one family: outside this region a
 * connection meets rules of the same shape matching it alike in both, so both decide it the same way.
 * Rules are paired chain by chain (longest common subsequence of their shapes); an unpaired rule adds
 * all it matches, a paired one the addresses only one of the two matches. Undefined: the tables or
 * chain policies differ, so anything may.
 */
export function changeZone(base: RulesetInput, head: RulesetInput): Region | undefined {
  const names = (rs: Ruleset) =>
    rs.tables
      .map((t) => t.name)
      .sort()
      .join(',');
  if (names(base.ruleset) !== names(head.ruleset)) return undefined;
  const full = FULL[base.family];
  let zone = EMPTY_REGION;
  const add = (f: Frame, remote: AddrSet | undefined) => {
    if (remote === undefined || remote.length > 0) zone = unionRegion(zone, box(f.svc, remote ?? full));
  };
  for (const tb of base.ruleset.tables) {
    const th = head.ruleset.tables.find((t) => t.name === tb.name)!;
    const cb = compileTable(tb, base.family, base.sets);
    const ch = compileTable(th, head.family, head.sets);
    const policies = (c: CompiledTable) => [...c.policies].sort().join(',');
    if (policies(cb) !== policies(ch)) return undefined;
    const wb = waysOf(cb);
    const wh = waysOf(ch);
    for (const chain of new Set([...cb.chains.keys(), ...ch.chains.keys()])) {
      const ways = [...new Set([...(wb.get(chain) ?? []), ...(wh.get(chain) ?? [])])].sort();
      if (ways.length === 0) continue;
      const { pairs, onlyA, onlyB } = align(cb.chains.get(chain) ?? [], ch.chains.get(chain) ?? [], ways);
      for (const r of [...onlyA, ...onlyB]) for (const w of ways) add(r.frames[w], r.frames[w].remote);
      for (const [a, b] of pairs) {
        for (const w of ways) {
          const fa = a.frames[w].remote;
          const fb = b.frames[w].remote;
          if (fa !== undefined && fb !== undefined) add(a.frames[w], symmetricDifference(fa, fb));
        }
      }
    }
  }
  return zone;
}

/** Pairs the rules of two lists with the same shapes, in order (longest common subsequence). */
function align(a: readonly CompiledRule[], b: readonly CompiledRule[], ways: readonly Way[]) {
  const ka = a.map((r) => shapeOf(r, ways));
  const kb = b.map((r) => shapeOf(r, ways));
  const n = a.length;
  const m = b.length;
  const len: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      len[i]![j] = ka[i] === kb[j] ? len[i + 1]![j + 1]! + 1 : Math.max(len[i + 1]![j]!, len[i]![j + 1]!);
    }
  }
  const pairs: [CompiledRule, CompiledRule][] = [];
  const onlyA: CompiledRule[] = [];
  const onlyB: CompiledRule[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (ka[i] === kb[j]) pairs.push([a[i++]!, b[j++]!]);
    else if (len[i + 1]![j]! >= len[i]![j + 1]!) onlyA.push(a[i++]!);
    else onlyB.push(b[j++]!);
  }
  onlyA.push(...a.slice(i));
  onlyB.push(...b.slice(j));
  return { pairs, onlyA, onlyB };
}
