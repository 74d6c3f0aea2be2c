import { mapPool } from '../util/map-pool.js';
import { printable } from '../util/printable.js';
import { shipHost, type Effects, type HostJob, type HostResult, type RunSettings } from './ship-host.js';

/** Ships hosts in parallel, at most `concurrency` at once; one host's failure never stops the others. */
export function shipFleet(
  jobs: readonly HostJob[],
  s: RunSettings,
  fx: Effects,
  concurrency: number,
  onResult: (r: HostResult) => void = () => {},
): Promise<HostResult[]> {
  const one = (job: HostJob): Promise<HostResult> =>
    shipHost(job, s, fx).then(printableResult, (err: unknown) => ({
      host: job.host.name,
      role: job.host.role,
      outcome: 'failed' as const,
      reason: `internal error: ${printable((err as Error)?.message ?? String(err))}`,
      ms: 0,
    }));
  return mapPool(jobs, concurrency, one, onResult);
}

/**
 * What a host sent back (a lock owner, an error line, rules in a diff or removed or put back, native
 * chains, the rule a lockout names, the ship a rollback returns to) with its control characters
 * escaped: printed and logged.
 */
export function printableResult(r: HostResult): HostResult {
  const all = (xs: readonly string[]) => xs.map((x) => printable(x));
  const runs = r.restore?.runs;
  return {
    ...r,
    reason: printable(r.reason),
    ...(r.diff !== undefined ? { diff: printable(r.diff, true) } : {}),
    ...(r.removed !== undefined ? { removed: all(r.removed) } : {}),
    ...(r.restored !== undefined ? { restored: all(r.restored) } : {}),
    ...(r.native !== undefined ? { native: all(r.native) } : {}),
    ...(r.restore && runs
      ? {
          restore: {
            ...r.restore,
            runs: {
              fwgen: printable(runs.fwgen),
              commit: runs.commit === null ? null : printable(runs.commit),
              shippedAt: printable(runs.shippedAt),
              shippedBy: printable(runs.shippedBy),
            },
          },
        }
      : {}),
    ...(r.lockout
      ? {
          lockout: {
            ...r.lockout,
            rule: printable(r.lockout.rule),
            ...(r.lockout.table !== undefined ? { table: printable(r.lockout.table) } : {}),
            ...(r.lockout.chain !== undefined ? { chain: printable(r.lockout.chain) } : {}),
            ...(r.lockout.packets !== undefined ? { packets: printable(r.lockout.packets) } : {}),
            ...(r.lockout.why !== undefined ? { why: printable(r.lockout.why) } : {}),
          },
        }
      : {}),
  };
}

/** True when every host ended applied or unchanged (or would apply, in a dry run). */
export function fleetSucceeded(results: readonly HostResult[]): boolean {
  return results.every((r) => r.outcome === 'applied' || r.outcome === 'unchanged' || r.outcome === 'would-apply');
}
