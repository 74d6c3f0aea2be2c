import type { PreserveFn } from '../model/ownership.js';
import { backupOf, jobIpv6, type HostJob } from './jobs.js';
import { parseRuleset } from '../model/parse.js';
import { diffSets } from '../model/sets.js';
import {
  changeScript,
  isEmptyChange,
  planChange,
  planRestore,
  removedLeftovers,
  restoredLeftovers,
  undoScript,
  type Change,
} from '../model/transaction.js';
import { checkSsh } from '../lockout/lockout.js';
import { nativeFindings, nativeWarnings } from '../lockout/native.js';
import { judgeNative, sshPackets } from '../lockout/nft-eval.js';
import { parseNftJson } from '../model/nft.js';
import { describeTakeover, takeoverLine, type Takeover } from '../model/takeover.js';
import type { LockoutSource } from '../lockout/check-hosts.js';
import type { Ruleset } from '../model/ruleset.js';
import { parseSets } from '../model/sets.js';
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
import { shipBefore, type ShipOf } from '../remote/state-file.js';
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
  /** A rollback: such rules it put back (the leftovers the ships since that backup had removed). */
  readonly restored?: readonly string[];
  /** A rollback: what the host runs after it (the ship it went back to, or its pre-fwgen firewall). */
  readonly restore?: Restore;
  /** Native nftables chains that drop traffic the host's new rules accept: they override fwgen there. */
  readonly native?: readonly string[];
  /** The firewall tools whose rules in the built-in chains this ship removed (or a dry run would). */
  readonly takeover?: Takeover;
  /** The live rules after the change would cut SSH: where, and whether the host was refused for it. */
  readonly lockout?: LiveLockout;
  /** What the boot-hook step did (absent when it did not run: --no-persist, already done, or no rules in place). */
  readonly boot?: BootReport;
}

