import type Ipaddr from 'ipaddr.js';
import { LockoutError, UsageError, WorkFailedError } from '../errors.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { checkLockout } from '../lockout/check-hosts.js';
import { planShip } from '../ship/plan.js';
import { parseWaves, planStages } from '../ship/rollout.js';
import { requireCjs } from '../util/require-cjs.js';
import type { InternalOptions } from './internal.js';
import { nonNegativeInt, positiveInt, type HostOptions } from './options.js';
import { printWarnings, renderProject } from './project.js';
import { realEffects, runAndReport, settingsFor } from './run-output.js';

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
  persist?: boolean;
  /** `--from ADDR`: the address hosts see SSH come from (NAT); overrides ssh.source. */
  from?: string;
  breakLock?: boolean;
  /** `--force-lockout-risk`: ship even where the live rules after the change may cut SSH (the dead-man switch stays). */
  forceLockoutRisk?: boolean;
}

/** `fwgen ship`: check rendered/ is current and safe, then ship every selected host. */
export async function shipCommand(opts: ShipOptions, internal: InternalOptions = {}): Promise<void> {
  if (!opts.role && !opts.host?.length)
    throw new UsageError('say which roles to ship: --role all, --role ROLE[,ROLE...] or --host NAME');
  if (opts.from !== undefined && !ipaddr.isValid(opts.from))
    throw new UsageError(`--from ${opts.from} is not an IP address`);
  const project = renderProject({ ...opts, role: opts.role ?? 'all' });
  printWarnings(project.loaded.warnings);
  const stale = project.changes.filter((c) => c.status !== 'unchanged');
  if (stale.length > 0) {
    throw new WorkFailedError(
      `${opts.out}/ does not match the inventory (${stale.map((c) => `${c.status}: ${c.path}`).join(', ')}); refusing to ship`,
      'run `fwgen render`, review and commit, then ship',
    );
  }
  const inv = project.loaded.inventory;
  const jobs = planShip(inv, selectHosts(inv, project.roles, opts.host ?? []), opts.out);
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
  const { settings: base, origin } = settingsFor(opts, inv);
  let settings = base;
  const fx = realEffects(
    opts,
    jobs.map((j) => j.host),
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
    // Each host checks again after its read, over its live rules as the change leaves them.
    settings = { ...settings, lockout: { sources: verdict.sources, force: !!opts.forceLockoutRisk } };
  }
  await runAndReport({ action: 'ship', stages, staged, maxFailures, concurrency, settings, origin }, opts, fx);
}
