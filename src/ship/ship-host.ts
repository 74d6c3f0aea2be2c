import type { Host } from '../inventory/model.js';
import { applyScript, commitScript, EXIT, parseStatus, prepareScript, readRulesScript, verifyRollbackScript, type RemotePaths, type ScriptVars } from './remote-scripts.js';
import { TransportError, type ConnectTarget, type ExecResult, type Session, type Transport } from './transport.js';

export type Outcome = 'applied' | 'unchanged' | 'rolled-back' | 'failed' | 'would-apply';

/** What happened on one host: a value, never an exception. */
export interface HostResult {
  readonly host: string;
  readonly role: string;
  readonly outcome: Outcome;
  readonly reason: string;
  readonly ms: number;
  readonly backup?: string;
  readonly diff?: string;
}

/** One host's work: the new rules (or a backup to restore) and where they go. */
export interface HostJob {
  readonly host: Host;
  readonly paths: RemotePaths;
  readonly v4: Buffer;
  readonly v6?: Buffer;
  /** Restore this backup timestamp instead of uploading (`fwgen rollback`). */
  readonly fromBackup?: string;
}

/** Settings shared by every host of one run. */
export interface RunSettings {
  readonly id: string;
  readonly owner: string;
  readonly timeoutS: number;
  readonly keep: number;
  readonly force: boolean;
  readonly dryRun: boolean;
  readonly acceptNew: boolean;
  readonly connectTimeoutMs: number;
  readonly stateJson: (job: HostJob, backup: string | undefined) => string;
  /** `--persist`: after the rules are in place, make sure they load at boot; returns a note for the reason. */
  readonly persist?: (session: Session, vars: ScriptVars) => Promise<string>;
}

/** The effects a host run needs, injectable for tests. */
export interface Effects {
  readonly transport: Transport;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
}

/** Ships one host: prepare, back up, arm, apply, then confirm over a new connection. */
export async function shipHost(job: HostJob, s: RunSettings, fx: Effects): Promise<HostResult> {
  const started = fx.now();
  const result = (outcome: Outcome, reason: string, extra: Partial<HostResult> = {}): HostResult => ({
    host: job.host.name,
    role: job.host.role,
    outcome,
    reason,
    ms: fx.now() - started,
    ...extra,
  });
  const target: ConnectTarget = { name: job.host.name, ssh: job.host.ssh, acceptNew: s.acceptNew, timeoutMs: s.connectTimeoutMs };
  const vars: ScriptVars = { paths: job.paths, id: s.id, ipv6: job.v6 !== undefined };

  let first: Session;
  try {
    first = await fx.transport.connect(target);
  } catch (err) {
    return result('failed', describe(err));
  }
  if (s.dryRun) {
    try {
      return await dryRun(first, job, vars, result);
    } catch (err) {
      return result('failed', describe(err));
    } finally {
      first.close();
    }
  }
  let backup: string | undefined;
  let armedAt = fx.now();
  try {
    const payload = job.fromBackup ? undefined : job.v6 ? Buffer.concat([job.v4, job.v6]) : job.v4;
    let prep: ExecResult;
    try {
      prep = await first.run(prepareScript(vars, { size4: job.v4.length, force: s.force || job.fromBackup !== undefined, from: job.fromBackup, owner: s.owner }), payload);
    } catch (err) {
      if (err instanceof TransportError && err.kind === 'sudo-password') return result('failed', err.message);
      return result('failed', `connection lost before the new rules were applied: ${describe(err)}`);
    }
    if (prep.code !== 0) return result('failed', scriptError(prep, 'prepare'));
    if (parseStatus(prep.stdout).status === 'unchanged') return result('unchanged', withNote('rules file and live rules already match', await persist(s, first, vars)));
    armedAt = fx.now();
    const applied = await first.run(applyScript(vars, { timeoutS: s.timeoutS, keep: s.keep }));
    if (applied.code === EXIT.applyFailed) return result('rolled-back', scriptError(applied, 'apply'));
    if (applied.code !== 0) return result('failed', scriptError(applied, 'apply'));
    backup = parseStatus(applied.stdout).backup;
  } catch {
    // Lost during the apply step: the switch may be armed and the rules applied. The new
    // connection below finds out, and either commits or reports what the host did.
  } finally {
    first.close();
  }
  return confirm(job, s, fx, target, vars, armedAt, backup, result);
}

type ResultFn = (outcome: Outcome, reason: string, extra?: Partial<HostResult>) => HostResult;

