import { hostname, userInfo } from 'node:os';
import { randomBytes } from 'node:crypto';
import { appendAudit } from '../audit/audit-log.js';
import { inventoryCommit } from '../audit/inventory-commit.js';
import { LockoutError, WorkFailedError } from '../errors.js';
import type { Host, Inventory } from '../inventory/model.js';
import type { Reach } from '../remote/reach.js';
import { installBootHook } from '../remote/boot-hook.js';
import { checkHost } from '../status/host-status.js';
import { newRunId, runSettings } from '../ship/run-settings.js';
import { haltedFleet, runShip, type RunDeps, type RunEvent, type RunPlan, type ShipReport } from '../ship/run-ship.js';
import type { Effects, HostResult, RunSettings } from '../ship/ship-host.js';
import { positiveInt, sshForRun } from './options.js';
import { VERSION } from './project.js';

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
  persist?: boolean;
  breakLock?: boolean;
  sshConfig?: string;
}

/** The real effects of a run: one SSH transport (sharing jump host connections), timers, the clock. */
export function realEffects(
  opts: { sshConfig?: string },
  hosts: readonly Host[],
): Effects & { reaches: Map<string, Reach>; close: () => void } {
  const { transport, reaches } = sshForRun(opts, hosts);
  return {
    transport,
    reaches,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
    close: () => transport.close?.(),
  };
}

/** The settings of a run from its options, and who runs it from which inventory commit. */
export function settingsFor(
  opts: RunOptions,
  inv: Inventory,
  force = !!opts.force,
): { settings: RunSettings; origin: RunPlan['origin'] } {
  const start = new Date();
  const id = newRunId(start, randomBytes(3).toString('hex'));
  const who = `${userInfo().username}@${hostname()}`;
  const commit = inventoryCommit(inv.dir);
  const settings = runSettings(
    {
      id,
      timeoutS: positiveInt(opts.timeout, '--timeout'),
      keep: positiveInt(opts.keep, '--keep'),
      force,
      dryRun: !!opts.dryRun,
      breakLock: !!opts.breakLock,
      acceptNew: !!opts.acceptNew,
      connectTimeoutMs: positiveInt(opts.connectTimeout, '--connect-timeout') * 1000,
      persist: opts.persist ? (session, vars) => installBootHook(session, vars.paths) : undefined,
    },
    { who, inventory: inv.file, commit, version: VERSION, pid: process.pid, start },
  );
  return { settings, origin: { who, inventory: inv.file, commit } };
}

/** Runs a planned run with the real effects, prints progress and the summary, and fails (exit 1) unless every host got the rules. */
export async function runAndReport(
  plan: RunPlan,
  opts: RunOptions,
  fx: Effects & { close: () => void },
): Promise<void> {
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
    progress: printEvent,
  };
  let report: ShipReport;
  try {
    report = await runShip(plan, deps);
  } finally {
    fx.close();
  }
  printSummary(report.results);
  if (opts.json) process.stdout.write(`${JSON.stringify(report.results, null, 2)}\n`);
  const refused = report.results.filter((r) => r.lockout?.refused);
  if (refused.length > 0)
    throw new LockoutError(
      `refused ${refused.length} host(s) whose live rules after the change would cut SSH: ${refused.map((r) => r.host).join(', ')} (nothing changed on them)`,
      "see each host's reason: fix the rule it names, say the source with --from, or ship with --force-lockout-risk",
    );
  if (!report.succeeded) throw failure(report, plan.maxFailures);
}

function printEvent(e: RunEvent): void {
  if (e.kind === 'start')
    process.stderr.write(
      `${e.dryRun ? 'checking' : 'shipping'} ${e.total} host(s), ${e.concurrency} at a time (run ${e.id})\n`,
    );
  else if (e.kind === 'stage')
    process.stderr.write(`\n== ${e.stage.name}: ${e.stage.jobs.map((j) => j.host.name).join(', ')}\n`);
  else if (e.kind === 'check-failed')
    process.stderr.write(`failed      ${e.result.host} (${e.result.role}) ${e.result.reason}\n`);
  else {
    const r = e.result;
    process.stderr.write(`${r.outcome.padEnd(11)} ${r.host} (${r.role}) ${r.reason} [${(r.ms / 1000).toFixed(1)}s]\n`);
    if (r.diff) process.stderr.write(`${r.diff}\n`);
  }
}

function printSummary(results: readonly HostResult[]): void {
  const rows = [
    ['HOST', 'ROLE', 'OUTCOME', 'TIME', 'REASON'],
    ...results.map((r) => [r.host, r.role, r.outcome, `${(r.ms / 1000).toFixed(1)}s`, r.reason]),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  process.stderr.write('\n');
  for (const r of rows)
    process.stderr.write(
      `${r
        .slice(0, 4)
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')}  ${r[4]}\n`,
    );
  const count = (o: string) => results.filter((r) => r.outcome === o).length;
  const outcomes = ['applied', 'unchanged', 'would-apply', 'rolled-back', 'failed'];
  process.stderr.write(`\n${results.length} host(s): ${outcomes.map((o) => `${count(o)} ${o}`).join(', ')}\n`);
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
  return new WorkFailedError(
    `${bad.length} of ${results.length} host(s) did not get the new rules: ${bad.map((r) => `${r.host} ${r.outcome}`).join(', ')}`,
  );
}