/** What the lockout check over a host's live rules found: the SSH source and the rule that cuts it. */
export interface LiveLockout {
  readonly source: string;
  readonly port: number;
  readonly table?: string;
  readonly chain?: string;
  /** Which packets of the connection: `new connection`, `client packets` or `replies`. */
  readonly packets?: string;
  readonly rule: string;
  readonly why?: string;
  /** True when the host was refused (no `--force-lockout-risk`); nothing changed then. */
  readonly refused: boolean;
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
  readonly stateJson: (job: HostJob, backup: string | undefined, restore?: Restore) => string;
  /**
   * The lockout check over each host's live rules as the change leaves them (other tools' rules kept,
   * every table): where each host sees SSH come from (the up-front check's sources), and whether a
   * risk found there is shipped anyway (`--force-lockout-risk`; the dead-man switch still arms).
   */
  readonly lockout?: { readonly sources: ReadonlyMap<string, LockoutSource>; readonly force: boolean };
  /**
   * Refuse a host that runs the pull agent, with this reason (rollback and remove: the agent's next
   * poll would undo them; a forced ship goes ahead).
   */
  readonly agentHost?: (host: string) => string;
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

/** What a rollback gives the host back: the ship it runs again (null: unknown), or its pre-fwgen firewall. */
export interface Restore {
  readonly runs: ShipOf | null;
  readonly fwgenRemoved: boolean;
}

/** The leftovers a change removes from the built-in chains, and those it puts back; a rollback's restore. */
interface Moved {
  readonly removed: readonly string[];
  readonly restored: readonly string[];
  readonly restore?: Restore;
}

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
  /** Leftover rules the change puts back (a rollback). */
  readonly restored: readonly string[];
  /** A rollback: what the host runs after it. */
  readonly restore?: Restore;
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
  // Native nftables that override fwgen's rules: known after the read, said on every row from then.
  let native: readonly string[] = [];
  const result: ResultFn = (outcome, reason, extra = {}) => ({
    host: job.host.name,
    role: job.host.role,
    outcome,
    reason: native.length > 0 ? `${reason}; warning: ${native.join('; ')}` : reason,
    ms: fx.now() - started,
    ...(native.length > 0 ? { native } : {}),
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
  let moved: Moved = { removed: [], restored: [] };
  let risk: LiveLockout | undefined;
  let found: Found = { hadFile: true };
  let armedAt = fx.now();
  try {
    let applied: ApplyOutput | undefined;
    // A broken lock fires the armed switch of the run that held it, which changes the live rules
    // this run read: read and apply once more.
    for (let attempt = 0; attempt < 2 && applied === undefined; attempt++) {
      const read = await readHostStatus(first, { paths: job.paths, ipv6: vars.ipv6 }, backupOf(job));
      if (!read.ok) return result('failed', read.reason);
      // A pull agent's next poll puts its release back: a ship is refused unless forced, a rollback or
      // a removal as the command says (s.agentHost).
      const agentRefusal = job.kind === 'ship' && !s.force ? AGENT_HOST : s.agentHost?.(job.host.name);
      if (read.status.agent && agentRefusal) return result('failed', agentRefusal);
      native = nativeWarningsFor(job, read.status);
      const plan = planHost(job, read.status, s.force);
      if (needsIpset(plan) && read.status.hasIpset === false) return result('failed', NO_IPSET);
      if (s.dryRun) return await dryRun(job, read.status, plan, result, bootPending(s, read.status.bootMarker));
      if (plan.unchanged) {
        const boot = await persist(s, first, vars, read.status.bootMarker);
        return result('unchanged', 'fwgen rules and rules file already match', boot ? { boot } : {});
      }
      const cut = liveLockout(job, read.status, plan, s);
      if (cut?.refused) return result('failed', lockoutReason(cut), { lockout: cut });
      risk = cut;
      moved = { removed: plan.removed, restored: plan.restored, ...(plan.restore ? { restore: plan.restore } : {}) };
      found = { bootMarker: read.status.bootMarker, hadFile: read.status.file4 !== undefined };
      armedAt = fx.now();
      try {
        const upload = parts(plan, job.preserve);
        const call = applyCall(job.paths, applySettings(s, vars.ipv6, read.status), upload);
        applied = parseApplyOutput(await first.run(call, Buffer.concat(upload.map((x) => x.bytes))));
      } catch (err) {
        if (err instanceof TransportError && err.kind === 'sudo-password') return result('failed', err.message);
        // Lost during the apply step: the switch may be armed and the rules applied. The new
        // connection below finds out, and either commits or reports what the host did.
        return await confirm(job, s, fx, target, vars, { armedAt, moved, found }, result);
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
  const done = await confirm(job, s, fx, target, vars, { armedAt, backup, moved, found }, result);
  return risk ? { ...done, reason: `${done.reason}; ${lockoutReason(risk)}`, lockout: risk } : done;
}

/**
 * The lockout check over the host's live rules as the change leaves them: the read step brought every
 * table; fwgen's part is replaced by what the change makes of it, other tools' rules stay. Undefined
 * when SSH gets through (or there is nothing to check: no source known, a rollback).
 */
function liveLockout(job: HostJob, remote: RemoteStatus, plan: Plan, s: RunSettings): LiveLockout | undefined {
  const src = s.lockout?.sources.get(job.host.name);
  if (!src || job.kind !== 'ship') return undefined;
  const v6 = src.address.includes(':');
  const live = v6 ? remote.live6 : remote.live4;
  const change = v6 ? plan.change6 : plan.change4;
  if (live === undefined || !change) return undefined;
  const sets = job.sets ? setMembers(job.sets) : undefined;
  const v = checkSsh(afterChange(parseRuleset(live).ruleset, change), {
    source: src.address,
    dport: src.port,
    ...(sets ? { sets } : {}),
  });
  const source = `${src.address}${src.why === 'this machine' ? '' : ` (${src.why})`}`;
  const refused = !s.lockout!.force;
  if (!v.admitted)
    return {
      source,
      port: src.port,
      ...(v.table ? { table: v.table, chain: v.chain, packets: v.packets } : {}),
      rule: v.rule,
      ...(v.why ? { why: v.why } : {}),
      refused,
    };
  // Native nftables base chains see the packets too, whatever iptables decided.
  const tables = parseNftJson(remote.native);
  for (const packet of sshPackets(src.address, src.port)) {
    const stop = judgeNative(tables, packet);
    if (stop)
      return {
        source,
        port: src.port,
        table: 'nftables',
        chain: stop.chain,
        packets: stop.packets,
        rule: stop.rule,
        ...(stop.certain ? {} : { why: 'assumed to match: not every match of it is understood' }),
        refused,
      };
  }
  return undefined;
}

/** Native nftables chains that drop what the host's new rules accept: a warning on the host's row. */
function nativeWarningsFor(job: HostJob, remote: RemoteStatus): string[] {
  if (job.kind !== 'ship') return [];
  const tables = parseNftJson(remote.native);
  const rendered: [string, 'ipv4' | 'ipv6'][] = [[job.v4.toString('utf8'), 'ipv4']];
  if (job.v6) rendered.push([job.v6.toString('utf8'), 'ipv6']);
  return nativeWarnings(nativeFindings(tables, rendered));
}

/** The live tables with each table the change touches as the change leaves it. */
function afterChange(live: Ruleset, change: Change): Ruleset {
  const changed = new Map(change.tables.map((t) => [t.table, t.result]));
  const tables = live.tables.map((t) => changed.get(t.name) ?? t);
  for (const t of change.tables) if (!live.tables.some((l) => l.name === t.table)) tables.push(t.result);
  return { tables };
}

function setMembers(text: Buffer): Map<string, readonly string[]> {
  return new Map(parseSets(text.toString('utf8')).sets.map((x) => [x.name, x.members]));
}

function lockoutReason(l: LiveLockout): string {
  const where = l.table ? `table ${l.table}, chain ${l.chain}, ${l.packets}: ` : '';
  const what = `the live rules after this change would not admit SSH from ${l.source} to port ${l.port} (${where}${l.rule}${l.why ? `; ${l.why}` : ''})`;
  return l.refused
    ? `refused: ${what}; nothing changed. Fix or remove that rule on the host, say the source with --from, or ship with --force-lockout-risk (the dead-man switch still undoes a lockout)`
    : `lockout risk shipped anyway (--force-lockout-risk): ${what}`;
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
  readonly moved: Moved;
  readonly found: Found;
}

/** Pure: what the host should end with, and the change from what it runs now. */
function planHost(job: HostJob, remote: RemoteStatus, force: boolean): Plan {
  const want4 = job.kind === 'rollback' ? fileOr(remote.backup4, job.to) : job.v4;
  const want6 = !jobIpv6(job) ? undefined : job.kind === 'rollback' ? fileOr(remote.backup6, job.to) : job.v6;
  // A ship changes fwgen's part into the rendered file; a rollback gives back what fwgen owned in the
  // backup's live snapshot (and the leftovers the ships since removed), keeping others' changes.
  const change = (want: Buffer, live: string, snapshot: string | undefined): Change =>
    job.kind === 'rollback'
      ? planRestore(parseRuleset(live).ruleset, parseRuleset(snapshot ?? '').ruleset, job.preserve)
      : changeOf(want, live, job.preserve);
  const change4 = change(want4, remote.live4, remote.backupLive4);
  const change6 = want6 ? change(want6, remote.live6 ?? '', remote.backupLive6) : undefined;
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
  const changes = [change4, ...(change6 ? [change6] : [])];
  const removed = changes.flatMap((c) => removedLeftovers(c, job.preserve));
  const restored = changes.flatMap((c) => restoredLeftovers(c, job.preserve));
  const restore: Restore | undefined =
    job.kind === 'rollback'
      ? {
          runs: shipBefore(remote.backupState),
          fwgenRemoved: ![remote.backupLive4, remote.backupLive6].some((t) => t !== undefined && /^:FWGEN-/m.test(t)),
        }
      : undefined;
  return {
    ...(restore ? { restore } : {}),
    want4,
    want6,
    change4,
    change6,
    unchanged,
    removed,
    restored,
    setDiff,
    ...(wantSets ? { wantSets } : {}),
  };
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

function scriptsOf(c: Change, preserve: PreserveFn): { change: Buffer; undo: Buffer } {
  let t = scripts.get(c);
  if (!t)
    scripts.set(
      c,
      (t = { change: Buffer.from(changeScript(c), 'utf8'), undo: Buffer.from(undoScript(c, preserve), 'utf8') }),
    );
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
function parts(p: Plan, preserve: PreserveFn): Part[] {
  const family = (n: 4 | 6, file: Buffer, c: Change): Part[] => [
    { name: `file${n}`, bytes: file },
    { name: `change${n}`, bytes: scriptsOf(c, preserve).change },
    { name: `undo${n}`, bytes: scriptsOf(c, preserve).undo },
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
  { armedAt, backup, moved, found }: Applied,
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
      await second.run(commitCall(job.paths, s.id, vars.ipv6, backup ?? '-', s.stateJson(job, backup, moved.restore))),
    );
    switch (c.kind) {
      case 'committed': {
        const { removed, restored } = moved;
        const takeover = job.kind === 'ship' ? describeTakeover(removed) : undefined;
        const notes = [
          takeover ? takeoverLine(takeover, job.host.name, true) : undefined,
          removed.length > 0
            ? `removed ${removed.length} rule(s) that were neither fwgen's nor another tool's hook`
            : undefined,
          restored.length > 0
            ? `put back ${restored.length} rule(s) of the built-in chains that the ship(s) since that backup had removed`
            : undefined,
          moved.restore?.fwgenRemoved
            ? "fwgen removed: the host runs the firewall it had before fwgen's first ship"
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
          ...(takeover ? { takeover } : {}),
          ...(restored.length > 0 ? { restored } : {}),
          ...(moved.restore ? { restore: moved.restore } : {}),
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
  const takeover = job.kind === 'ship' ? describeTakeover(plan.removed) : undefined;
  const removing = takeover
    ? `; ${takeoverLine(takeover, job.host.name, false)}`
    : plan.removed.length > 0
      ? `; would remove ${plan.removed.length} rule(s) that are neither fwgen's nor another tool's hook`
      : '';
  return result('would-apply', withNote(reason + removing, bootNote), {
    diff: [...diffs, liveNote, setsNote].filter(Boolean).join('\n'),
    ...(plan.removed.length > 0 ? { removed: plan.removed } : {}),
    ...(takeover ? { takeover } : {}),
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
