import { mergeCidr } from 'cidr-tools';
import { ipv4Net, parseNet } from '../inventory/addresses.js';
import type { Net } from '../inventory/model.js';

/** An address or network to aggregate, with what it stands for in rule comments. */
export interface Member {
  readonly net: Net;
  /** Text when it stays alone in its CIDR, e.g. `web/web1`, `web1` or `192.0.2.0/24`. */
  readonly via: string;
  /** What it belongs to when merged with others, e.g. the role `web`, the host `web1`, the CIDR. */
  readonly group: string;
  /** True for a host's address (counted as a host), false for a network written in the inventory. */
  readonly isHost: boolean;
}

/** One merged CIDR and the members it covers, in input order. */
export interface Aggregate {
  readonly net: Net;
  readonly members: readonly Member[];
}

/** Longest list of group names a label spells out before it says `and N more`; keeps comments under 256 bytes. */
const GROUP_TEXT_BUDGET = 100;

/** Merges networks of one family into the fewest CIDRs covering exactly the same addresses, sorted by address. */
export function aggregateNets(nets: readonly Net[]): Net[] {
  if (nets.length === 0) return [];
  // Most merged CIDRs are an input's own network: reuse its canonical Net rather than parse the text again.
  const known = new Map<string, Net>();
  const cidrs: string[] = new Array(nets.length);
  for (let i = 0; i < nets.length; i++) {
    known.set(nets[i]!.cidr, nets[i]!);
    cidrs[i] = nets[i]!.cidr;
  }
  const merged = mergeCidr(cidrs).map((cidr) => known.get(cidr) ?? canonicalNet(cidr));
  if (!isSorted(merged)) merged.sort(compareNets);
  return merged;
}

/** Merges the members' networks (one family) and says which members each resulting CIDR covers. */
export function aggregate(members: readonly Member[]): Aggregate[] {
  const merged = aggregateNets(members.map((m) => m.net));
  const owner = assignMembers(members, merged);
  const covered: Member[][] = merged.map(() => []);
  for (let i = 0; i < members.length; i++) covered[owner[i]!]!.push(members[i]!);
  return merged.map((net, k) => ({ net, members: covered[k]! }));
}

/**
 * The members merged as one list (what a set holds): its CIDRs, and what they stand for as a whole.
 * `distinct`: the caller knows no two members share an address (hosts of a validated inventory).
 */
export function mergeList(members: readonly Member[], distinct = false): { cidrs: string[]; via: string } {
  // cidr-tools returns CIDRs sorted by address; its IPv4 text is canonical already, its IPv6 text is made so.
  const merged = mergeCidr(members.map((m) => m.net.cidr));
  const cidrs = merged.map((cidr) => (cidr.includes(':') ? canonicalNet(cidr).cidr : cidr));
  return { cidrs, via: members.length === 0 ? '' : describeAggregate(members, distinct) };
}

/** Index of the merged CIDR that holds each member. */
function assignMembers(members: readonly Member[], merged: readonly Net[]): Int32Array {
  const exact = new Map<string, number>();
  for (let k = 0; k < merged.length; k++) exact.set(merged[k]!.cidr, k);
  const owner = new Int32Array(members.length);
  const rest: number[] = [];
  for (let i = 0; i < members.length; i++) {
    const k = exact.get(members[i]!.net.cidr);
    if (k === undefined) rest.push(i);
    else owner[i] = k;
  }
  // The others were merged or nested: merged CIDRs are disjoint, sorted and cover every member, so a member
  // belongs to the last CIDR whose key is at or before its own (keys: family, fixed-width hex, prefix).
  const key = (i: number): string => members[i]!.net.key;
  rest.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  let at = 0;
  for (const i of rest) {
    while (at + 1 < merged.length && merged[at + 1]!.key <= key(i)) at++;
    owner[i] = at;
  }
  return owner;
}

/**
 * Comment text for an aggregate: the member's own text when it is alone (`web/web1`), else a count and
 * the groups it came from, sorted (`12 hosts of db web`; `3 sources of 192.0.2.0/24 web` when networks
 * are among them). Distinct addresses are counted, so a host named twice counts once. Groups are
 * separated by spaces, not commas: names never hold a space, and comments keep to the characters
 * fwgen's rule grammar allows (letters, digits, ` ./:#_-`).
 */
export function describeAggregate(members: readonly Member[], knownDistinct = false): string {
  if (members.length === 1) return members[0]!.via;
  if (knownDistinct && members.every((m) => m.isHost)) {
    const groups = new Set<string>();
    for (const m of members) groups.add(m.group);
    return `${members.length} hosts of ${listGroups([...groups].sort())}`;
  }
  // Per distinct address, whether its last mention is a host's.
  const distinct = new Map<string, boolean>();
  const groups = new Set<string>();
  for (const m of members) {
    distinct.set(m.net.cidr, m.isHost);
    groups.add(m.group);
  }
  if (distinct.size === 1) return members[0]!.via;
  let allHosts = true;
  for (const isHost of distinct.values()) allHosts &&= isHost;
  return `${distinct.size} ${allHosts ? 'hosts' : 'sources'} of ${listGroups([...groups].sort())}`;
}

function listGroups(groups: readonly string[]): string {
  let shown = 1;
  while (shown < groups.length && groups.slice(0, shown + 1).join(' ').length <= GROUP_TEXT_BUDGET) shown++;
  const rest = groups.length - shown;
  return groups.slice(0, shown).join(' ') + (rest > 0 ? ` and ${rest} more` : '');
}

/** A CIDR cidr-tools returned; IPv4 ones are already canonical (dotted decimal, network address). */
function canonicalNet(cidr: string): Net {
  const slash = cidr.indexOf('/');
  if (!cidr.includes(':') && slash > 0) return ipv4Net(cidr.slice(0, slash), Number(cidr.slice(slash + 1)));
  const net = parseNet(cidr, { allowPrefix: true });
  if ('error' in net) throw new Error(`bug: cidr-tools returned ${cidr}: ${net.error}`);
  return net;
}

function isSorted(nets: readonly Net[]): boolean {
  for (let i = 1; i < nets.length; i++) if (nets[i - 1]!.key > nets[i]!.key) return false;
  return true;
}

function compareNets(a: Net, b: Net): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
