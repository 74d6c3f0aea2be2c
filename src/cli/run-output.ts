import { hostname, userInfo } from 'node:os';
import { randomBytes } from 'node:crypto';
import { appendAudit, prepareAuditLog } from '../audit/audit-log.js';
import { inventoryCommit } from '../audit/inventory-commit.js';
import { WorkFailedError } from '../errors.js';
import type { Host, Inventory } from '../inventory/model.js';
import type { Reach } from '../remote/reach.js';
import { BOOT_MARKER, runBootHook, type BootReport } from '../remote/boot-hook.js';
import { checkHost } from '../status/host-status.js';
import { summarizeDryRun, type DryRunSummary } from '../ship/dry-run-summary.js';
import { newRunId, runSettings } from '../ship/run-settings.js';
import {
  bootProblems,
  haltedFleet,
  runShip,
  type RunDeps,
  type RunEvent,
  type RunPlan,
  type ShipReport,
  type StagedResult,
} from '../ship/run-ship.js';
import type { Effects, RunSettings } from '../ship/ship-host.js';
import { positiveInt, sshForRun } from './options.js';
import { waitProgress, type WaitProgress } from './progress.js';
import { VERSION } from './project.js';
import { table } from './table.js';

/** Options of the commands that change hosts (ship, rollback); see program.ts for which command takes which. */
export interface RunOptions {
  inventory: string;
  concurrency: string;
  connectTimeout: string;
  json?: boolean;
  acceptNew?: boolean;
  auditLog: string;
  timeout: string;
  keep: string;
  dryRun?: boolean;
  force?: boolean;
  /** `--no-persist` sets it false; `--persist` (the default, kept for scripts) true. */
  persist?: boolean;
  breakLock?: boolean;
  sshConfig?: string;
  verbose?: boolean;
}

/** A run's real effects: one SSH transport (sharing jump host connections), timers, the clock, progress. */
export type RealEffects = Effects & { reaches: Map<string, Reach>; close: () => void; progress: WaitProgress };

/** The real effects of a run: one SSH transport (sharing jump host connections), timers, the clock. */
export function realEffects(
  opts: { sshConfig?: string; json?: boolean; auditLog?: string; inventory: string },
  hosts: readonly Host[],
  run?: { id: string; commit: string | null },
): RealEffects {
  const progress = waitProgress(opts.json);
  const keys = opts.auditLog
    ? { auditLog: opts.auditLog, run: run?.id ?? '-', inventory: opts.inventory, commit: run?.commit ?? null }
    : undefined;
  const { transport, reaches } = sshForRun(opts, hosts, { progress, keys });
  return {
    transport,
    reaches,
    progress,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
    waiting: (host, what, until) => progress.start(host, what, until),
    close: () => transport.close?.(),
  };
}

/** What a run is: its id and who runs it from which inventory commit, decided once before it starts. */
export interface RunIdentity {
  readonly id: string;
  readonly start: Date;
  readonly who: string;
  readonly commit: string | null;
}

/** A new run's id, who runs it, and the inventory's commit (two git processes: once per run). */
export function newRun(inv: Inventory): RunIdentity {
  const start = new Date();
  return {
    id: newRunId(start, randomBytes(3).toString('hex')),
    start,
    who: `${userInfo().username}@${hostname()}`,
    commit: inventoryCommit(inv.dir),
  };
}

/** The settings of a run from its options. Persistence (the boot-hook step) is for ships only. */
export function settingsFor(
  opts: RunOptions,
  inv: Inventory,
  run: RunIdentity,
  o: { force?: boolean; persist?: boolean } = {},
): { settings: RunSettings; origin: RunPlan['origin'] } {
  const persist = o.persist ?? false;
  const settings = runSettings(
    {
      id: run.id,
      timeoutS: positiveInt(opts.timeout, '--timeout'),
      keep: positiveInt(opts.keep, '--keep'),
      force: o.force ?? !!opts.force,
      dryRun: !!opts.dryRun,
      breakLock: !!opts.breakLock,
      acceptNew: !!opts.acceptNew,
      connectTimeoutMs: positiveInt(opts.connectTimeout, '--connect-timeout') * 1000,
      persist: persist ? { marker: BOOT_MARKER, run: (session, vars) => runBootHook(session, vars.paths) } : undefined,
    },
    { who: run.who, inventory: inv.file, commit: run.commit, version: VERSION, pid: process.pid, start: run.start },
  );
  return { settings, origin: { who: run.who, inventory: inv.file, commit: run.commit } };
}

/** What a command adds to its run's report: ship says what it left behind. */
export interface ReportExtras {
  /** JSON fields added to the report object. */
  readonly json?: Record<string, unknown>;
  /** Lines printed after the summary (stdout). */
  readonly text?: readonly string[];
}

