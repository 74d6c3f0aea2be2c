import { completedEntries, type AuditEntry } from '../audit/audit-log.js';
import type { HostStatus } from './host-status.js';

/**
 * Pure: hosts the deploy log shows fwgen put its rules on (a ship or rollback that applied, or found them
 * in place) that are not in `inventoryHosts` any more, unless a later `fwgen remove` took fwgen off them.
 * They keep their last rules until someone removes them. In the order they were last shipped.
 */
export function orphanedHosts(entries: readonly AuditEntry[], inventoryHosts: ReadonlySet<string>): HostStatus[] {
  const last = new Map<string, { entry: AuditEntry; role: string } | undefined>();
  for (const e of completedEntries(entries)) {
    if (e.action !== 'ship' && e.action !== 'rollback' && e.action !== 'remove') continue;
    for (const h of e.hosts) {
      // `remove --forget` took a host off the list without contacting it.
      const done =
        h.outcome === 'applied' || h.outcome === 'unchanged' || (e.action === 'remove' && h.outcome === 'forgotten');
      if (inventoryHosts.has(h.host) || !done) continue;
      last.delete(h.host);
      if (e.action !== 'remove') last.set(h.host, { entry: e, role: h.role });
    }
  }
  return [...last].flatMap(([host, seen]) => (seen ? [orphan(host, seen.role, seen.entry)] : []));
}

function orphan(host: string, role: string, e: AuditEntry): HostStatus {
  return {
    host,
    role,
    state: 'orphaned',
    backups: null,
    armed: null,
    foreign: [],
    foreignRules: [],
    drift: [],
    reason: `not in the inventory any more; fwgen's rules stay on it until removed (last ${e.action} ${e.run} at ${e.time}): see "Removing fwgen from a host" in the README`,
    lastShip: { run: e.run, time: e.time, who: e.who, commit: e.commit },
  };
}
