import { createHash } from 'node:crypto';
import type { Family } from '../inventory/model.js';
import type { IpSet } from '../model/ruleset.js';
import { canonicalMember } from '../model/sets.js';
import type { AddressList } from '../resolve/policy.js';

/** The longest name the kernel keeps for a set (IPSET_MAXNAMELEN is 32 with the NUL). */
export const MAX_SET_NAME = 31;

const SUFFIX: Record<Family, string> = { ipv4: '4', ipv6: '6' };
const SET_FAMILY = { ipv4: 'inet', ipv6: 'inet6' } as const;
const DEFAULT_MAXELEM = 65536;
const HALVES: Record<string, string[]> = { '0.0.0.0/0': ['0.0.0.0/1', '128.0.0.0/1'], '::/0': ['::/1', '8000::/1'] };

/** What an address list is for, which names its set. */
export type ListKind =
  | { readonly kind: 'fleet' }
  | { readonly kind: 'management' }
  | { readonly kind: 'allow'; readonly role: string; readonly label: string };

/**
 * A set's name: `fwgen-fleet-4`, `fwgen-mgmt-6`, `fwgen-mon1-4` (monitoring#1, shared by every role),
 * `fwgen-<role>-a1-4` (the role's allow#1). A role name too long for 31 characters keeps a prefix and
 * gains `+` and 6 hex digits of its SHA-256: `+` cannot occur in a role name, so names stay distinct.
 * Names depend only on what the list is for, never on its members: they are stable across renders.
 */
export function setName(list: ListKind, family: Family): string {
  const f = SUFFIX[family];
  if (list.kind === 'fleet') return `fwgen-fleet-${f}`;
  if (list.kind === 'management') return `fwgen-mgmt-${f}`;
  const n = list.label.replace(/^\D*#/, '');
  if (list.label.startsWith('monitoring#')) return `fwgen-mon${n}-${f}`;
  const tail = `-a${n}-${f}`;
  const room = MAX_SET_NAME - 'fwgen-'.length - tail.length;
  if (list.role.length <= room) return `fwgen-${list.role}${tail}`;
  const hash = createHash('sha256').update(list.role).digest('hex').slice(0, 6);
  return `fwgen-${list.role.slice(0, room - 7)}+${hash}${tail}`;
}

const built = new WeakMap<AddressList, Map<string, IpSet>>();

/** The `hash:net` set of an address list, built once per list object (shared lists make shared sets). */
export function buildSet(name: string, list: AddressList, family: Family): IpSet {
  let byName = built.get(list);
  if (!byName) built.set(list, (byName = new Map()));
  let set = byName.get(name);
  if (!set) {
    // hash:net cannot hold a /0: its two halves cover the same addresses.
    const members: string[] = [];
    for (const c of list.cidrs) {
      const halves = HALVES[c];
      if (halves) members.push(...halves);
      else members.push(canonicalMember(c));
    }
    let maxelem = DEFAULT_MAXELEM;
    while (maxelem < members.length) maxelem *= 2;
    set = {
      name,
      type: 'hash:net',
      family: SET_FAMILY[family],
      options: ['hashsize', '1024', 'maxelem', String(maxelem)],
      members,
    };
    byName.set(name, set);
  }
  return set;
}
