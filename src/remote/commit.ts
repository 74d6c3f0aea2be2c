import { EXIT, lastErrorLine, parseStatus, step, SWITCH_WAIT_S, type RemoteCall, type RemotePaths } from './scripts.js';
import type { ExecResult } from './transport.js';

/** Claims the switch, moves the new files into place, records state, unlocks. */
export function commitCall(
  paths: RemotePaths,
  id: string,
  ipv6: boolean,
  backup: string,
  stateJson: string,
): RemoteCall {
  // It may find the switch fired, and wait for its undo.
  return step('commit', 'commit.sh', [paths.rules, paths.rules6, id, ipv6 ? 1 : 0, backup, stateJson], SWITCH_WAIT_S);
}

/** What the commit step did, from its exit code and output. */
export type CommitOutput =
  /** Files in place, switch claimed, unlocked; `noState`: the state file could not be written. */
  | { readonly kind: 'committed'; readonly noState: boolean }
  /** The switch had fired before the commit claimed it; `restored`: the previous rules are back. */
  | { readonly kind: 'fired'; readonly restored: boolean }
  /** The rules file could not be replaced: the step undid the live change at once. */
  | { readonly kind: 'file-not-replaced'; readonly error?: string }
  /** The apply step never armed the switch (lost before it applied anything). */
  | { readonly kind: 'never-armed' }
  | { readonly kind: 'failed'; readonly code: number; readonly error?: string };

/** Parses the commit step's result. */
export function parseCommitOutput(r: ExecResult): CommitOutput {
  const status = parseStatus(r.stdout);
  if (r.code === 0) return { kind: 'committed', noState: status.warning === 'no-state' };
  if (r.code === EXIT.rolledBack) return { kind: 'fired', restored: status.status !== 'rollback-failed' };
  if (r.code === EXIT.fileNotReplaced) return { kind: 'file-not-replaced', error: lastErrorLine(r.stderr) };
  if (r.code === EXIT.neverArmed) return { kind: 'never-armed' };
  return { kind: 'failed', code: r.code, error: lastErrorLine(r.stderr) };
}
