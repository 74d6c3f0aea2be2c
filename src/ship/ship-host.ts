import type { PreserveFn } from '../model/ownership.js';
import { backupOf, jobIpv6, type HostJob } from './jobs.js';
import { parseRuleset } from '../model/parse.js';
import { diffSets } from '../model/sets.js';
import {
  changeScript,
  isEmptyChange,
  planChange,
  removedLeftovers,
  undoScript,
  type Change,
} from '../model/transaction.js';
import type { BootReport } from '../remote/boot-hook.js';
import { readHostStatus, type RemoteStatus } from '../remote/read.js';
import {
  applyCall,
  deadmanPart,
  parseApplyOutput,
  type ApplyOutput,
  type LockHolder,
  type Part,
} from '../remote/apply.js';
import { commitCall, parseCommitOutput } from '../remote/commit.js';
import type { ScriptVars } from '../remote/scripts.js';
import { parseVerify, verifyCall } from '../remote/verify.js';
import { TransportError, type ConnectTarget, type Session, type Transport } from '../remote/transport.js';

export type { HostJob } from './jobs.js';

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
  /** Rules in the built-in chains that were neither fwgen's nor a preserved tool's hook, removed by this ship. */
  readonly removed?: readonly string[];
  /** What the boot-hook step did (absent when it did not run: --no-persist, already done, or no rules in place). */
  readonly boot?: BootReport;
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
  readonly breakLock?: boolean;
  readonly stateJson: (job: HostJob, backup: string | undefined) => string;
  /**
   * Persistence (on unless `--no-persist`): once the rules are in place (applied or unchanged), make sure
   * they load at boot. Skipped where the host already holds `marker` (the read step reports it).
   */
  readonly persist?: {
    readonly marker: string;
    readonly run: (session: Session, vars: ScriptVars) => Promise<BootReport>;
  };
}

/** The effects a host run needs, injectable for tests. */
export interface Effects {
  readonly transport: Transport;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
  /** A host starts waiting for its dead-man switch to fire, until `untilMs` (fx.now() time); for progress lines. */
  readonly waiting?: (host: string, what: string, untilMs: number) => void;
}

/** What a rollback to a backup taken before the first ship restores: no fwgen rules at all. */
const NO_RULES = (ts: string): Buffer =>
  Buffer.from(
    `# fwgen: the host had no rules file before ${ts}; fwgen's chains are removed.\n*filter\nCOMMIT\n`,
    'utf8',
  );

type ResultFn = (outcome: Outcome, reason: string, extra?: Partial<HostResult>) => HostResult;

/** The files to put in place and the change to get there, per family. */
interface Plan {
  readonly want4: Buffer;
  readonly want6?: Buffer;
  readonly change4: Change;
  readonly change6?: Change;
  readonly unchanged: boolean;
  /** Leftover rules (neither fwgen's nor preserved) the change removes. */
  readonly removed: readonly string[];
  /**
   * The sets to load (ipset mode, or a rollback to a backup that saved sets), or {@link NO_SETS} to
   * drop fwgen's sets left from ipset mode.
   */
  readonly wantSets?: Buffer;
  /** The live sets against the wanted ones ({@link diffSets}). */
  readonly setDiff: readonly string[];
}

/** A ship to a host that pulls its rules would be undone by its next poll. */
const AGENT_HOST =
  'the host runs the fwgen agent (pull mode): its next poll would undo a ship; `fwgen publish` then `fwgen agent poll`, or ship --force to override until then';

/** The host needs the ipset command for this job, and does not have it. */
const NO_IPSET =
  'the ipset command is missing on the host (the inventory says sets: ipset); install it (apt-get install ipset), then ship again';

/**
 * Ships one host: read what it runs (one command), compute fwgen's change; if any, lock, verify the
 * upload, test, back up, arm the dead-man switch and apply, then confirm over a new connection.
 */
