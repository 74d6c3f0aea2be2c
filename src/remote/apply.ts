import {
  EXIT,
  lastErrorLine,
  parseKeyValues,
  parseStatus,
  remoteFile,
  sha256,
  step,
  SWITCH_WAIT_S,
  type RemoteCall,
  type RemotePaths,
} from './scripts.js';
import type { ExecResult } from './transport.js';

/** One part of the apply step's upload. */
export interface Part {
  readonly name: string;
  readonly bytes: Buffer;
}

/** Settings of the apply step. */
export interface ApplySettings {
  readonly id: string;
  readonly ipv6: boolean;
  readonly owner: string;
  readonly timeoutS: number;
  readonly keep: number;
  readonly breakLock: boolean;
  /** Fingerprints of fwgen's live rules as the read step saw them (`-` for a family not read). */
  readonly fp4: string;
  readonly fp6: string;
}

/** Locks, stages and verifies `parts` (sent on stdin), tests, backs up, arms the switch and applies. */
export function applyCall(paths: RemotePaths, s: ApplySettings, parts: readonly Part[]): RemoteCall {
  const manifest = parts.flatMap((p) => [p.name, p.bytes.length, digestOf(p.bytes)]);
  const args = [paths.rules, paths.rules6, s.id, s.ipv6 ? 1 : 0, s.owner, s.timeoutS, s.keep, s.breakLock ? 1 : 0];
  // It may outlast the switch's timeout, then wait for the switch's undo.
  return step('apply', 'apply.sh', [...args, s.fp4, s.fp6, ...manifest], s.timeoutS + SWITCH_WAIT_S);
}

let deadman: Buffer | undefined;

/** The upload of the apply step: the dead-man switch script is one of its parts. */
export function deadmanPart(): Part {
  deadman ??= Buffer.from(remoteFile('deadman.sh'), 'utf8');
  return { name: 'deadman', bytes: deadman };
}

// Parts are shared between hosts (a role's file, a plan's change, the switch): one digest each.
const digests = new WeakMap<Buffer, string>();

function digestOf(bytes: Buffer): string {
  let d = digests.get(bytes);
  if (d === undefined) digests.set(bytes, (d = sha256(bytes)));
  return d;
}

/** Who holds a host's lock, from remote/lib.sh's `lock=held` line (host-supplied: fields as text). */
export interface LockHolder {
  readonly owner: string;
  readonly run: string;
  /** Epoch seconds; 0 when unknown. */
  readonly since: number;
  readonly until: number;
}

/** Parses the `lock=held since=S until=U run=R owner=...` line; undefined when there is none. */
export function parseLockHeld(stdout: string): LockHolder | undefined {
  const line = stdout.split('\n').find((l) => l.startsWith('lock=held'));
  if (line === undefined) return undefined;
  const kv = parseKeyValues(line);
  const epoch = (v: string | undefined): number => (v !== undefined && /^[0-9]{1,12}$/.test(v.trim()) ? Number(v) : 0);
  return { owner: kv.owner?.trim() ?? '', run: kv.run?.trim() ?? '', since: epoch(kv.since), until: epoch(kv.until) };
}

/** What the apply step did, from its exit code and output. */
export type ApplyOutput =
  | { readonly kind: 'applied'; readonly backup?: string }
  | { readonly kind: 'locked'; readonly holder?: LockHolder; readonly error?: string }
  /** The switch fired during the apply (slower than the timeout); `restored`: the previous rules are back. */
  | { readonly kind: 'fired'; readonly restored: boolean; readonly backup?: string }
  /** iptables-restore failed part way; the step undid what it had applied. */
  | { readonly kind: 'apply-failed'; readonly error?: string }
  /** fwgen's live rules changed since the read; `firedOld`: this run fired the switch of the run whose lock it broke. */
  | { readonly kind: 'changed'; readonly firedOld: boolean; readonly error?: string }
  | { readonly kind: 'failed'; readonly code: number; readonly error?: string };

/** Parses the apply step's result. */
export function parseApplyOutput(r: ExecResult): ApplyOutput {
  const status = parseStatus(r.stdout);
  const error = lastErrorLine(r.stderr);
  const backup = status.backup || undefined;
  switch (r.code) {
    case 0:
      return { kind: 'applied', ...(backup ? { backup } : {}) };
    case EXIT.locked:
      return { kind: 'locked', holder: parseLockHeld(r.stdout), error };
    case EXIT.rolledBack:
      return { kind: 'fired', restored: status.rollback !== 'failed', ...(backup ? { backup } : {}) };
    case EXIT.applyFailed:
      return { kind: 'apply-failed', error };
    case EXIT.changed:
      return { kind: 'changed', firedOld: /fired the dead-man switch of run/.test(r.stderr), error };
    default:
      return { kind: 'failed', code: r.code, error };
  }
}
