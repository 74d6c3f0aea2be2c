import type { AuditEntry, AuditHost } from '../audit/audit-log.js';
import { mapPool } from '../util/map-pool.js';
import { printable } from '../util/printable.js';
import type { HostJob, ShipJob } from './jobs.js';
import type { Stage } from './rollout.js';
import { fleetSucceeded, shipFleet } from './ship-fleet.js';
import type { Effects, HostResult, RunSettings } from './ship-host.js';

/** What a run does, decided before it starts: its stages and the rules for going on. */
export interface RunPlan {
  readonly action: 'ship' | 'rollback' | 'remove';
  readonly stages: readonly Stage[];
  /** A staged rollout (`--canary`/`--waves`): hosts are checked after their stage, and it may halt. */
  readonly staged: boolean;
  /** Failures a stage may have before the rollout halts. */
  readonly maxFailures: number;
  readonly concurrency: number;
  readonly settings: RunSettings;
  /** Who runs it, from which inventory and commit: the run's part of every audit entry. */
  readonly origin: { readonly who: string; readonly inventory: string; readonly commit: string | null };
}

/** What a host says after its stage (a status read over a new connection). */
export interface StageCheck {
  readonly inSync: boolean;
  /** Why not, in a few words (the status state and reason). */
  readonly problem?: string;
}

/** What happens during a run, as it happens (the CLI prints it). */
export type RunEvent =
  | {
      readonly kind: 'start';
      readonly action: RunPlan['action'];
      readonly id: string;
      readonly total: number;
      readonly concurrency: number;
      readonly dryRun: boolean;
    }
  | { readonly kind: 'stage'; readonly stage: Stage }
  | { readonly kind: 'host'; readonly result: HostResult }
  | { readonly kind: 'check-failed'; readonly result: HostResult };

/** The effects of a run, injected: the transport and clock, the post-stage check, the audit log, progress. */
export interface RunDeps {
  readonly fx: Effects;
  readonly check: (job: ShipJob) => Promise<StageCheck>;
  readonly audit: (entry: AuditEntry) => void;
  readonly progress: (event: RunEvent) => void;
}

/** One host's result and the stage it belonged to. */
export type StagedResult = HostResult & { readonly stage: string };

/** Where a staged rollout stopped, and the hosts it never reached. */
export interface Halt {
  readonly stage: string;
  readonly failures: number;
  readonly untouched: readonly string[];
}

/** The outcome of a run: every host's result, where it halted, and whether every host got the rules. */
export interface ShipReport {
  readonly id: string;
  readonly action: RunPlan['action'];
  readonly dryRun: boolean;
  readonly results: readonly StagedResult[];
  readonly halted?: Halt;
  readonly succeeded: boolean;
}

/**
 * Runs the stages in order: ships each stage's hosts, checks them after their stage in a staged
 * rollout, and halts when a stage fails more hosts than allowed. Records every host's result in the
 * audit log as soon as it is known, and the run's entry at the end. Never throws for a host's failure.
 */
export async function runShip(plan: RunPlan, deps: RunDeps): Promise<ShipReport> {
  const s = plan.settings;
  const total = plan.stages.reduce((n, st) => n + st.jobs.length, 0);
  deps.progress({
    kind: 'start',
    action: plan.action,
    id: s.id,
    total,
    concurrency: plan.concurrency,
    dryRun: s.dryRun,
  });
  const results: StagedResult[] = [];
  const jobs = new Map(plan.stages.flatMap((st) => st.jobs.map((j) => [j.host.name, j] as const)));
  let halted: Halt | undefined;
  for (const [i, stage] of plan.stages.entries()) {
    if (plan.staged) deps.progress({ kind: 'stage', stage });
    let done = await shipFleet(stage.jobs, s, deps.fx, plan.concurrency, (r) => {
      deps.progress({ kind: 'host', result: r });
      // Each host's result is on disk as soon as it is known: a controller killed later loses none.
      if (!s.dryRun) deps.audit(hostEntry(plan, r, stage.name, now(deps), jobs.get(r.host)));
    });
    if (plan.staged && !s.dryRun) done = await checkStage(stage, done, plan.concurrency, deps);
    results.push(...done.map((r) => ({ ...r, stage: stage.name })));
    halted = haltAfter(plan, i, done);
    if (halted) break;
  }
  if (!s.dryRun) for (const e of runEntries(plan, results, halted, now(deps), jobs)) deps.audit(e);
  return {
    id: s.id,
    action: plan.action,
    dryRun: s.dryRun,
    results,
    halted,
    succeeded: !halted && fleetSucceeded(results) && results.every((r) => r.boot?.ok !== false),
  };
}

