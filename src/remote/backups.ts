import { step, type RemoteCall, type RemotePaths } from './scripts.js';
import type { Session } from './transport.js';

/** Lists backups, newest first, as `TS SIZE` lines. */
export function backupsCall(paths: RemotePaths): RemoteCall {
  return step('backups', 'backups.sh', [paths.rules]);
}

/** One backup a host keeps: its timestamp and the size of its IPv4 rules file (null: a live snapshot only). */
export interface BackupEntry {
  readonly ts: string;
  readonly size: number | null;
}

/** A backup's timestamp as remote/apply.sh names it (and as `--to` takes it). */
export const BACKUP_TS = /^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$/;

/**
 * Parses remote/backups.sh's `TS SIZE` lines (newest first; SIZE `-` for a backup of a host that had no
 * rules file). Host-supplied text: a line that is not a backup is dropped, never passed on.
 */
export function parseBackups(stdout: string): BackupEntry[] {
  return stdout.split('\n').flatMap((line): BackupEntry[] => {
    const [ts, size, ...rest] = line.trim().split(' ');
    if (!ts || rest.length > 0 || !BACKUP_TS.test(ts)) return [];
    if (size === '-') return [{ ts, size: null }];
    return /^[0-9]{1,15}$/.test(size ?? '') ? [{ ts, size: Number(size) }] : [];
  });
}

/** Lists a host's backups, newest first, over an open session. */
export async function listBackups(session: Session, paths: RemotePaths): Promise<BackupEntry[]> {
  return parseBackups((await session.run(backupsCall(paths))).stdout);
}
