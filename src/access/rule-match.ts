import { parseCidr, type Addr, type AddrSet } from './addresses.js';
import { contains, fromRanges } from './intervals.js';

/** An inclusive port range; a known port is a range of one. */
export type PortRange = readonly [number, number];

/** One end of a packet: `address` undefined is the host's own address (not known, not loopback). */
export interface Endpoint {
  readonly address?: string;
  readonly port: PortRange;
}

/**
 * The interface a packet crosses, as far as it is known: a name, or "none of these names" (an
 * interface no rule names). Unknown when absent: then only `lo` is known not to be it.
 */
export type IfaceClass = { readonly name: string } | { readonly except: readonly string[] };

/** A packet as one chain sees it. The lockout check's packets are these, without proto and interface. */
export interface Packet {
  readonly state: 'NEW' | 'ESTABLISHED';
  /** conntrack's direction: the client's packets are ORIGINAL, the server's REPLY. */
  readonly dir: 'ORIGINAL' | 'REPLY';
  readonly src: Endpoint;
  readonly dst: Endpoint;
  /** Which interface option means the network side: `-i` for packets coming in, `-o` for going out. */
  readonly iface: '-i' | '-o';
  /** The rendered members of each set, for `-m set --match-set NAME src|dst`. */
  readonly sets?: ReadonlyMap<string, readonly string[]>;
  /** Default tcp. */
  readonly proto?: 'tcp' | 'udp';
  /** Default unknown. */
  readonly ifaceClass?: IfaceClass;
}

export type Match = 'yes' | 'no' | 'unknown';

/** Whether a rule's matches take a packet, and its target with the target's own options. */
export interface Matched {
  readonly match: Match;
  readonly target: string;
  readonly goto: boolean;
}

/** One condition of a rule, `neg` when written after `!`. */
export type Condition =
  | { readonly kind: 'addr'; readonly side: 'src' | 'dst'; readonly cidr: string; readonly neg: boolean }
  | { readonly kind: 'iface'; readonly opt: '-i' | '-o'; readonly name: string; readonly neg: boolean }
  | { readonly kind: 'proto'; readonly value: string; readonly neg: boolean }
  | {
      readonly kind: 'ports';
      readonly side: 'src' | 'dst' | 'either';
      readonly specs: readonly string[];
      readonly neg: boolean;
    }
  | { readonly kind: 'state'; readonly values: readonly string[]; readonly neg: boolean }
  | { readonly kind: 'ctdir'; readonly value: string; readonly neg: boolean }
  | { readonly kind: 'set'; readonly name: string; readonly side?: 'src' | 'dst'; readonly neg: boolean }
  /** An option this does not understand (includes -m limit: it takes some packets of a flow, not others). */
  | { readonly kind: 'unknown'; readonly option: string; readonly module?: string };

/** A rule's conditions (all must hold) and target. */
export interface RuleMatch {
  readonly conditions: readonly Condition[];
  readonly target: string;
  readonly goto: boolean;
}

const PORT_SIDE: Readonly<Record<string, 'src' | 'dst'>> = {
  '--dport': 'dst',
  '--destination-port': 'dst',
  '--dports': 'dst',
  '--destination-ports': 'dst',
  '--sport': 'src',
  '--source-port': 'src',
  '--sports': 'src',
  '--source-ports': 'src',
};

const takesValue = (next: string | undefined): boolean => next !== undefined && !next.startsWith('-') && next !== '!';

