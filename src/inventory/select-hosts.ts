import { UsageError } from '../errors.js';
import type { Host, Inventory } from './model.js';

/** The hosts a command acts on: selected roles, narrowed to named hosts if any. */
export function selectHosts(
  inv: Inventory,
  roles: ReadonlySet<string> | undefined,
  hostNames: readonly string[],
): Host[] {
  const known = new Map(inv.hosts.map((h) => [h.name, h]));
  const unknown = hostNames.filter((n) => !known.has(n));
  if (unknown.length > 0)
    throw new UsageError(`unknown host ${unknown.map((u) => `"${u}"`).join(', ')} (expected hosts of the inventory)`);
  const outside = hostNames.filter((n) => roles && !roles.has(known.get(n)!.role));
  if (outside.length > 0) throw new UsageError(`host ${outside.join(', ')} is not in the selected role(s)`);
  const picked =
    hostNames.length > 0 ? hostNames.map((n) => known.get(n)!) : inv.hosts.filter((h) => !roles || roles.has(h.role));
  if (picked.length === 0) throw new UsageError('no hosts selected');
  return picked;
}
