import { completedEntries, type AuditEntry } from '../audit/audit-log.js';
import type { Host } from '../inventory/model.js';

/**
 * What the deploy log says each host last received: the digest of the files a ship put in place
 * (plan.ts `shipDigest`), or null when a rollback (or a log from before digests) put something else there.
 * A host the log never saw get rules is absent.
 */
export function lastReceived(entries: readonly AuditEntry[]): Map<string, string | null> {
  const last = new Map<string, string | null>();
  for (const e of completedEntries(entries)) {
    if (e.action !== 'ship' && e.action !== 'rollback' && e.action !== 'remove') continue;
    for (const h of e.hosts) {
      // A host rolled back, or failed, runs what it ran before: its last record stands.
      if (h.outcome !== 'applied' && h.outcome !== 'unchanged') continue;
      // A rollback puts other rules in place, a remove none of fwgen's: neither is what rendered/ holds.
      last.set(h.host, e.action === 'ship' ? (h.rules ?? null) : null);
    }
  }
  return last;
}

/** A role some of whose hosts do not run what rendered/ holds for it now, per the deploy log. */
export interface RoleBehind {
  readonly role: string;
  /** Hosts whose last received rules differ from the role's rendered ones (or are unknown after a rollback). */
  readonly hosts: readonly string[];
  /** Hosts the deploy log never saw get rules (never shipped from this machine's log). */
  readonly unknown: readonly string[];
  /** Every host of the role is behind (so `--role ROLE` ships exactly them). */
  readonly whole: boolean;
}

/**
 * Pure: the roles whose rendered rules (`digests`, per role) differ from what their hosts last received
 * (`last`, from {@link lastReceived}), in inventory order.
 */
export function rolesBehind(
  hosts: readonly Host[],
  digests: ReadonlyMap<string, string>,
  last: ReadonlyMap<string, string | null>,
): RoleBehind[] {
  const roles = [...new Set(hosts.map((h) => h.role))];
  return roles.flatMap((role) => {
    const mine = hosts.filter((h) => h.role === role);
    const want = digests.get(role);
    const behind = mine.filter((h) => last.has(h.name) && last.get(h.name) !== want).map((h) => h.name);
    const unknown = mine.filter((h) => !last.has(h.name)).map((h) => h.name);
    if (behind.length === 0 && unknown.length === 0) return [];
    return [{ role, hosts: behind, unknown, whole: behind.length + unknown.length === mine.length }];
  });
}

/** Pure: the exact command that ships the hosts left behind: whole roles by name, else the hosts. */
export function shipCommandFor(behind: readonly RoleBehind[]): string | undefined {
  const changed = behind.filter((b) => b.hosts.length > 0);
  if (changed.length === 0) return undefined;
  if (changed.every((b) => b.whole && b.unknown.length === 0))
    return `fwgen ship --role ${changed.map((b) => b.role).join(',')}`;
  return `fwgen ship --host ${changed.flatMap((b) => b.hosts).join(' ')}`;
}