export async function shipHost(job: HostJob, s: RunSettings, fx: Effects): Promise<HostResult> {
  const started = fx.now();
  const result: ResultFn = (outcome, reason, extra = {}) => ({
    host: job.host.name,
    role: job.host.role,
    outcome,
    reason,
    ms: fx.now() - started,
    ...extra,
  });
  const target: ConnectTarget = {
    name: job.host.name,
    ssh: job.host.ssh,
    acceptNew: s.acceptNew,
    timeoutMs: s.connectTimeoutMs,
  };
  const vars: ScriptVars = { paths: job.paths, id: s.id, ipv6: jobIpv6(job) };

  let first: Session;
  try {
    first = await fx.transport.connect(target);
  } catch (err) {
    return result('failed', describe(err));
  }
  let backup: string | undefined;
  let removed: readonly string[] = [];
  let found: Found = { hadFile: true };
  let armedAt = fx.now();
  try {
    let applied: ApplyOutput | undefined;
    // A broken lock fires the armed switch of the run that held it, which changes the live rules
    // this run read: read and apply once more.
    for (let attempt = 0; attempt < 2 && applied === undefined; attempt++) {
      const read = await readHostStatus(first, { paths: job.paths, ipv6: vars.ipv6 }, backupOf(job));
      if (!read.ok) return result('failed', read.reason);
      if (read.status.agent && job.kind === 'ship' && !s.force) return result('failed', AGENT_HOST);
      const plan = planHost(job, read.status, s.force);
      if (needsIpset(plan) && read.status.hasIpset === false) return result('failed', NO_IPSET);
      if (s.dryRun) return await dryRun(job, read.status, plan, result, bootPending(s, read.status.bootMarker));
      if (plan.unchanged) {
        const boot = await persist(s, first, vars, read.status.bootMarker);
        return result('unchanged', 'fwgen rules and rules file already match', boot ? { boot } : {});
      }
      removed = plan.removed;
      found = { bootMarker: read.status.bootMarker, hadFile: read.status.file4 !== undefined };
      armedAt = fx.now();
      try {
        const upload = parts(plan);
        const call = applyCall(job.paths, applySettings(s, vars.ipv6, read.status), upload);
        applied = parseApplyOutput(await first.run(call, Buffer.concat(upload.map((x) => x.bytes))));
      } catch (err) {
        if (err instanceof TransportError && err.kind === 'sudo-password') return result('failed', err.message);
        // Lost during the apply step: the switch may be armed and the rules applied. The new
        // connection below finds out, and either commits or reports what the host did.
        return await confirm(job, s, fx, target, vars, { armedAt, removed, found }, result);
      }
      if (attempt === 0 && applied.kind === 'changed' && applied.firedOld) applied = undefined;
    }
    if (applied === undefined)
      return result('failed', 'the live rules kept changing after the lock was broken; ship again');
    switch (applied.kind) {
      case 'applied':
        backup = applied.backup;
        break;
      case 'fired':
        return applied.restored
          ? result(
              'rolled-back',
              `the dead-man switch fired during the apply (slower than --timeout ${s.timeoutS}s); previous rules restored`,
            )
          : result('failed', rollbackFailed(job, s));
      case 'apply-failed':
        return result('rolled-back', applied.error ?? 'apply step exited with 13');
      case 'locked':
        return result(
          'failed',
          applied.holder ? lockMessage(applied.holder) : (applied.error ?? 'apply step exited with 10'),
        );
      case 'changed':
        return result('failed', applied.error ?? 'apply step exited with 19');
      case 'failed':
        return result('failed', applied.error ?? `apply step exited with ${applied.code}`);
    }
  } catch (err) {
    return result('failed', describe(err));
  } finally {
    first.close();
  }
  return confirm(job, s, fx, target, vars, { armedAt, backup, removed, found }, result);
}

/** What the read step found that the confirmation's report needs. */
interface Found {
  /** The boot-hook step's marker on the host. */
  readonly bootMarker?: string;
  /** The host had a rules file before this run (else the backup holds its live rules only). */
  readonly hadFile: boolean;
}

/** What the apply step did, for the confirmation. */
interface Applied {
  readonly armedAt: number;
  readonly backup?: string;
  readonly removed: readonly string[];
  readonly found: Found;
}

