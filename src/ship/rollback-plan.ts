import { completedEntries, type AuditEntry } from '../audit/audit-log.js';
import { UsageError, WorkFailedError } from '../errors.js';
import type { Host, Inventory } from '../inventory/model.js';
import { preserveMatcher } from '../model/ownership.js';
import { BACKUP_TS } from '../remote/backups.js';
import { remotePaths } from '../remote/scripts.js';
import type { RollbackJob } from './jobs.js';

/** Checks a `--to` value: a backup timestamp as `fwgen backups` lists it. */
export function checkBackupId(to: string, what = `--to ${to}`): string {
  if (!BACKUP_TS.test(to))
    throw new UsageError(
      `${what} is not a backup timestamp (expected e.g. 20261121T183000Z, as \`fwgen backups\` lists)`,
    );
  return to;
}

/** One rollback job per host, each to the backup `backupFor` names. */
export function rollbackJobs(inv: Inventory, hosts: readonly Host[], backupFor: (h: Host) => string): RollbackJob[] {
  const paths = remotePaths(inv);
  const preserve = preserveMatcher(inv.preserve);
  return hosts.map((host) => ({ kind: 'rollback', host, paths, preserve, ipv6: inv.hasIpv6, to: backupFor(host) }));
}

/** `rollback --wave last`: the last ship recorded, and the backup it made on each host it changed. */
export interface LastShip {
  readonly run: string;
  readonly backups: ReadonlyMap<string, string>;
}

/**
 * Pure: from the audit log, the hosts the last ship changed (including those that failed the check
 * after their stage: they took the rules) and the backup each got. The log is a file anyone with
 * write access to it could edit: a backup id that is not a timestamp is refused, never sent to a host.
 */
export function lastShipBackups(entries: readonly AuditEntry[], logPath: string): LastShip {
  const last = completedEntries(entries)
    .filter((e) => e.action === 'ship')
    .pop();
  if (!last) throw new WorkFailedError(`no ship recorded in ${logPath}`);
  const applied = last.hosts.filter((h) => h.backup && h.outcome !== 'rolled-back');
  if (applied.length === 0)
    throw new WorkFailedError(`the last ship (run ${last.run}) applied no host; nothing to roll back`);
  for (const h of applied)
    checkBackupId(h.backup!, `${logPath}: run ${last.run}: the backup of host ${JSON.stringify(h.host)}`);
  return { run: last.run, backups: new Map(applied.map((h) => [h.host, h.backup!])) };
}