/** Hosts that got (or kept) the rules but will not load them at boot: the run did not fully succeed. */
export function bootProblems(results: readonly HostResult[]): HostResult[] {
  return results.filter((r) => r.boot && !r.boot.ok);
}

/** Pure: whether a staged rollout stops after stage `i`, given that stage's results. */
export function haltAfter(
  plan: Pick<RunPlan, 'stages' | 'staged' | 'maxFailures'>,
  i: number,
  done: readonly HostResult[],
): Halt | undefined {
  const failures = done.filter((r) => !fleetSucceeded([r])).length;
  if (!plan.staged || failures <= plan.maxFailures || i >= plan.stages.length - 1) return undefined;
  return {
    stage: plan.stages[i].name,
    failures,
    untouched: plan.stages.slice(i + 1).flatMap((st) => st.jobs.map((j) => j.host.name)),
  };
}

/** Which hosts run the new rules after a halted rollout, which took them but failed their check, and which do not. */
export function haltedFleet(report: ShipReport): { running: string[]; suspect: string[]; notRunning: string[] } {
  const running = report.results.filter((r) => r.outcome === 'applied' || r.outcome === 'unchanged').map((r) => r.host);
  // A host that took the rules but failed its check after the stage has a backup: its state is suspect.
  const suspect = report.results.filter((r) => r.outcome === 'failed' && r.backup).map((r) => r.host);
  const notRunning = [
    ...report.results.filter((r) => !running.includes(r.host) && !suspect.includes(r.host)).map((r) => r.host),
    ...(report.halted?.untouched ?? []),
  ];
  return { running, suspect, notRunning };
}

/** After a stage, every host that took (or kept) the rules is checked again; one that is not in sync failed. */
async function checkStage(stage: Stage, done: HostResult[], concurrency: number, deps: RunDeps): Promise<HostResult[]> {
  return mapPool(stage.jobs, concurrency, async (job: HostJob, i) => {
    const result = done[i];
    if (job.kind !== 'ship' || (result.outcome !== 'applied' && result.outcome !== 'unchanged')) return result;
    const check = await deps.check(job);
    if (check.inSync) return result;
    const failed = {
      ...result,
      outcome: 'failed' as const,
      reason: `check after the stage: ${printable(check.problem ?? 'not in sync')}`,
    };
    deps.progress({ kind: 'check-failed', result: failed });
    return failed;
  });
}

const now = (deps: RunDeps): string => new Date(deps.fx.now()).toISOString();

function auditHost(plan: RunPlan, r: HostResult, stage: string, job: HostJob | undefined): AuditHost {
  const inPlace = r.outcome === 'applied' || r.outcome === 'unchanged';
  return {
    host: r.host,
    role: r.role,
    outcome: r.outcome,
    reason: r.reason,
    backup: r.backup,
    stage: plan.staged ? stage : undefined,
    restored: job?.kind === 'rollback' && inPlace ? job.to : undefined,
    rules: job?.kind === 'ship' && inPlace ? job.digest : undefined,
    boot: r.boot?.status,
  };
}

/** Pure: the audit line of one host's result (`action: host`). */
export function hostEntry(plan: RunPlan, r: HostResult, stage: string, time: string, job?: HostJob): AuditEntry {
  return { time, action: 'host', run: plan.settings.id, ...plan.origin, hosts: [auditHost(plan, r, stage, job)] };
}

/** Pure: the run's closing audit line, and a `halt` line after it when a rollout halted. */
export function runEntries(
  plan: RunPlan,
  results: readonly StagedResult[],
  halted: Halt | undefined,
  time: string,
  jobs: ReadonlyMap<string, HostJob> = new Map(),
): AuditEntry[] {
  const base = { run: plan.settings.id, ...plan.origin };
  const run: AuditEntry = {
    time,
    action: plan.action,
    ...base,
    hosts: results.map((r) => auditHost(plan, r, r.stage, jobs.get(r.host))),
    stages: plan.staged ? plan.stages.map((s) => s.name) : undefined,
  };
  return halted ? [run, { time, action: 'halt', ...base, hosts: [], halted }] : [run];
}
