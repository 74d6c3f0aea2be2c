import { mergeCidr } from 'cidr-tools';
import { parseNet } from '../inventory/addresses.js';
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
  return aggregate(nets.map((net) => ({ net, via: net.cidr, group: net.cidr, isHost: false }))).map((a) => a.net);
}

/** Merges the members' networks (one family) and says which members each resulting CIDR covers. */
export function aggregate(members: readonly Member[]): Aggregate[] {
  if (members.length === 0) return [];
  // Most merged CIDRs are a member's own network: reuse its canonical Net rather than parse the text again.
  const known = new Map(members.map((m) => [m.net.cidr, m.net]));
  const merged = mergeCidr(members.map((m) => m.net.cidr)).map((cidr) => known.get(cidr) ?? canonicalNet(cidr));
  if (!isSorted(merged)) merged.sort(compareNets);
  const starts = merged.map(startOf);
  const covered = merged.map((): { m: Member; i: number }[] => []);
  // Merged CIDRs are disjoint, sorted and cover every member, so a member belongs to the last CIDR starting
  // at or before it: one sweep over members sorted by start. Keys hold fixed-width hex, so strings compare.
  const sorted = members.map((m, i) => ({ m, i, start: startOf(m.net) }));
  sorted.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.i - b.i));
  let at = 0;
  for (const entry of sorted) {
    while (at + 1 < merged.length && starts[at + 1]! <= entry.start) at++;
    covered[at]!.push(entry);
  }
  return merged.map((net, k) => {
    const entries = covered[k]!;
    return { net, members: entries.length === 1 ? [entries[0]!.m] : entries.sort((a, b) => a.i - b.i).map((e) => e.m) };
  });
}

/**
 * Comment text for an aggregate: the member's own text when it is alone (`web/web1`), else a count and
 * the groups it came from, sorted (`12 hosts of db web`; `3 sources of 192.0.2.0/24 web` when networks
 * are among them). Distinct addresses are counted, so a host named twice counts once. Groups are
 * separated by spaces, not commas: names never hold a space, and comments keep to the characters
 * fwgen's rule grammar allows (letters, digits, ` ./:#_-`).
 */
export function describeAggregate(members: readonly Member[]): string {
  if (members.length === 1) return members[0]!.via;
  const distinct = new Map(members.map((m) => [m.net.cidr, m]));
  if (distinct.size === 1) return members[0]!.via;
  const noun = [...distinct.values()].every((m) => m.isHost) ? 'hosts' : 'sources';
  return `${distinct.size} ${noun} of ${listGroups([...new Set(members.map((m) => m.group))].sort())}`;
}

function listGroups(groups: readonly string[]): string {
  let shown = 1;
  while (shown < groups.length && groups.slice(0, shown + 1).join(' ').length <= GROUP_TEXT_BUDGET) shown++;
  const rest = groups.length - shown;
  return groups.slice(0, shown).join(' ') + (rest > 0 ? ` and ${rest} more` : '');
}

function canonicalNet(cidr: string): Net {
  const net = parseNet(cidr, { allowPrefix: true });
  if ('error' in net) throw new Error(`bug: cidr-tools returned ${cidr}: ${net.error}`);
  return net;
}

/** The start address part of a Net's sort key: family and fixed-width hex bytes, e.g. `4:c6336405`. */
function startOf(net: Net): string {
  return net.key.slice(0, net.key.indexOf('/'));
}

function isSorted(nets: readonly Net[]): boolean {
  for (let i = 1; i < nets.length; i++) if (nets[i - 1]!.key > nets[i]!.key) return false;
  return true;
}

function compareNets(a: Net, b: Net): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