/** Pure: what the host should end with, and the change from what it runs now. */
function planHost(job: HostJob, remote: RemoteStatus, force: boolean): Plan {
  const want4 = job.kind === 'rollback' ? fileOr(remote.backup4, job.to) : job.v4;
  const want6 = !jobIpv6(job) ? undefined : job.kind === 'rollback' ? fileOr(remote.backup6, job.to) : job.v6;
  const change = (want: Buffer, live: string): Change => changeOf(want, live, job.preserve);
  const change4 = change(want4, remote.live4);
  const change6 = want6 ? change(want6, remote.live6 ?? '') : undefined;
  const filesMatch = remote.file4 === want4.toString('utf8') && (!want6 || remote.file6 === want6.toString('utf8'));
  const backupSets = remote.backupSets === undefined ? undefined : Buffer.from(remote.backupSets, 'utf8');
  const wanted = job.kind === 'rollback' ? backupSets : job.sets;
  const setDiff = diffSets(wanted?.toString('utf8') ?? '', remote.liveSets ?? '');
  // No sets wanted (sets: none, or a backup from before ipset mode): fwgen's sets and sets file left on
  // the host are dropped by a transaction like any other change (backed up first, so rollback has them).
  const leftover = !wanted && (setDiff.length > 0 || remote.setsFile !== undefined);
  const wantSets = wanted ?? (leftover ? NO_SETS : undefined);
  const setsMatch = !wantSets || (remote.setsFile === wantSets.toString('utf8') && setDiff.length === 0);
  const unchanged = !force && filesMatch && setsMatch && isEmptyChange(change4) && (!change6 || isEmptyChange(change6));
  const removed = [change4, ...(change6 ? [change6] : [])].flatMap((c) => removedLeftovers(c, job.preserve));
  return { want4, want6, change4, change6, unchanged, removed, setDiff, ...(wantSets ? { wantSets } : {}) };
}

/** The change loads sets (dropping them, or loading none, needs no ipset command). */
const needsIpset = (p: Plan): boolean => p.wantSets !== undefined && /^create /m.test(p.wantSets.toString('utf8'));

/** The sets part of a change that drops fwgen's sets: no `create` line, so the host keeps none. */
const NO_SETS = Buffer.from('# fwgen: no sets (sets: none); fwgen-* sets and the sets file are dropped\n', 'utf8');

/**
 * Plans are pure: hosts of a role that run the same rules share one, so a fleet computes a few plans,
 * not one per host. The key is the live text without its comment lines (iptables-save's header and
 * footer carry a timestamp; no plan or script reads them), per wanted file and `preserve:`.
 */
const plans = new WeakMap<PreserveFn, WeakMap<Buffer, Map<string, Change>>>();

