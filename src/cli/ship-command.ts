import type Ipaddr from 'ipaddr.js';
import { readAudit } from '../audit/audit-log.js';
import { LockoutError, UsageError, WorkFailedError } from '../errors.js';
import type { Inventory } from '../inventory/model.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { checkLockout } from '../lockout/check-hosts.js';
import { lastReceived, rolesBehind, shipCommandFor, type RoleBehind } from '../ship/left-behind.js';
import { planShip, roleDigests } from '../ship/plan.js';
import { parseWaves, planStages } from '../ship/rollout.js';
import type { ShipReport } from '../ship/run-ship.js';
import { requireCjs } from '../util/require-cjs.js';
import type { InternalOptions } from './internal.js';
import { nonNegativeInt, positiveInt, type HostOptions } from './options.js';
import { printWarnings, renderProject } from './project.js';
import { newRun, realEffects, runAndReport, settingsFor, type ReportExtras } from './run-output.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

export interface ShipOptions extends HostOptions {
  dryRun?: boolean;
  timeout: string;
  keep: string;
  force?: boolean;
  acceptNew?: boolean;
  canary?: string;
  waves?: string;
  maxFailures?: string;
  auditLog: string;
  /** false with `--no-persist`; the boot-hook step runs otherwise (`--persist` is the default, kept for scripts). */
  persist?: boolean;
  /** `--from ADDR`: the address hosts see SSH come from (NAT); overrides ssh.source. */
  from?: string;
  breakLock?: boolean;
  verbose?: boolean;
}

/** `--role changed`: the roles whose rules changed since their hosts' last ship. */
const CHANGED = 'changed';

/** `fwgen ship`: check rendered/ is current and safe, then ship every selected host. */
export async function shipCommand(opts: ShipOptions, internal: InternalOptions = {}): Promise<void> {
  if (!opts.role && !opts.host?.length)
    throw new UsageError('say which roles to ship: --role all, --role changed, --role ROLE[,ROLE...] or --host NAME');
  if (opts.from !== undefined && !ipaddr.isValid(opts.from))
    throw new UsageError(`--from ${opts.from} is not an IP address`);
  const changed = opts.role === CHANGED;
  const project = renderProject({ ...opts, role: changed ? 'all' : (opts.role ?? 'all') });
  printWarnings(project.loaded.warnings);
  const stale = project.changes.filter((c) => c.status !== 'unchanged');
  if (stale.length > 0) {
    throw new WorkFailedError(
      `${opts.out}/ does not match the inventory (${stale.map((c) => `${c.status}: ${c.path}`).join(', ')}); refusing to ship`,
      'run `fwgen render`, review and commit, then ship',
    );
  }
  const inv = project.loaded.inventory;
  const roles = changed ? changedRoles(inv, opts) : project.roles;
  if (roles?.size === 0) {
    process.stderr.write(
      `nothing to ship: every host's last ship in ${opts.auditLog} matches what ${opts.out}/ holds for its role\n`,
    );
    return;
  }
  const run = newRun(inv);
  warnUncommitted(run.commit, inv);
  const jobs = planShip(inv, selectHosts(inv, roles, opts.host ?? []), opts.out);
  const maxFailures = opts.maxFailures === undefined ? 0 : nonNegativeInt(opts.maxFailures, '--max-failures');
  const staged = opts.canary !== undefined || opts.waves !== undefined;
  const stages = staged
    ? planStages(
        jobs,
        opts.canary === undefined ? 0 : nonNegativeInt(opts.canary, '--canary'),
        parseWaves(opts.waves ?? '100%'),
      )
    : [{ name: 'all', jobs }];
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  const { settings, origin } = settingsFor(opts, inv, run, { persist: opts.persist !== false });
  const fx = realEffects(
    opts,
    jobs.map((j) => j.host),
    run,
  );
  if (!opts.dryRun && !internal.skipLockoutCheck) {
    const verdict = await checkLockout(jobs, inv, fx.reaches, opts.from).catch((err: unknown) => {
      fx.close();
      throw err;
    });
    if (!verdict.ok) {
      fx.close();
      throw new LockoutError(
        `refusing to ship: it would lock this machine out\n${verdict.problems.join('\n')}`,
        verdict.hint,
      );
    }
  }
  await runAndReport(
    { action: 'ship', stages, staged, maxFailures, concurrency, settings, origin },
    opts,
    fx,
    (report) => leftBehind(report, inv, opts),
  );
}

/** `--role changed`: roles with a host whose last ship (per the deploy log) is not what rendered/ holds now. */
function changedRoles(inv: Inventory, opts: ShipOptions): Set<string> {
  const behind = rolesBehind(hostsByRole(inv), roleDigests(inv, opts.out), lastReceived(readAudit(opts.auditLog)));
  const roles = new Set(behind.map((b) => b.role));
  if (roles.size > 0) {
    const why = (b: RoleBehind) =>
      `${b.role} (${[...b.hosts, ...b.unknown.map((u) => `${u}: not in the deploy log`)].join(', ')})`;
    process.stderr.write(`--role changed: ${behind.map(why).join('; ')}\n`);
  }
  return roles;
}

/** Shipping an inventory with uncommitted changes: hosts and the deploy log record a commit that does not hold it. */
function warnUncommitted(commit: string | null, inv: Inventory): void {
  if (commit?.endsWith('+dirty'))
    process.stderr.write(
      `warning: ${inv.file} has uncommitted changes: hosts and the deploy log will record commit ${commit.slice(0, 12)}+dirty, which does not hold what ships; commit first\n`,
    );
}

/**
 * After a ship: the roles whose rendered rules differ from what their hosts last received (this run
 * included), and the command that ships them. Not for a dry run (nothing changed).
 */
function leftBehind(report: ShipReport, inv: Inventory, opts: ShipOptions): ReportExtras {
  if (report.dryRun) return {};
  const behind = rolesBehind(hostsByRole(inv), roleDigests(inv, opts.out), lastReceived(readAudit(opts.auditLog)));
  const command = shipCommandFor(behind);
  const unknown = behind.flatMap((b) => b.unknown);
  const text: string[] = [];
  const changed = behind.filter((b) => b.hosts.length > 0);
  if (changed.length > 0) {
    text.push(
      '',
      `left behind: the rendered rules of ${changed.length} role(s) differ from what their hosts last received:`,
      ...changed.map((b) => `  ${b.role}: ${b.hosts.join(', ')}`),
      `ship them: ${command}   (or: fwgen ship --role changed)`,
    );
  }
  if (unknown.length > 0)
    text.push(
      '',
      `not in ${opts.auditLog} (never shipped from here; \`fwgen status\` compares them with ${opts.out}/): ${unknown.join(', ')}`,
    );
  return {
    json: {
      leftBehind: behind.map((b) => ({ role: b.role, hosts: b.hosts, unknown: b.unknown })),
      next: command ?? null,
    },
    text,
  };
}

/** The inventory's hosts, role by role (in the inventory's order of roles). */
function hostsByRole(inv: Inventory): Inventory['hosts'] {
  return inv.roles.flatMap((r) => r.hosts);
}