/**
 * Runs a planned run with the real effects: progress on stderr as it goes; then the result on stdout
 * (the summary table, or with --json one object). Fails (exit 1) unless every host got the rules, and
 * loads them at boot.
 */
export async function runAndReport(
  plan: RunPlan,
  opts: RunOptions,
  fx: RealEffects,
  extras: (report: ShipReport) => ReportExtras = () => ({}),
): Promise<ShipReport> {
  const deps: RunDeps = {
    fx,
    check: async (job) => {
      const st = await checkHost(job, fx.transport, {
        acceptNew: false,
        connectTimeoutMs: plan.settings.connectTimeoutMs,
      });
      return { inSync: st.state === 'in-sync', problem: `${st.state}${st.reason ? ` (${st.reason})` : ''}` };
    },
    audit: (e) => appendAudit(opts.auditLog, e),
    progress: (e) => {
      if (e.kind === 'host') fx.progress.end(e.result.host);
      printEvent(e, plan.settings.dryRun);
    },
  };
  let report: ShipReport;
  const stopTicker = fx.progress.run();
  try {
    // A log that cannot be written (a link out of the repository) stops the run before any host is touched.
    if (!plan.settings.dryRun) prepareAuditLog(opts.auditLog);
    report = await runShip(plan, deps);
  } finally {
    stopTicker();
    fx.close();
  }
  const more = extras(report);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...reportJson(report, plan), ...more.json }, null, 2)}\n`);
  } else {
    const dry = report.dryRun ? summarizeDryRun(report.results) : undefined;
    process.stdout.write(formatSummary(report, dry, !!opts.verbose));
    if (more.text?.length) process.stdout.write(`${more.text.join('\n')}\n`);
  }
  if (!report.succeeded) throw failure(report, plan.maxFailures);
  return report;
}

/** One host's row of `ship --json` / `rollback --json`: every field present, unknown as null. */
export interface HostRowJson {
  readonly host: string;
  readonly role: string;
  readonly stage: string;
  readonly outcome: StagedResult['outcome'];
  readonly reason: string;
  readonly ms: number;
  readonly backup: string | null;
  readonly restored: string | null;
  readonly removed: readonly string[];
  readonly boot: BootReport | null;
  readonly diff: string | null;
}

/** Pure: the `--json` object of a ship or rollback (schema/output.schema.json `run`). */
export function reportJson(report: ShipReport, plan: RunPlan): Record<string, unknown> {
  const count = (o: string) => report.results.filter((r) => r.outcome === o).length;
  const restoredOf = new Map(
    plan.stages.flatMap((s) => s.jobs).flatMap((j) => (j.kind === 'rollback' ? [[j.host.name, j.to] as const] : [])),
  );
  const hosts: HostRowJson[] = report.results.map((r) => ({
    host: r.host,
    role: r.role,
    stage: r.stage,
    outcome: r.outcome,
    reason: r.reason,
    ms: r.ms,
    backup: r.backup ?? null,
    restored: r.outcome === 'applied' || r.outcome === 'unchanged' ? (restoredOf.get(r.host) ?? null) : null,
    removed: r.removed ?? [],
    boot: r.boot ?? null,
    diff: r.diff ?? null,
  }));
  return {
    run: report.id,
    action: report.action,
    dryRun: report.dryRun,
    inventory: plan.origin.inventory,
    commit: plan.origin.commit,
    who: plan.origin.who,
    succeeded: report.succeeded,
    totals: {
      hosts: report.results.length,
      applied: count('applied'),
      unchanged: count('unchanged'),
      wouldApply: count('would-apply'),
      rolledBack: count('rolled-back'),
      failed: count('failed'),
      notLoadedAtBoot: bootProblems(report.results).length,
    },
    halted: report.halted ?? null,
    hosts,
  };
}

/** Progress on stderr: the run starting, each stage, each host as it ends. */
function printEvent(e: RunEvent, dryRun: boolean): void {
  const out = (s: string) => process.stderr.write(s);
  if (e.kind === 'start') {
    const verbs = { ship: 'shipping', rollback: 'rolling back', remove: 'removing fwgen from' } as const;
    const verb = e.dryRun ? 'checking' : verbs[e.action];
    out(`${verb} ${e.total} host(s), ${e.concurrency} at a time (run ${e.id})\n`);
  } else if (e.kind === 'stage') out(`\n== ${e.stage.name}: ${e.stage.jobs.map((j) => j.host.name).join(', ')}\n`);
  else if (e.kind === 'check-failed') out(`failed      ${e.result.host} (${e.result.role}) ${e.result.reason}\n`);
  else {
    const r = e.result;
    out(`${r.outcome.padEnd(11)} ${r.host} (${r.role}) ${r.reason} [${(r.ms / 1000).toFixed(1)}s]\n`);
    // A dry run's change is the result: its summary goes to stdout at the end.
    if (!dryRun) for (const rule of r.removed ?? []) out(`    removed: ${rule}\n`);
    if (r.boot) out(`    ${r.boot.ok ? '' : 'warning: '}${r.boot.detail}\n`);
  }
}

/** Pure: the result of a run as a person reads it (stdout): the table, the totals, boot problems. */
export function formatSummary(report: ShipReport, dry: DryRunSummary | undefined, verbose: boolean): string {
  const rows = report.results.map((r) => [
    r.host,
    r.role,
    r.outcome,
    `${(r.ms / 1000).toFixed(1)}s`,
    r.boot ? (r.boot.ok ? r.boot.status : `${r.boot.status} (not loaded at boot)`) : '-',
    r.reason,
  ]);
  const lines = ['', ...table(['HOST', 'ROLE', 'OUTCOME', 'TIME', 'BOOT', 'REASON'], rows)];
  const count = (o: string) => report.results.filter((r) => r.outcome === o).length;
  const outcomes = report.dryRun
    ? ['would-apply', 'unchanged', 'failed']
    : ['applied', 'unchanged', 'rolled-back', 'failed'];
  lines.push('', `${report.results.length} host(s): ${outcomes.map((o) => `${count(o)} ${o}`).join(', ')}`);
  const boot = bootProblems(report.results);
  if (boot.length > 0) {
    lines.push(`${boot.length} host(s) will not load their rules at boot (a reboot drops the firewall):`);
    for (const r of boot) lines.push(`  ${r.host}: ${r.boot!.detail}`);
    lines.push('  (fix it and ship again, or ship with --no-persist to leave boot to something else)');
  }
  if (dry) lines.push('', ...formatDryRun(dry, report.results, verbose));
  return `${lines.join('\n')}\n`;
}

/** A dry run's change, one block per role, hosts that differ from their role apart; each host in full with --verbose. */
function formatDryRun(dry: DryRunSummary, results: readonly StagedResult[], verbose: boolean): string[] {
  const lines: string[] = [];
  const indent = (text: string) => text.split('\n').map((l) => `    ${l}`);
  for (const b of dry.roles) {
    lines.push(`role ${b.role}:`);
    if (b.change) {
      lines.push(
        `  would apply to ${b.change.hosts.length} host(s): ${b.change.hosts.join(', ')} (${b.change.reason})`,
      );
      if (!verbose) lines.push(...indent(b.change.diff));
    }
    for (const a of b.apart) {
      const removed = a.removed.length > 0 ? `; would remove: ${a.removed.join(' | ')}` : '';
      lines.push(`  ${a.host} differs from its role: ${a.reason}${removed}`);
    }
    if (b.unchanged.length > 0) lines.push(`  unchanged: ${b.unchanged.join(', ')}`);
    for (const f of b.failed) lines.push(`  ${f.host} failed: ${f.reason}`);
  }
  if (verbose) {
    for (const r of results.filter((x) => x.diff)) lines.push('', `== ${r.host} (${r.role})`, r.diff!);
  } else if (dry.roles.some((b) => b.apart.length > 0)) {
    lines.push("(--verbose prints every host's full change)");
  }
  return lines;
}

/** The error a run that did not fully succeed ends with: a halted rollout says which hosts run what. */
function failure(report: ShipReport, maxFailures: number): WorkFailedError {
  const { halted, results } = report;
  if (halted) {
    const { running, suspect, notRunning } = haltedFleet(report);
    return new WorkFailedError(
      `rollout halted after ${halted.stage}: ${halted.failures} failure(s), more than --max-failures ${maxFailures}\n` +
        `run the new rules (${running.length}): ${running.join(', ') || 'none'}\n` +
        (suspect.length > 0
          ? `took the new rules but failed the check after their stage (${suspect.length}): ${suspect.join(', ')}\n`
          : '') +
        `do not (${notRunning.length}): ${notRunning.join(', ')}`,
      'fix the failures and ship again, or undo the shipped part with `fwgen rollback --wave last`',
    );
  }
  const bad = results.filter((r) => !['applied', 'unchanged', 'would-apply'].includes(r.outcome));
  if (bad.length > 0)
    return new WorkFailedError(
      `${bad.length} of ${results.length} host(s) did not get the new rules: ${bad.map((r) => `${r.host} ${r.outcome}`).join(', ')}`,
    );
  const boot = bootProblems(results);
  return new WorkFailedError(
    `${boot.length} of ${results.length} host(s) run the new rules but will not load them at boot: ${boot.map((r) => r.host).join(', ')}`,
    "see each host's boot line above; `fwgen doctor --host H` says how to fix it, or ship with --no-persist",
  );
}
