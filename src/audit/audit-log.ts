import {
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { checkLinksStayInside } from '../util/contained-path.js';

/** One host's line in an audit entry. */
export interface AuditHost {
  readonly host: string;
  readonly role: string;
  readonly outcome: string;
  readonly reason: string;
  readonly backup?: string;
  readonly stage?: string;
  /** A rollback: the backup it restored. */
  readonly restored?: string;
  /** A ship that put the rules in place (applied or unchanged): the digest of what the host got (plan.ts). */
  readonly rules?: string;
  /** What the boot-hook step came to, when it ran (remote/boot-hook.ts `BootReport` status). */
  readonly boot?: string;
}

/** A host key `--accept-new` recorded in known_hosts. */
export interface AcceptedHostKey {
  /** The name looked up in known_hosts (`host` or `[host]:port`). */
  readonly name: string;
  readonly keyType: string;
  /** SHA256 fingerprint, as OpenSSH prints it. */
  readonly fingerprint: string;
  readonly knownHosts: string;
}

/** One line of the deploy log: who did what, when, from which inventory commit, with what outcome. */
export interface AuditEntry {
  readonly time: string;
  /**
   * `host`: one host's result, appended as soon as it finishes (before the run's `ship`/`rollback` line);
   * `host-key`: a host key `--accept-new` recorded (`hostKey`), appended when it is recorded.
   */
  readonly action: 'ship' | 'rollback' | 'remove' | 'halt' | 'host' | 'host-key';
  readonly run: string;
  readonly who: string;
  readonly inventory: string;
  readonly commit: string | null;
  readonly hosts: readonly AuditHost[];
  /** For a staged rollout: the stages, and where it halted. */
  readonly stages?: readonly string[];
  readonly halted?: { readonly stage: string; readonly failures: number; readonly untouched: readonly string[] };
  /** Set when the run never wrote its closing line (the controller was killed): the hosts are those that finished. */
  readonly interrupted?: boolean;
  /** `host-key`: the key recorded. */
  readonly hostKey?: AcceptedHostKey;
}

/**
 * Checks the log's path and makes its folder, before a run touches a host: no link on the way from the
 * current folder out of it (a committed `.fwgen -> /elsewhere`), the folder made 0700 if missing.
 */
export function prepareAuditLog(path: string): void {
  checkLinksStayInside(process.cwd(), path, 'audit log');
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
}

/**
 * Appends one JSON line (O_APPEND: concurrent runs never interleave within a line). The log is fwgen's
 * own file: created 0600 (who shipped what, and the hosts' backups), never written through a link.
 */
export function appendAudit(path: string, entry: AuditEntry): void {
  prepareAuditLog(path);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOOP') throw err;
    throw new UsageError(
      `audit log: ${path} is a symbolic link; fwgen writes its log only as a file of its own`,
      'remove the link (or pass --audit-log PATH)',
    );
  }
  try {
    // A log made by an older fwgen was world-readable; one of another user's stays theirs to change.
    if ((fstatSync(fd).mode & 0o077) !== 0) tighten(fd);
    writeSync(fd, `${JSON.stringify(entry)}\n`);
  } finally {
    closeSync(fd);
  }
}

function tighten(fd: number): void {
  try {
    fchmodSync(fd, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
  }
}

/** Reads the log; a line that is not JSON is skipped rather than hiding the rest. */
export function readAudit(path: string): AuditEntry[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as AuditEntry];
      } catch {
        return [];
      }
    });
}

/**
 * The entries a person reads: a run's `host` lines are folded into its `ship`/`rollback` line; a run
 * that never wrote one (its controller was killed) shows as the `ship` it was, from its `host` lines.
 */
export function completedEntries(entries: readonly AuditEntry[]): AuditEntry[] {
  const finished = new Set(entries.filter((e) => e.action !== 'host' && e.action !== 'host-key').map((e) => e.run));
  const out: AuditEntry[] = [];
  const open = new Map<string, AuditEntry>();
  for (const e of entries) {
    if (e.action !== 'host') {
      out.push(e);
    } else if (!finished.has(e.run)) {
      const prev = open.get(e.run);
      if (prev) (prev.hosts as AuditHost[]).push(...e.hosts);
      else {
        const interrupted: AuditEntry = { ...e, action: 'ship', hosts: [...e.hosts], interrupted: true };
        open.set(e.run, interrupted);
        out.push(interrupted);
      }
    }
  }
  return out;
}

/** A commit as the log shows it: 12 hex digits, keeping the `+dirty` mark. */
export function shortCommit(commit: string | null, digits = 12): string {
  if (commit === null) return 'unknown';
  const [sha, ...rest] = commit.split('+');
  return [sha.slice(0, digits), ...rest].join('+');
}

/** One readable paragraph per entry. */
export function formatAudit(e: AuditEntry): string {
  if (e.action === 'host-key' && e.hostKey) {
    const k = e.hostKey;
    return `${e.time}  host-key run ${e.run} by ${e.who}: accepted ${k.keyType} ${k.fingerprint} for ${k.name} into ${k.knownHosts}`;
  }
  const count = (o: string) => e.hosts.filter((h) => h.outcome === o).length;
  const tally = ['applied', 'unchanged', 'rolled-back', 'failed'].map((o) => `${count(o)} ${o}`).join(', ');
  const head = `${e.time}  ${e.action.padEnd(8)} run ${e.run} by ${e.who}, inventory ${e.inventory} @ ${shortCommit(e.commit)}: ${tally}`;
  const lines = [e.interrupted ? `${head} (INTERRUPTED: no closing line; hosts that finished only)` : head];
  if (e.stages) lines.push(`    stages: ${e.stages.join(' → ')}`);
  if (e.halted)
    lines.push(
      `    HALTED at ${e.halted.stage} after ${e.halted.failures} failure(s); ${e.halted.untouched.length} host(s) untouched`,
    );
  for (const h of e.hosts)
    if (h.outcome !== 'applied' && h.outcome !== 'unchanged')
      lines.push(`    ${h.host} (${h.role}) ${h.outcome}: ${h.reason}`);
    else if (h.boot && !['installed', 'updated', 'present'].includes(h.boot))
      lines.push(`    ${h.host} (${h.role}) ${h.outcome}, but its rules do not load at boot (boot: ${h.boot})`);
  return lines.join('\n');
}
