import { parseStatus, step, type RemoteCall, type RemotePaths } from './scripts.js';

/** After a failed confirmation: has the dead-man switch fired? */
export function verifyCall(paths: RemotePaths, id: string): RemoteCall {
  return step('verify', 'verify.sh', [paths.rules, id]);
}

/** What became of a run's switch: fired and restored, fired and failed, still waiting, or gone (committed). */
export type SwitchState = 'rolled-back' | 'rollback-failed' | 'still-armed' | 'committed-or-gone' | 'unknown';

const STATES: readonly SwitchState[] = ['rolled-back', 'rollback-failed', 'still-armed', 'committed-or-gone'];

/** Parses remote/verify.sh's `status=` line; anything else is `unknown`. */
export function parseVerify(stdout: string): SwitchState {
  const s = parseStatus(stdout).status as SwitchState;
  return STATES.includes(s) ? s : 'unknown';
}
