import type { AuditEntry } from '../audit/audit-log.js';
import type { Host, Inventory } from '../inventory/model.js';
import { preserveMatcher } from '../model/ownership.js';
import { remotePaths } from '../remote/scripts.js';
import type { ShipJob } from './jobs.js';

/**
 * What `fwgen remove` puts in place: no fwgen rules. Shipped like any rules file, it takes fwgen's chains
 * and hooks (and, having no sets, fwgen's ipsets) off the host in one transaction, with the same test,
 * backup, dead-man switch and confirmation; other tools' rules and every rule fwgen did not write stay.
 */
export const NO_FWGEN_RULES = Buffer.from(
  "# fwgen remove: fwgen's chains and hooks were taken off this host; nothing loads this file at boot.\n*filter\nCOMMIT\n",
  'utf8',
);

/** One job per host, each putting {@link NO_FWGEN_RULES} in place (both families when the inventory has IPv6). */
export function removeJobs(inv: Inventory, hosts: readonly Host[]): ShipJob[] {
  const paths = remotePaths(inv);
  const preserve = preserveMatcher(inv.preserve);
  return hosts.map((host) => ({
    kind: 'ship',
    host,
    paths,
    preserve,
    v4: NO_FWGEN_RULES,
    ...(inv.hasIpv6 ? { v6: NO_FWGEN_RULES } : {}),
  }));
}

/**
 * Pure: the deploy log's line for `remove --forget`: hosts no longer in the inventory (gone, or never to be
 * reached again) marked as removed without contacting them, so that `status` stops listing them as orphaned.
 */
export function forgetEntry(
  names: readonly string[],
  origin: Pick<AuditEntry, 'run' | 'who' | 'inventory' | 'commit'>,
  time: string,
): AuditEntry {
  return {
    time,
    action: 'remove',
    ...origin,
    hosts: names.map((host) => ({
      host,
      role: '-',
      outcome: 'forgotten',
      reason: 'marked removed without contacting it (fwgen remove --forget)',
    })),
  };
}
