import type Ipaddr from 'ipaddr.js';
import {
  baseChains,
  describeChain,
  describeRule,
  type BaseChain,
  type NftExpr,
  type NftRule,
  type NftTable,
} from '../model/nft.js';
import { requireCjs } from '../util/require-cjs.js';
import { CLIENT_PORTS, type PortRange } from './lockout-match.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/**
 * A packet through the host's native nftables base chains. `src`/`dst` undefined is the host's own
 * address (not known here). Every base chain on a hook the packet crosses sees it, whatever the others
 * (and iptables' chains) decided: in nftables an accept ends one base chain, a drop ends the packet.
 */
export interface NftPacket {
  readonly family: 'ipv4' | 'ipv6';
  readonly proto: 'tcp' | 'udp';
  readonly src?: string;
  readonly dst?: string;
  readonly sport: PortRange;
  readonly dport: PortRange;
  readonly state: 'new' | 'established';
  /** The hooks it crosses, in order: ingress, prerouting, input for a packet to the host. */
  readonly hooks: readonly string[];
  readonly label: string;
}

/** Where native nftables stop a packet (certainly, or may: a match not understood is assumed to hit). */
export interface NftStop {
  readonly chain: string;
  readonly rule: string;
  readonly certain: boolean;
  readonly packets: string;
}

type M = 'yes' | 'no' | 'maybe';
type Out =
  { kind: 'accept' } | { kind: 'fall' } | { kind: 'return' } | { kind: 'stop'; rule: string; certain: boolean };

/** The first base chain that drops (or may drop) the packet; undefined when every one lets it through. */
export function judgeNative(tables: readonly NftTable[], p: NftPacket): NftStop | undefined {
  for (const hook of p.hooks) {
    for (const b of baseChains(tables)) {
      if (b.chain.hook !== hook || !sees(b, p)) continue;
      const out = walk(b, b.chain.rules, p, 0, true);
      if (out.kind === 'stop')
        return { chain: describeChain(b), rule: out.rule, certain: out.certain, packets: p.label };
      if (out.kind !== 'accept' && b.chain.policy === 'drop')
        return { chain: describeChain(b), rule: 'policy drop', certain: true, packets: p.label };
    }
  }
  return undefined;
}

/** The packets of an SSH connection from `source` to port `dport`, as native chains see them. */
export function sshPackets(source: string, dport: number): NftPacket[] {
  const family = ipaddr.process(source).kind() === 'ipv6' ? 'ipv6' : 'ipv4';
  const request = { family, proto: 'tcp', src: source, sport: CLIENT_PORTS, dport: [dport, dport] } as const;
  return [
    { ...request, state: 'new', hooks: ['ingress', 'prerouting', 'input'], label: 'new connection' },
    { ...request, state: 'established', hooks: ['ingress', 'prerouting', 'input'], label: 'client packets' },
    {
      family,
      proto: 'tcp',
      dst: source,
      sport: [dport, dport],
      dport: CLIENT_PORTS,
      state: 'established',
      hooks: ['output', 'postrouting'],
      label: 'replies',
    },
  ];
}

function sees(b: BaseChain, p: NftPacket): boolean {
  const f = b.table.family;
  return f === 'inet' || f === 'netdev' || (f === 'ip' && p.family === 'ipv4') || (f === 'ip6' && p.family === 'ipv6');
}

const STOPS = new Set(['drop', 'reject', 'queue']);
/** Statements that take the packet somewhere else: not known to leave SSH alone. */
const DIVERTS = new Set(['dnat', 'redirect', 'tproxy', 'snat', 'masquerade']);

function walk(b: BaseChain, rules: readonly NftRule[], p: NftPacket, depth: number, trusted: boolean): Out {
  if (depth > 16) return { kind: 'stop', rule: 'jump depth exceeded', certain: false };
  for (const rule of rules) {
    let m: M = 'yes';
    for (const e of rule.expr) {
      const [k, v] = Object.entries(e)[0] ?? ['', undefined];
      if (k === 'match') m = and(m, matchExpr(v as Record<string, unknown>, p, b.table.sets));
      else if (k === 'limit' || k === 'quota') m = and(m, 'maybe');
      if (m === 'no') break;
      const certain = m === 'yes' && trusted;
      if (STOPS.has(k) || (DIVERTS.has(k) && p.state === 'new'))
        return { kind: 'stop', rule: describeRule(rule), certain };
      if (k === 'accept') {
        if (certain) return { kind: 'accept' };
        break;
      }
      if (k === 'return') {
        if (certain) return { kind: 'return' };
        break;
      }
      if (k === 'jump' || k === 'goto') {
        const target = b.table.chains.find((c) => c.name === (v as { target?: string })?.target);
        const inner = target ? walk(b, target.rules, p, depth + 1, certain) : { kind: 'fall' as const };
        if (inner.kind === 'stop' || (inner.kind === 'accept' && certain)) return inner;
        if (k === 'goto' && certain) return { kind: 'fall' };
        break;
      }
    }
  }
  return { kind: 'fall' };
}

function and(a: M, b: M): M {
  return a === 'no' || b === 'no' ? 'no' : a === 'maybe' || b === 'maybe' ? 'maybe' : 'yes';
}

type Sets = ReadonlyMap<string, readonly unknown[]>;

function matchExpr(m: Record<string, unknown>, p: NftPacket, sets: Sets): M {
  // A named set (`@name`) stands for its elements; one the ruleset does not list may hold anything.
  const named = typeof m.right === 'string' && m.right.startsWith('@') ? sets.get(m.right.slice(1)) : undefined;
  if (typeof m.right === 'string' && m.right.startsWith('@') && !named) return 'maybe';
  const r = test(m.left as Record<string, Record<string, unknown>> | undefined, named ? [...named] : m.right, p);
  if (m.op === '!=') return r === 'yes' ? 'no' : r === 'no' ? 'yes' : 'maybe';
  return m.op === '==' || m.op === 'in' || m.op === undefined ? r : 'maybe';
}

function test(left: Record<string, Record<string, unknown>> | undefined, right: unknown, p: NftPacket): M {
  if (!left) return 'maybe';
  if (left.payload) {
    const { protocol, field } = left.payload as { protocol?: string; field?: string };
    if (protocol === 'tcp' || protocol === 'udp' || protocol === 'th') {
      if (protocol !== 'th' && protocol !== p.proto) return 'no';
      if (field === 'dport') return portIn(p.dport, right);
      if (field === 'sport') return portIn(p.sport, right);
      return 'maybe';
    }
    if (protocol === 'ip' || protocol === 'ip6') {
      if ((protocol === 'ip') !== (p.family === 'ipv4')) return 'no';
      if (field === 'saddr') return addrIn(p.src, right);
      if (field === 'daddr') return addrIn(p.dst, right);
      return 'maybe';
    }
    return 'maybe';
  }
  if (left.meta) {
    const key = left.meta.key;
    if (key === 'l4proto' || key === 'protocol')
      return valuesOf(right).some((v) => v === p.proto || v === (p.proto === 'tcp' ? 6 : 17)) ? 'yes' : 'no';
    if (key === 'nfproto') return valuesOf(right).includes(p.family) ? 'yes' : 'no';
    // SSH never comes over loopback; any other interface may be the one.
    if (key === 'iifname' || key === 'oifname' || key === 'iif' || key === 'oif')
      return valuesOf(right).every((v) => v === 'lo') ? 'no' : 'maybe';
    return 'maybe';
  }
  if (left.ct && left.ct.key === 'state') {
    const states = valuesOf(right);
    return states.includes(p.state) ? 'yes' : 'no';
  }
  return 'maybe';
}

/** The plain values of a match's right side: a value, a list, or an anonymous set of values. */
function valuesOf(right: unknown): unknown[] {
  if (Array.isArray(right)) return right.map(elemValue);
  if (typeof right === 'object' && right !== null && Array.isArray((right as { set?: unknown }).set))
    return (right as { set: unknown[] }).set.map(elemValue);
  return [right];
}

/** A set element as it is listed: the value, or `{"elem": {"val": V, "timeout": ...}}` in a set with timeouts. */
function elemValue(v: unknown): unknown {
  const e = typeof v === 'object' && v !== null && 'elem' in v ? (v as { elem: unknown }).elem : v;
  return typeof e === 'object' && e !== null && 'val' in e ? (e as { val: unknown }).val : e;
}

function portIn(range: PortRange, right: unknown): M {
  const parts = valuesOf(right).map((v): [number, number] | undefined => {
    if (typeof v === 'number') return [v, v];
    const r = (v as { range?: unknown[] })?.range;
    return Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number' ? [r[0], r[1]] : undefined;
  });
  if (parts.some((x) => x === undefined)) return 'maybe';
  const [lo, hi] = range;
  if (parts.some((x) => x![0] <= lo && hi <= x![1])) return 'yes';
  return parts.some((x) => x![0] <= hi && lo <= x![1]) ? 'maybe' : 'no';
}

function addrIn(addr: string | undefined, right: unknown): M {
  if (addr === undefined) return 'maybe';
  let a: Ipaddr.IPv4 | Ipaddr.IPv6;
  try {
    a = ipaddr.process(addr);
  } catch {
    return 'maybe';
  }
  for (const v of valuesOf(right)) {
    const net = netOf(v);
    if (!net) return 'maybe';
    if (net[0].kind() === a.kind() && (a as Ipaddr.IPv4).match(net as [Ipaddr.IPv4, number])) return 'yes';
  }
  return 'no';
}

function netOf(v: unknown): [Ipaddr.IPv4 | Ipaddr.IPv6, number] | undefined {
  try {
    if (typeof v === 'string') {
      const a = ipaddr.process(v);
      return [a, a.kind() === 'ipv6' ? 128 : 32];
    }
    const prefix = (v as { prefix?: { addr?: unknown; len?: unknown } })?.prefix;
    if (prefix && typeof prefix.addr === 'string' && typeof prefix.len === 'number')
      return [ipaddr.process(prefix.addr), prefix.len];
  } catch {
    return undefined;
  }
  return undefined;
}

/** Counts a base chain's rules that drop or reject: what doctor lists. */
export function dropRules(rules: readonly NftRule[]): number {
  return rules.filter((r) => r.expr.some((e: NftExpr) => 'drop' in e || 'reject' in e)).length;
}
