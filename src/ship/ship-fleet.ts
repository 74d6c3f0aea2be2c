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

/** What a host sent back (a lock owner, an error line, rules in a diff) with its control characters escaped: printed and logged. */
function printableResult(r: HostResult): HostResult {
  return {
    ...r,
    reason: printable(r.reason),
    ...(r.diff !== undefined ? { diff: printable(r.diff, true) } : {}),
    ...(r.removed !== undefined ? { removed: r.removed.map((x) => printable(x)) } : {}),
  };
}

/** True when every host ended applied or unchanged (or would apply, in a dry run). */
export function fleetSucceeded(results: readonly HostResult[]): boolean {
  return results.every((r) => r.outcome === 'applied' || r.outcome === 'unchanged' || r.outcome === 'would-apply');
}
