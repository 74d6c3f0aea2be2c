import type Ipaddr from 'ipaddr.js';
import { emitRule } from '../model/emit.js';
import { ownerOf, type PreserveFn } from '../model/ownership.js';
import { parseRuleset } from '../model/parse.js';
import { chainRules, tableOf, targetOf, type Rule, type Table } from '../model/ruleset.js';
import { requireCjs } from '../util/require-cjs.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/**
 * A foreign hook ahead of fwgen's in INPUT sees every packet first: if it can ACCEPT a new
 * connection that fwgen's rules would reject, fwgen's policy does not hold on that host, though
 * status says in-sync (a `DOCKER-BACKDOOR` chain accepting everything matches the DOCKER* pattern).
 * Returns one line per such hook, naming it and the ACCEPT it leads to.
 *
 * Over-approximates on the hook's side (every ACCEPT reachable from the hook counts, whatever DROP
 * or RETURN precedes it; an option not understood narrows nothing) and under-approximates fwgen's
 * (an ACCEPT with an option not understood covers nothing): when in doubt, it warns.
 */
export function bypassingHooks(
  rendered: string,
  live: string,
  preserve: PreserveFn,
  sets: ReadonlyMap<string, readonly string[]> = new Map(),
): string[] {
  const liveFilter = tableOf(parseRuleset(live).ruleset, 'filter');
  const wantFilter = tableOf(parseRuleset(rendered).ruleset, 'filter');
  if (!liveFilter || !wantFilter) return [];
  const input = chainRules(liveFilter, 'INPUT');
  const fwgenAt = input.findIndex((r) => ownerOf(r, preserve) === 'fwgen');
  if (fwgenAt < 0) return [];
  const fwgenAccepts = chainRules(wantFilter, 'INPUT')
    .filter((r) => ownerOf(r, preserve) === 'fwgen')
    .flatMap((r) => acceptPaths(wantFilter, r))
    .map(constraintsOf);
  const out: string[] = [];
  for (const hook of input.slice(0, fwgenAt)) {
    // Rules before fwgen's hook that are not a preserved tool's hook show as drift already.
    if (ownerOf(hook, preserve) !== 'preserved') continue;
    const open = acceptPaths(liveFilter, hook).find((path) => {
      const c = constraintsOf(path);
      return c.canBeNew && !covered(c, fwgenAccepts, sets);
    });
    if (open)
      out.push(
        `${emitRule(hook)} (ahead of fwgen's hook) can accept new connections that fwgen's rules reject: ${emitRule(open.at(-1)!)}`,
      );
  }
  return out;
}

/** The rule sequences from `rule` that end in ACCEPT, following jumps and gotos into user chains. */
function acceptPaths(table: Table, rule: Rule, stack: readonly string[] = []): Rule[][] {
  const t = targetOf(rule);
  if (!t) return [];
  if (t.target === 'ACCEPT') return [[rule]];
  if (stack.includes(t.target) || stack.length >= 16 || !table.chains.some((c) => c.name === t.target)) return [];
  return chainRules(table, t.target).flatMap((r) =>
    acceptPaths(table, r, [...stack, t.target]).map((p) => [rule, ...p]),
  );
}

/** What a path's matches say about the packets it accepts (all its rules' matches together). */
interface Constraints {
  readonly proto?: string;
  /** Destination ports as ranges; undefined: any. */
  readonly dports?: readonly (readonly [number, number])[];
  readonly sources: readonly string[];
  readonly dests: readonly string[];
  readonly inIface?: string;
  readonly icmpType?: string;
  readonly states?: readonly string[];
  readonly srcSets: readonly string[];
  /** Some match fwgen cannot evaluate: such an fwgen ACCEPT covers nothing. */
  readonly unknown: boolean;
  /** The path can take the first packet of a connection (not only ESTABLISHED/RELATED, not `! --syn`). */
  readonly canBeNew: boolean;
}

const MODULES = new Set(['comment', 'tcp', 'udp', 'icmp', 'icmp6', 'icmpv6', 'conntrack', 'state', 'multiport', 'set']);

