import { formatState } from '../remote/state-file.js';
import { backupOf } from './jobs.js';
import type { RunSettings } from './ship-host.js';

/** A run's id: its UTC start to the second and 6 random hex digits (`20261121T183000Z-a1b2c3`). */
export function newRunId(start: Date, random: string): string {
  return `${start.toISOString().replace(/[-:.]/g, '').slice(0, 15)}Z-${random}`;
}

/** The numbers and switches of a run, as the command line gave them. */
export type RunSwitches = Omit<RunSettings, 'owner' | 'stateJson'>;

/** Who runs it and from what: the lock's owner line and every host's state file name them. */
export interface RunOrigin {
  readonly who: string;
  readonly inventory: string;
  readonly commit: string | null;
  readonly version: string;
  readonly pid: number;
  readonly start: Date;
}

/** The settings every host of a run shares, with the state file each host gets on commit. */
export function runSettings(sw: RunSwitches, o: RunOrigin): RunSettings {
  return {
    ...sw,
    owner: `${o.who} run ${sw.id} pid ${o.pid} since ${o.start.toISOString()}`,
    stateJson: (job, backup) =>
      formatState({
        fwgen: o.version,
        run: sw.id,
        role: job.host.role,
        host: job.host.name,
        inventory: o.inventory,
        commit: o.commit,
        shippedAt: new Date().toISOString(),
        shippedBy: o.who,
        backup: backup ?? null,
        restoredFrom: backupOf(job) ?? null,
      }),
  };
}