/** A new connection proves the new rules still admit SSH; if it fails, the host rolls itself back. */
async function confirm(job: HostJob, s: RunSettings, fx: Effects, target: ConnectTarget, vars: ScriptVars, armedAt: number, backup: string | undefined, result: ResultFn): Promise<HostResult> {
  let second: Session;
  try {
    second = await fx.transport.connect(target);
  } catch (err) {
    return awaitRollback(fx, target, vars, armedAt, s.timeoutS, `new SSH connection after applying failed (${describe(err)})`, result);
  }
  try {
    const c = await second.run(commitScript(vars, { stateJson: s.stateJson(job, backup) }));
    if (c.code === 0) {
      const changed = parseStatus(c.stdout).warning === 'live-changed' ? 'the live rules changed between apply and confirmation (another tool?)' : undefined;
      const note = [changed, await persist(s, second, vars)].filter(Boolean).join('; ') || undefined;
      return result('applied', withNote(backup ? `previous rules backed up as ${backup}` : 'applied', note), { backup });
    }
    if (c.code === EXIT.alreadyRolledBack) return result('rolled-back', `the dead-man switch fired before confirmation (timeout ${s.timeoutS}s)`);
    if (c.code === EXIT.neverArmed) return result('failed', 'connection lost during the apply step, before anything was applied; the host is as before');
    return result('failed', scriptError(c, 'confirm'));
  } catch (err) {
    return awaitRollback(fx, target, vars, armedAt, s.timeoutS, `confirmation failed (${describe(err)})`, result);
  } finally {
    second.close();
  }
}

async function awaitRollback(fx: Effects, target: ConnectTarget, vars: ScriptVars, armedAt: number, timeoutS: number, why: string, result: ResultFn): Promise<HostResult> {
  const deadline = armedAt + timeoutS * 1000 + 2000;
  for (let attempt = 0; attempt < 3; attempt++) {
    await fx.sleep(Math.max(0, deadline - fx.now()) + attempt * 2000);
    try {
      const third = await fx.transport.connect(target);
      try {
        const v = await third.run(verifyRollbackScript(vars));
        const status = parseStatus(v.stdout).status;
        if (status === 'rolled-back') return result('rolled-back', `${why}; the host restored its previous rules after ${timeoutS}s`);
        if (status === 'still-armed') continue;
        if (status === 'rollback-failed') return result('failed', `${why}; the dead-man switch fired but could not restore the previous rules (see ${vars.paths.rules}.fwgen-rollbacks on the host)`);
        return result('failed', `${why}; could not confirm the rollback (state: ${status ?? 'unknown'})`);
      } finally {
        third.close();
      }
    } catch (err) {
      if (attempt === 2) return result('failed', `${why}; host still unreachable after the dead-man deadline (${describe(err)})`);
    }
  }
  return result('failed', `${why}; the dead-man switch has not fired`);
}

async function dryRun(session: Session, job: HostJob, vars: ScriptVars, result: ResultFn): Promise<HostResult> {
  const r = await session.run(readRulesScript(vars));
  if (r.code !== 0) return result('failed', scriptError(r, 'read'));
  const current = splitFiles(r.stdout);
  const wanted = [job.v4, ...(job.v6 ? [job.v6] : [])].map((b) => b.toString('utf8'));
  const names = [job.paths.rules, job.paths.rules6];
  const { createTwoFilesPatch } = await import('diff');
  const diffs = wanted
    .map((text, i) => (current[i] === text ? '' : createTwoFilesPatch(names[i], `${names[i]} (new)`, current[i] ?? '', text, '', '', { context: 2 })))
    .filter(Boolean);
  if (diffs.length === 0) return result('unchanged', 'rules file already matches');
  return result('would-apply', current.every((c) => c === undefined) ? 'no rules file on the host yet' : 'rules file differs', { diff: diffs.join('\n') });
}

/** A boot-hook problem only adds a note: the rules themselves are in place. */
async function persist(s: RunSettings, session: Session, vars: ScriptVars): Promise<string | undefined> {
  return s.persist ? s.persist(session, vars).catch((err: unknown) => `boot hook not installed: ${describe(err)}`) : undefined;
}

function withNote(reason: string, note: string | undefined): string {
  return note ? `${reason}; ${note}` : reason;
}

function splitFiles(out: string): (string | undefined)[] {
  const files: (string | undefined)[] = [];
  let rest = Buffer.from(out, 'utf8');
  while (rest.length > 0) {
    const nl = rest.indexOf(10);
    const size = Number(rest.subarray(0, nl).toString());
    rest = rest.subarray(nl + 1);
    if (size < 0) files.push(undefined);
    else {
      files.push(rest.subarray(0, size).toString('utf8'));
      rest = rest.subarray(size);
    }
  }
  return files;
}

function scriptError(r: ExecResult, phase: string): string {
  const msg = r.stderr.trim().split('\n').filter(Boolean).pop()?.replace(/^fwgen: /, '');
  return msg ? msg : `${phase} step exited with ${r.code}`;
}

function describe(err: unknown): string {
  if (err instanceof TransportError) return err.message;
  return (err as Error)?.message ?? String(err);
}
