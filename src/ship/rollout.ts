import { UsageError } from '../errors.js';
import type { Host } from '../inventory/model.js';
import type { HostJob } from './ship-host.js';

/** One step of a staged rollout. */
export interface Stage<J extends { readonly host: Host } = HostJob> {
  readonly name: string;
  readonly jobs: readonly J[];
}

/** Parses `--waves 10%,50%,100%` (cumulative shares of the fleet); the last wave must reach 100%. */
export function parseWaves(spec: string): number[] {
  const waves = spec.split(',').map((w) => w.trim());
  const shares = waves.map((w) => {
    const m = /^([0-9]{1,3})%$/.exec(w);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 100)
      throw new UsageError(`--waves: "${w}" is not a share of the fleet (expected e.g. 10%,50%,100%)`);
    return Number(m[1]);
  });
  if (shares.some((s, i) => i > 0 && s <= shares[i - 1]))
    throw new UsageError(`--waves ${spec}: shares must grow (expected e.g. 10%,50%,100%)`);
  if (shares[shares.length - 1] !== 100) throw new UsageError(`--waves ${spec}: the last wave must be 100%`);
  return shares;
}

/**
 * Orders hosts so that every prefix is spread over roles (round robin over roles by name, hosts by
 * name), then cuts: `canary` hosts first, then each wave up to its cumulative share of the fleet.
 */
export function planStages<J extends { readonly host: Host } = HostJob>(
  jobs: readonly J[],
  canary: number,
  waves: readonly number[],
): Stage<J>[] {
  const order = spreadOverRoles(jobs);
  const stages: Stage<J>[] = [];
  let done = 0;
  if (canary > 0) {
    stages.push({ name: 'canary', jobs: order.slice(0, canary) });
    done = Math.min(canary, order.length);
  }
  waves.forEach((share, i) => {
    const upTo = Math.max(done, Math.ceil((order.length * share) / 100));
    if (upTo > done) stages.push({ name: `wave ${i + 1} (${share}%)`, jobs: order.slice(done, upTo) });
    done = upTo;
  });
  return stages;
}

function spreadOverRoles<J extends { readonly host: Host }>(jobs: readonly J[]): J[] {
  const byRole = new Map<string, J[]>();
  for (const job of [...jobs].sort((a, b) => (a.host.name < b.host.name ? -1 : 1))) {
    const list = byRole.get(job.host.role) ?? [];
    list.push(job);
    byRole.set(job.host.role, list);
  }
  const queues = [...byRole.keys()].sort().map((r) => byRole.get(r)!);
  const out: J[] = [];
  while (out.length < jobs.length) for (const q of queues) if (q.length > 0) out.push(q.shift()!);
  return out;
}
