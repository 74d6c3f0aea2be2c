import { shipHost, type Effects, type HostJob, type HostResult, type RunSettings } from './ship-host.js';

/** Ships hosts in parallel, at most `concurrency` at once; one host's failure never stops the others. */
export async function shipFleet(jobs: readonly HostJob[], s: RunSettings, fx: Effects, concurrency: number, onResult: (r: HostResult) => void = () => {}): Promise<HostResult[]> {
  const results: HostResult[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await shipHost(jobs[i], s, fx).catch((err: unknown) => ({
        host: jobs[i].host.name,
        role: jobs[i].host.role,
        outcome: 'failed' as const,
        reason: `internal error: ${(err as Error)?.message ?? String(err)}`,
        ms: 0,
      }));
      onResult(results[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, jobs.length)) }, worker));
  return results;
}

/** True when every host ended applied or unchanged (or would apply, in a dry run). */
export function fleetSucceeded(results: readonly HostResult[]): boolean {
  return results.every((r) => r.outcome === 'applied' || r.outcome === 'unchanged' || r.outcome === 'would-apply');
}