/** Reads a rule's words (after `-A CHAIN`) into conditions and a target; the one reader of rule matches. */
export function parseRuleMatch(args: readonly string[]): RuleMatch {
  const conditions: Condition[] = [];
  let target = '';
  let goto = false;
  let inTarget = false;
  let module: string | undefined;
  for (let i = 0; i < args.length; i++) {
    // The target's own options (--reject-with, --to-ports, --notrack) follow it, up to the next short option.
    if (inTarget && args[i]!.startsWith('--')) {
      if (takesValue(args[i + 1])) i++;
      continue;
    }
    inTarget = false;
    const neg = args[i] === '!';
    if (neg) i++;
    const opt = args[i]!;
    const val = args[i + 1] ?? '';
    switch (opt) {
      case '-j':
      case '-g':
        target = val;
        goto = opt === '-g';
        inTarget = true;
        i++;
        break;
      case '-s':
      case '-d':
        conditions.push({ kind: 'addr', side: opt === '-s' ? 'src' : 'dst', cidr: val, neg });
        i++;
        break;
      case '-i':
      case '-o':
        conditions.push({ kind: 'iface', opt, name: val, neg });
        i++;
        break;
      case '-p':
        conditions.push({ kind: 'proto', value: val, neg });
        i++;
        break;
      case '-m':
        module = val;
        i++;
        break;
      case '--comment':
        i++;
        break;
      case '--dport':
      case '--destination-port':
      case '--sport':
      case '--source-port':
        conditions.push({ kind: 'ports', side: PORT_SIDE[opt]!, specs: [val], neg });
        i++;
        break;
      case '--dports':
      case '--destination-ports':
      case '--sports':
      case '--source-ports':
        conditions.push({ kind: 'ports', side: PORT_SIDE[opt]!, specs: val.split(','), neg });
        i++;
        break;
      case '--ports':
        conditions.push({ kind: 'ports', side: 'either', specs: val.split(','), neg });
        i++;
        break;
      case '--ctstate':
      case '--state':
        conditions.push({ kind: 'state', values: val.split(','), neg });
        i++;
        break;
      case '--ctdir':
        conditions.push({ kind: 'ctdir', value: val, neg });
        i++;
        break;
      case '--match-set': {
        const flag = args[i + 2];
        const side = flag === 'src' || flag === 'dst' ? flag : undefined;
        conditions.push({ kind: 'set', name: val, ...(side ? { side } : {}), neg });
        i += 2;
        break;
      }
      default:
        conditions.push({ kind: 'unknown', option: opt, ...(module ? { module } : {}) });
        if (takesValue(args[i + 1])) i++;
    }
  }
  return { conditions, target, goto };
}

/** `no` wins over `unknown`, which wins over `yes`. */
export function worse(a: Match, b: Match): Match {
  return a === 'no' || b === 'no' ? 'no' : a === 'unknown' || b === 'unknown' ? 'unknown' : 'yes';
}

/** Negates a match when `neg` (unknown stays unknown). */
export function flip(m: Match, neg: boolean): Match {
  return !neg || m === 'unknown' ? m : m === 'yes' ? 'no' : 'yes';
}

/**
 * Evaluates a rule's matches against a packet. Only what is certain counts: an option this does not
 * understand makes the match `unknown` (an ACCEPT then does not count, a DROP is assumed to hit).
 */
export function matchRule(args: readonly string[], p: Packet): Matched {
  const { conditions, target, goto } = parseRuleMatch(args);
  let match: Match = 'yes';
  for (const c of conditions) match = worse(match, matchCondition(c, p));
  return { match, target, goto };
}

/** One condition against a packet. */
export function matchCondition(c: Condition, p: Packet): Match {
  switch (c.kind) {
    case 'addr':
      return flip(addressIn(c.cidr, c.side === 'src' ? p.src : p.dst), c.neg);
    case 'iface':
      return ifaceMatch(c, p);
    case 'proto':
      return flip(protoMatches(c.value, p.proto ?? 'tcp'), c.neg);
    case 'ports': {
      const src = () => portsIn(c.specs, p.src.port);
      const dst = () => portsIn(c.specs, p.dst.port);
      return flip(c.side === 'src' ? src() : c.side === 'dst' ? dst() : either(src(), dst()), c.neg);
    }
    case 'state':
      return flip(c.values.includes(p.state) ? 'yes' : 'no', c.neg);
    case 'ctdir':
      return flip(c.value === p.dir ? 'yes' : 'no', c.neg);
    case 'set': {
      // Only a set whose members were rendered, matched against a known address, is understood.
      const members = p.sets?.get(c.name);
      const end = c.side === 'src' ? p.src : c.side === 'dst' ? p.dst : undefined;
      if (members === undefined || end === undefined) return 'unknown';
      return flip(inMembers(members, end), c.neg);
    }
    case 'unknown':
      return 'unknown';
  }
}

const PROTO_NAMES: Readonly<Record<'tcp' | 'udp', readonly string[]>> = {
  tcp: ['tcp', '6', 'all', '0'],
  udp: ['udp', '17', 'all', '0'],
};

/** Whether `-p VALUE` takes a packet of this protocol. */
export function protoMatches(value: string, proto: 'tcp' | 'udp'): Match {
  return PROTO_NAMES[proto].includes(value) ? 'yes' : 'no';
}

function ifaceMatch(c: Extract<Condition, { kind: 'iface' }>, p: Packet): Match {
  const cls = p.ifaceClass;
  // The other option (-o on a packet coming in) names an interface this packet is not judged on.
  if (c.opt !== p.iface) return 'unknown';
  if (!cls) return c.name === 'lo' && !c.neg ? 'no' : 'unknown';
  return flip(ifaceIn(c.name, cls), c.neg);
}

