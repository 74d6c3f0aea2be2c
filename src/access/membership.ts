import type { Host, Inventory } from '../inventory/model.js';

/** How a host's place in the fleet changed between two inventories. */
export type MembershipChange =
  | { readonly change: 'joined'; readonly host: string; readonly role: string; readonly addresses: readonly string[] }
  | { readonly change: 'left'; readonly host: string; readonly role: string; readonly addresses: readonly string[] }
  | {
      readonly change: 'moved';
      readonly host: string;
      readonly role: string;
      readonly from: string;
      readonly addresses: readonly string[];
      readonly was?: readonly string[];
    }
  | {
      readonly change: 'readdressed';
      readonly host: string;
      readonly role: string;
      readonly addresses: readonly string[];
      readonly was: readonly string[];
    }
  | {
      readonly change: 'renamed';
      readonly host: string;
      readonly role: string;
      readonly from: string;
      readonly addresses: readonly string[];
    };

const addressesOf = (h: Host): string[] => h.addresses.map((a) => a.cidr.slice(0, a.cidr.lastIndexOf('/')));
const sameAddresses = (a: Host, b: Host): boolean => addressesOf(a).join(' ') === addressesOf(b).join(' ');

/**
 * Hosts added, removed, moved between roles, readdressed, or renamed (a host gone and one come with
 * the same role and addresses), sorted by host name. Roles themselves follow from their hosts.
 */
export function diffMembership(base: Inventory, head: Inventory): MembershipChange[] {
  const before = new Map(base.hosts.map((h) => [h.name, h]));
  const after = new Map(head.hosts.map((h) => [h.name, h]));
  const out: MembershipChange[] = [];
  const gone = base.hosts.filter((h) => !after.has(h.name));
  const come = head.hosts.filter((h) => !before.has(h.name));
  const renamedFrom = new Map<string, Host>();
  const goneByKey = new Map(gone.map((h) => [`${h.role} ${addressesOf(h).join(' ')}`, h]));
  for (const h of come) {
    const old = goneByKey.get(`${h.role} ${addressesOf(h).join(' ')}`);
    if (old && !renamedFrom.has(old.name) && h.addresses.length > 0) {
      renamedFrom.set(old.name, h);
      out.push({ change: 'renamed', host: h.name, role: h.role, from: old.name, addresses: addressesOf(h) });
    }
  }
  const renamedTo = new Set([...renamedFrom.values()].map((h) => h.name));
  for (const h of come) {
    if (!renamedTo.has(h.name)) out.push({ change: 'joined', host: h.name, role: h.role, addresses: addressesOf(h) });
  }
  for (const h of gone) {
    if (!renamedFrom.has(h.name)) out.push({ change: 'left', host: h.name, role: h.role, addresses: addressesOf(h) });
  }
  for (const h of head.hosts) {
    const old = before.get(h.name);
    if (!old) continue;
    if (old.role !== h.role) {
      const was = sameAddresses(old, h) ? {} : { was: addressesOf(old) };
      out.push({ change: 'moved', host: h.name, role: h.role, from: old.role, addresses: addressesOf(h), ...was });
    } else if (!sameAddresses(old, h)) {
      out.push({ change: 'readdressed', host: h.name, role: h.role, addresses: addressesOf(h), was: addressesOf(old) });
    }
  }
  return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}
