import type { HostResult } from './ship-host.js';

/** The change a role's hosts share in a dry run: the diff once, and the hosts it applies to. */
export interface RoleChange {
  readonly diff: string;
  readonly reason: string;
  readonly hosts: readonly string[];
}

/** A host whose change is not its role's (leftovers removed, drift, a file of its own). */
export interface HostApart {
  readonly host: string;
  readonly reason: string;
  readonly removed: readonly string[];
  readonly diff: string;
}

/** One role's block of a dry run's summary. */
export interface RoleBlock {
  readonly role: string;
  /** The change most of its hosts would get; undefined when none would change. */
  readonly change?: RoleChange;
  readonly apart: readonly HostApart[];
  readonly unchanged: readonly string[];
  readonly failed: readonly { readonly host: string; readonly reason: string }[];
}

export interface DryRunSummary {
  readonly roles: readonly RoleBlock[];
}

/**
 * Pure: a dry run's results as one block per role (roles in the order they first appear): the change most
 * of the role's hosts would get, with those hosts; the hosts whose change differs apart; the unchanged and
 * failed hosts by name.
 */
export function summarizeDryRun(results: readonly HostResult[]): DryRunSummary {
  const roles = [...new Set(results.map((r) => r.role))];
  return {
    roles: roles.map((role) =>
      roleBlock(
        role,
        results.filter((r) => r.role === role),
      ),
    ),
  };
}

function roleBlock(role: string, results: readonly HostResult[]): RoleBlock {
  const changing = results.filter((r) => r.outcome === 'would-apply');
  const byDiff = new Map<string, HostResult[]>();
  for (const r of changing) byDiff.set(r.diff ?? '', [...(byDiff.get(r.diff ?? '') ?? []), r]);
  // The largest group is the role's change (the first one written, on a tie).
  const main = [...byDiff.values()].reduce<HostResult[] | undefined>(
    (best, g) => (!best || g.length > best.length ? g : best),
    undefined,
  );
  return {
    role,
    ...(main ? { change: { diff: main[0].diff ?? '', reason: main[0].reason, hosts: main.map((r) => r.host) } } : {}),
    apart: changing
      .filter((r) => !main?.includes(r))
      .map((r) => ({ host: r.host, reason: r.reason, removed: r.removed ?? [], diff: r.diff ?? '' })),
    unchanged: results.filter((r) => r.outcome === 'unchanged').map((r) => r.host),
    failed: results
      .filter((r) => r.outcome !== 'would-apply' && r.outcome !== 'unchanged')
      .map((r) => ({ host: r.host, reason: r.reason })),
  };
}