/** Whether an interface of the class is `name` (`eth+` names every interface starting with `eth`). */
export function ifaceIn(name: string, cls: IfaceClass): Match {
  const wildcard = name.endsWith('+');
  const prefix = name.slice(0, -1);
  if ('name' in cls) return (wildcard ? cls.name.startsWith(prefix) : cls.name === name) ? 'yes' : 'no';
  // A packet from another host never arrives on lo; any other name not excluded may be the interface.
  if (name === 'lo' || cls.except.includes(name)) return 'no';
  return wildcard ? 'unknown' : 'no';
}

function either(a: Match, b: Match): Match {
  if (a === 'yes' || b === 'yes') return 'yes';
  return a === 'no' && b === 'no' ? 'no' : 'unknown';
}

const LOOPBACK = /^(127\.|::1(\/|$))/;

/** Whether an endpoint's address is in a CIDR: for the host's own address, only loopback is known (never). */
export function addressIn(cidr: string, end: Endpoint): Match {
  if (end.address === undefined) return LOOPBACK.test(cidr) ? 'no' : 'unknown';
  const net = parseCidr(cidr);
  const addr = parseCidr(end.address);
  if (!net || !addr || end.address.includes('/')) return 'unknown';
  return addr.family === net.family && net.lo <= addr.lo && addr.lo < net.hi ? 'yes' : 'no';
}

const memberSets = new WeakMap<readonly string[], MemberSets>();

/** A set's members as address sets, and how many members are not networks at all. */
export interface MemberSets {
  readonly v4: AddrSet;
  readonly v6: AddrSet;
  readonly unreadable: number;
}

/** A set's members as address sets, built once per members list (rendered sets are sorted: no sort then). */
export function membersAsSets(members: readonly string[]): MemberSets {
  let s = memberSets.get(members);
  if (!s) {
    const v4: Addr[] = [];
    const v6: Addr[] = [];
    let unreadable = 0;
    for (const m of members) {
      const r = parseCidr(m);
      if (!r) unreadable++;
      else (r.family === 'ipv4' ? v4 : v6).push(r.lo, r.hi);
    }
    s = { v4: setOfFlat(v4), v6: setOfFlat(v6), unreadable };
    memberSets.set(members, s);
  }
  return s;
}

/** Flat ranges as a set: merged in one pass when sorted, else sorted first. */
function setOfFlat(flat: Addr[]): AddrSet {
  for (let i = 2; i < flat.length; i += 2) {
    if (flat[i]! < flat[i - 2]!) {
      const pairs: [Addr, Addr][] = [];
      for (let k = 0; k < flat.length; k += 2) pairs.push([flat[k]!, flat[k + 1]!]);
      return fromRanges(pairs);
    }
  }
  const out: Addr[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const n = out.length;
    if (n > 0 && flat[i]! <= out[n - 1]!) {
      if (flat[i + 1]! > out[n - 1]!) out[n - 1] = flat[i + 1]!;
    } else out.push(flat[i]!, flat[i + 1]!);
  }
  return out;
}

/** `yes` if some member holds the address, else `unknown` if a member cannot be read, else `no`. */
function inMembers(members: readonly string[], end: Endpoint): Match {
  if (end.address === undefined) return members.every((m) => LOOPBACK.test(m)) ? 'no' : 'unknown';
  const a = parseCidr(end.address);
  if (!a || end.address.includes('/')) return 'unknown';
  const sets = membersAsSets(members);
  if (contains(a.family === 'ipv4' ? sets.v4 : sets.v6, a.lo)) return 'yes';
  return sets.unreadable > 0 ? 'unknown' : 'no';
}

/** Whether a port list (`22`, `1000:2000`, multiport's `22,80:90`) holds every port of a range, none, or some. */
export function portsIn(specs: readonly string[], [lo, hi]: PortRange): Match {
  let covered = false;
  let touched = false;
  for (const spec of specs) {
    // `N:` and `:N` are open ranges; a service name (`ssh`) is not resolved here.
    const [a, b = a] = spec.split(':') as [string, string?];
    if (!/^\d*$/.test(a) || !/^\d*$/.test(b)) return 'unknown';
    const from = a === '' ? 0 : Number(a);
    const to = b === '' ? 65535 : Number(b);
    if (from <= lo && to >= hi) covered = true;
    if (from <= hi && to >= lo) touched = true;
  }
  return covered ? 'yes' : touched ? 'unknown' : 'no';
}

/** A port list as inclusive ranges, or undefined when a spec is not numeric. */
export function portRanges(specs: readonly string[]): PortRange[] | undefined {
  const out: PortRange[] = [];
  for (const spec of specs) {
    const [a, b = a] = spec.split(':') as [string, string?];
    if (!/^\d*$/.test(a) || !/^\d*$/.test(b)) return undefined;
    out.push([a === '' ? 0 : Number(a), b === '' ? 65535 : Number(b)]);
  }
  return out;
}
