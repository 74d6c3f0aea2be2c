import type { Host } from '../inventory/model.js';
import type { PreserveFn } from '../model/ownership.js';
import type { RemotePaths } from '../remote/scripts.js';

interface JobBase {
  readonly host: Host;
  readonly paths: RemotePaths;
  /** Other tools' chains that fwgen keeps (the inventory's `preserve:`). */
  readonly preserve: PreserveFn;
}

/** Put the role's rendered files in place. */
export interface ShipJob extends JobBase {
  readonly kind: 'ship';
  readonly v4: Buffer;
  /** Present when the inventory has IPv6. */
  readonly v6?: Buffer;
  /** `sets: ipset`: the sets the role's rules match, in `ipset restore` format (final names). */
  readonly sets?: Buffer;
  /** A digest of what the host gets (the files and sets above): the deploy log records it per host. */
  readonly digest?: string;
}

/** Restore a backup the host keeps (`fwgen rollback`): the files come from the host, not from rendered/. */
export interface RollbackJob extends JobBase {
  readonly kind: 'rollback';
  /** The backup's timestamp, as `fwgen backups` lists it. */
  readonly to: string;
  /** IPv6 rules are managed (the inventory has IPv6). */
  readonly ipv6: boolean;
}

/** One host's work in a run. */
export type HostJob = ShipJob | RollbackJob;

/** The job manages IPv6 rules too. */
export function jobIpv6(job: HostJob): boolean {
  return job.kind === 'ship' ? job.v6 !== undefined : job.ipv6;
}

/** The backup a job restores, if it is a rollback. */
export function backupOf(job: HostJob): string | undefined {
  return job.kind === 'rollback' ? job.to : undefined;
}