function changeOf(want: Buffer, live: string, preserve: PreserveFn): Change {
  let byWant = plans.get(preserve);
  if (!byWant) plans.set(preserve, (byWant = new WeakMap()));
  let byLive = byWant.get(want);
  if (!byLive) byWant.set(want, (byLive = new Map()));
  const key = live.replace(/^#.*\n/gm, '');
  let c = byLive.get(key);
  if (!c)
    byLive.set(
      key,
      (c = planChange(parseRuleset(live).ruleset, parseRuleset(want.toString('utf8')).ruleset, preserve)),
    );
  return c;
}

/** The change and undo texts of a (shared) plan, made once. */
const scripts = new WeakMap<Change, { change: Buffer; undo: Buffer }>();

function scriptsOf(c: Change): { change: Buffer; undo: Buffer } {
  let t = scripts.get(c);
  if (!t)
    scripts.set(c, (t = { change: Buffer.from(changeScript(c), 'utf8'), undo: Buffer.from(undoScript(c), 'utf8') }));
  return t;
}

function fileOr(text: string | undefined, ts: string): Buffer {
  return text === undefined ? NO_RULES(ts) : Buffer.from(text, 'utf8');
}

function applySettings(s: RunSettings, ipv6: boolean, remote: RemoteStatus) {
  return {
    id: s.id,
    ipv6,
    owner: s.owner,
    timeoutS: s.timeoutS,
    keep: s.keep,
    breakLock: !!s.breakLock,
    fp4: remote.fp4,
    fp6: remote.fp6,
  };
}

/** The apply step's upload, in the order remote/apply.sh reads it. */
function parts(p: Plan): Part[] {
  const family = (n: 4 | 6, file: Buffer, c: Change): Part[] => [
    { name: `file${n}`, bytes: file },
    { name: `change${n}`, bytes: scriptsOf(c).change },
    { name: `undo${n}`, bytes: scriptsOf(c).undo },
  ];
  const sets: Part[] = p.wantSets ? [{ name: 'sets', bytes: p.wantSets }] : [];
  return [
    ...family(4, p.want4, p.change4),
    ...(p.want6 && p.change6 ? family(6, p.want6, p.change6) : []),
    ...sets,
    deadmanPart(),
  ];
}

/** A new connection proves the new rules still admit SSH; if it fails, the host rolls itself back. */
async function confirm(
  job: HostJob,
  s: RunSettings,
  fx: Effects,
  target: ConnectTarget,
  vars: ScriptVars,
  { armedAt, backup, removed, found }: Applied,
  result: ResultFn,
): Promise<HostResult> {
  let second: Session;
  try {
    second = await fx.transport.connect(target);
  } catch (err) {
    return awaitRollback(
      fx,
      target,
      vars,
      armedAt,
      s.timeoutS,
      `new SSH connection after applying failed (${describe(err)})`,
      result,
    );
  }
  try {
    const c = parseCommitOutput(
      await second.run(commitCall(job.paths, s.id, vars.ipv6, backup ?? '-', s.stateJson(job, backup))),
    );
    switch (c.kind) {
      case 'committed': {
        const notes = [
          removed.length > 0
            ? `removed ${removed.length} rule(s) that were neither fwgen's nor another tool's hook`
            : undefined,
          c.noState ? 'the state file could not be written' : undefined,
        ];
        const note = notes.filter(Boolean).join('; ') || undefined;
        const boot = await persist(s, second, vars, found.bootMarker);
        const done = backedUp(backup, found.hadFile);
        const reason =
          job.kind === 'rollback'
            ? `restored backup ${job.to}; the rules it replaced were backed up as ${backup ?? 'nothing'}`
            : done;
        return result('applied', withNote(reason, note), {
          backup,
          ...(removed.length > 0 ? { removed } : {}),
          ...(boot ? { boot } : {}),
        });
      }
      case 'fired':
        return c.restored
          ? result('rolled-back', `the dead-man switch fired before confirmation (timeout ${s.timeoutS}s)`)
          : result('failed', rollbackFailed(job, s));
      case 'file-not-replaced':
        return result('rolled-back', c.error ?? 'commit step exited with 20');
      case 'never-armed':
        return result(
          'failed',
          'connection lost during the apply step, before anything was applied; the host is as before',
        );
      case 'failed':
        return result('failed', c.error ?? `confirm step exited with ${c.code}`);
    }
  } catch (err) {
    return awaitRollback(fx, target, vars, armedAt, s.timeoutS, `confirmation failed (${describe(err)})`, result);
  } finally {
    second.close();
  }
}

async function awaitRollback(
  fx: Effects,
  target: ConnectTarget,
  vars: ScriptVars,
  armedAt: number,
  timeoutS: number,
  why: string,
  result: ResultFn,
): Promise<HostResult> {
  const deadline = armedAt + timeoutS * 1000 + 2000;
  for (let attempt = 0; attempt < 3; attempt++) {
    const wait = Math.max(0, deadline - fx.now()) + attempt * 2000;
    fx.waiting?.(target.name, 'the dead-man switch', fx.now() + wait);
    await fx.sleep(wait);
    try {
      const third = await fx.transport.connect(target);
      try {
        const status = parseVerify((await third.run(verifyCall(vars.paths, vars.id))).stdout);
        if (status === 'rolled-back')
          return result('rolled-back', `${why}; the host restored its previous rules after ${timeoutS}s`);
        if (status === 'still-armed') continue;
        if (status === 'rollback-failed')
          return result(
            'failed',
            `${why}; the dead-man switch fired but could not restore the previous rules (see ${vars.paths.rules}.fwgen-rollbacks on the host)`,
          );
        if (status === 'committed-or-gone')
          return result(
            'failed',
            `${why}; the host shows no armed switch and no rollback for this run (state: ${status}); check it with fwgen status`,
          );
        return result('failed', `${why}; could not confirm the rollback (state: ${status})`);
      } finally {
        third.close();
      }
    } catch (err) {
      if (attempt === 2)
        return result('failed', `${why}; host still unreachable after the dead-man deadline (${describe(err)})`);
    }
  }
  return result('failed', `${why}; the dead-man switch has not fired`);
}

/** The boot-hook step would run on this host (persistence on, and not done by this fwgen yet). */
const bootPending = (s: RunSettings, marker: string | undefined): boolean => !!s.persist && marker !== s.persist.marker;

/** What the boot-hook step would do, as a note for a dry run. */
const BOOT_NOTE = 'would also make the rules load at boot, if nothing does yet';

async function dryRun(
  job: HostJob,
  remote: RemoteStatus,
  plan: Plan,
  result: ResultFn,
  boot: boolean,
): Promise<HostResult> {
  const current = [remote.file4, ...(plan.want6 ? [remote.file6] : [])];
  const wanted = [plan.want4, ...(plan.want6 ? [plan.want6] : [])].map((b) => b.toString('utf8'));
  const names = [job.paths.rules, job.paths.rules6];
  const { createTwoFilesPatch } = await import('diff');
  const diffs = wanted
    .map((text, i) =>
      current[i] === text
        ? ''
        : createTwoFilesPatch(names[i], `${names[i]} (new)`, current[i] ?? '', text, '', '', { context: 2 }),
    )
    .filter(Boolean);
  const live = [plan.change4, ...(plan.change6 ? [plan.change6] : [])].map(changeScript).filter(Boolean);
  const liveNote =
    live.length > 0 ? ['# the change to the live rules (iptables-restore --noflush):', ...live].join('\n') : '';
  const sets = setCommands(plan.setDiff);
  const setsNote =
    sets.length > 0 ? ["# the change to fwgen's ipsets (each set swapped in whole):", ...sets].join('\n') : '';
  const bootNote = boot ? BOOT_NOTE : undefined;
  if (plan.unchanged) return result('unchanged', withNote('fwgen rules and rules file already match', bootNote));
  const reason = current.every((c) => c === undefined)
    ? 'no rules file on the host yet'
    : diffs.length > 0
      ? 'rules file differs'
      : live.length > 0
        ? 'live rules differ'
        : plan.wantSets === NO_SETS
          ? "fwgen's ipsets are left from sets: ipset"
          : 'ipsets differ';
  const removing =
    plan.removed.length > 0
      ? `; would remove ${plan.removed.length} rule(s) that are neither fwgen's nor another tool's hook`
      : '';
  return result('would-apply', withNote(reason + removing, bootNote), {
    diff: [...diffs, liveNote, setsNote].filter(Boolean).join('\n'),
    ...(plan.removed.length > 0 ? { removed: plan.removed } : {}),
  });
}

/** {@link diffSets} lines as what ship does: `add`/`del` members, `create`/`destroy` whole sets. */
function setCommands(diff: readonly string[]): string[] {
  return diff.map((l) => {
    if (l.startsWith('-')) return l.slice(1);
    return l.startsWith('+create ') ? `destroy ${l.split(' ')[1]}` : `del ${l.slice('+add '.length)}`;
  });
}

/** What the apply step saved, in words: a first ship had no rules file to back up, only the live rules. */
function backedUp(backup: string | undefined, hadFile: boolean): string {
  if (!backup) return 'applied';
  return hadFile
    ? `previous rules backed up as ${backup}`
    : `first rules file; the live rules were backed up as ${backup}`;
}

/**
 * The boot-hook step, where the rules are in place and the host does not hold this fwgen's marker. A
 * failure is reported, never thrown: the rules themselves are in place.
 */
async function persist(
  s: RunSettings,
  session: Session,
  vars: ScriptVars,
  marker: string | undefined,
): Promise<BootReport | undefined> {
  if (!s.persist || marker === s.persist.marker) return undefined;
  return s.persist.run(session, vars).catch((err: unknown): BootReport => ({
    status: 'failed',
    ok: false,
    path: null,
    detail: `boot hook step failed: ${describe(err)}`,
  }));
}

function withNote(reason: string, note: string | undefined): string {
  return note ? `${reason}; ${note}` : reason;
}

/** The holder of a lock, since when, and when it clears. */
function lockMessage(h: LockHolder): string {
  const when = (epoch: number): string => (epoch > 0 ? new Date(epoch * 1000).toISOString() : 'unknown');
  // The owner line names the run and since when (run-settings.ts `owner`); an older fwgen's may not.
  const holder =
    h.owner.includes(h.run) && h.owner.includes(' since ')
      ? h.owner
      : `${h.owner || 'unknown owner'} (run ${h.run}), since ${when(h.since)}`;
  return `locked by another fwgen run: ${holder}; it clears by ${when(h.until)} if that run is gone (or ship with --break-lock)`;
}

function rollbackFailed(job: HostJob, s: RunSettings): string {
  const log = `${job.paths.rules}.fwgen-rollbacks`;
  return `the dead-man switch fired (timeout ${s.timeoutS}s) but could not restore the previous rules (see ${log} on the host)`;
}

function describe(err: unknown): string {
  if (err instanceof TransportError) return err.message;
  return (err as Error)?.message ?? String(err);
}