function constraintsOf(path: readonly Rule[]): Constraints {
  let proto: string | undefined;
  let dports: (readonly [number, number])[] | undefined;
  const sources: string[] = [];
  const dests: string[] = [];
  const srcSets: string[] = [];
  let inIface: string | undefined;
  let icmpType: string | undefined;
  let states: string[] | undefined;
  let unknown = false;
  let canBeNew = true;
  // Each rule's matches, up to its target (whose own options follow it).
  const args = path.flatMap((r) => {
    const j = r.args.findIndex((a) => a === '-j' || a === '-g');
    return j < 0 ? r.args : r.args.slice(0, j);
  });
  for (let i = 0; i < args.length; i++) {
    const negate = args[i] === '!';
    if (negate) i++;
    const opt = args[i];
    const val = args[i + 1] ?? '';
    switch (opt) {
      case '-m':
        if (!MODULES.has(val)) unknown = true;
        i++;
        break;
      case '--comment':
        i++;
        break;
      case '-p':
        if (negate) unknown = true;
        else proto = normalProto(val);
        i++;
        break;
      case '-s':
        if (negate) unknown = true;
        else sources.push(val);
        i++;
        break;
      case '-d':
        if (negate) unknown = true;
        else dests.push(val);
        i++;
        break;
      case '-i':
        if (negate) unknown = true;
        else inIface = val;
        i++;
        break;
      case '--dport':
      case '--dports':
      case '--destination-port':
      case '--destination-ports':
        if (negate) unknown = true;
        else dports = val.split(',').map(portRange);
        i++;
        break;
      case '--icmp-type':
      case '--icmpv6-type':
        if (negate) unknown = true;
        else icmpType = val;
        i++;
        break;
      case '--ctstate':
      case '--state': {
        const list = val.split(',');
        if (negate ? list.includes('NEW') : !list.includes('NEW')) canBeNew = false;
        if (negate) unknown = true;
        else states = list;
        i++;
        break;
      }
      case '--syn':
        if (negate) canBeNew = false;
        else unknown = true;
        break;
      case '--match-set':
        if (negate || args[i + 2] !== 'src') unknown = true;
        else srcSets.push(val);
        i += 2;
        break;
      default:
        unknown = true;
        if (args[i + 1] !== undefined && !args[i + 1].startsWith('-') && args[i + 1] !== '!') i++;
    }
  }
  return { proto, dports, sources, dests, srcSets, inIface, icmpType, states, unknown, canBeNew };
}

/** Is every packet the foreign path accepts accepted by one of fwgen's paths? Port lists are split. */
function covered(p: Constraints, fwgen: readonly Constraints[], sets: ReadonlyMap<string, readonly string[]>): boolean {
  const parts = p.dports && p.dports.length <= 64 ? p.dports.map((r) => ({ ...p, dports: [r] })) : [p];
  return parts.every((part) => fwgen.some((f) => covers(f, part, sets)));
}

function covers(f: Constraints, p: Constraints, sets: ReadonlyMap<string, readonly string[]>): boolean {
  if (f.unknown || f.dests.length > 0) return false;
  if (f.proto !== undefined && f.proto !== 'all' && f.proto !== p.proto) return false;
  if (f.dports && !p.dports?.every((r) => f.dports!.some((q) => q[0] <= r[0] && r[1] <= q[1]))) return false;
  if (f.icmpType !== undefined && f.icmpType !== p.icmpType) return false;
  if (f.inIface !== undefined && !ifaceCovers(f.inIface, p.inIface)) return false;
  if (f.states !== undefined && !p.states?.every((s) => f.states!.includes(s))) return false;
  if (!f.sources.every((c) => p.sources.some((s) => cidrContains(c, s)))) return false;
  return f.srcSets.every((name) => {
    const members = sets.get(name);
    return members !== undefined && p.sources.some((s) => members.some((m) => cidrContains(m, s)));
  });
}

function ifaceCovers(f: string, p: string | undefined): boolean {
  if (p === undefined) return false;
  return f.endsWith('+') ? p.replace(/\+$/, '').startsWith(f.slice(0, -1)) : f === p;
}

function normalProto(p: string): string {
  return (
    (
      { '6': 'tcp', '17': 'udp', '1': 'icmp', '58': 'ipv6-icmp', icmpv6: 'ipv6-icmp', '0': 'all' } as Record<
        string,
        string
      >
    )[p] ?? p
  );
}

function portRange(s: string): readonly [number, number] {
  const [a, b] = s.split(':');
  const lo = a === '' ? 0 : Number(a);
  const hi = b === undefined ? lo : b === '' ? 65535 : Number(b);
  return Number.isInteger(lo) && Number.isInteger(hi) ? [lo, hi] : [0, 65535];
}

/** Is network `inner` inside network `outer` (CIDRs or single addresses)? */
function cidrContains(outer: string, inner: string): boolean {
  try {
    const [oAddr, oLen] = parseCidr(outer);
    const [iAddr, iLen] = parseCidr(inner);
    return oAddr.kind() === iAddr.kind() && iLen >= oLen && iAddr.match(oAddr, oLen);
  } catch {
    return false;
  }
}

function parseCidr(s: string): [Ipaddr.IPv4 | Ipaddr.IPv6, number] {
  if (s.includes('/')) return ipaddr.parseCIDR(s);
  const a = ipaddr.parse(s);
  return [a, a.kind() === 'ipv4' ? 32 : 128];
}
