import { readAudit, shortCommit } from '../audit/audit-log.js';
import { WorkFailedError } from '../errors.js';
import { planShip } from '../ship/plan.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { allInSync, statusFleet, type HostStatus } from '../status/host-status.js';
import { orphanedHosts } from '../status/orphans.js';
import type { AgentStatus } from '../status/agent-status.js';
import { publishedSerials } from './published-serials.js';
import { positiveInt, sshForRun, type HostOptions } from './options.js';
import { waitProgress } from './progress.js';
import { printWarnings, renderProject } from './project.js';
import { table } from './table.js';
import { printable } from '../util/printable.js';

export interface StatusOptions extends HostOptions {
  acceptNew?: boolean;
  diff?: boolean;
  auditLog: string;
  /** Exit 1 when a foreign hook can get around fwgen's rules (HostStatus.bypass), even if in sync. */
  strict?: boolean;
  /** Pull mode: where the published serials are read (a tree or a URL); default: the first agent.origin. */
  published?: string;
}

/**
 * `fwgen status`: one line per host, in sync / drifted / never shipped / unreachable, then the hosts
 * the deploy log shows fwgen on that the inventory no longer has (orphaned); exit 1 unless every
 * inventory host is in sync.
 */
export async function statusCommand(opts: StatusOptions): Promise<void> {
  const project = renderProject({ ...opts, role: opts.role ?? 'all' });
  printWarnings(project.loaded.warnings);
  const stale = project.changes.filter((c) => c.status !== 'unchanged');
  if (stale.length > 0) {
    process.stderr.write(
      `warning: ${opts.out}/ does not match the inventory (${stale.map((c) => `${c.status}: ${c.path}`).join(', ')}); comparing the hosts with what ${opts.out}/ holds\n`,
    );
  }
  const inv = project.loaded.inventory;
  const planned = planShip(inv, selectHosts(inv, project.roles, opts.host ?? []), opts.out);
  const published = await releaseSerials(opts.published ?? inv.agent?.origins[0], planned);
  const jobs = planned.map((j) => (published.has(j.host.role) ? { ...j, published: published.get(j.host.role) } : j));
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  const settings = {
    acceptNew: !!opts.acceptNew,
    connectTimeoutMs: positiveInt(opts.connectTimeout, '--connect-timeout') * 1000,
  };
  process.stderr.write(`checking ${jobs.length} host(s), ${concurrency} at a time\n`);
  const progress = waitProgress(opts.json);
  const { transport } = sshForRun(
    opts,
    jobs.map((j) => j.host),
    { progress, keys: { auditLog: opts.auditLog, run: '-', inventory: inv.file, commit: null } },
  );
  const stop = progress.run();
  const results = await statusFleet(jobs, transport, settings, concurrency).finally(() => {
    stop();
    transport.close?.();
  });
  // Orphans are listed when the whole inventory is looked at: a subset says nothing of the others.
  const whole = !project.roles && !opts.host?.length;
  const orphans = whole ? orphanedHosts(readAudit(opts.auditLog), new Set(inv.hosts.map((h) => h.name))) : [];
  const rows = [...results, ...orphans];
  if (opts.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else process.stdout.write(formatStatus(rows, !!opts.diff));
  if (orphans.length > 0)
    process.stderr.write(
      `${orphans.length} orphaned host(s): fwgen shipped to them and they are no longer in the inventory: ${orphans.map((o) => o.host).join(', ')} (see "Removing fwgen from a host" in the README)\n`,
    );
  const bypassed = results.filter((r) => r.bypass?.length);
  if (bypassed.length > 0)
    process.stderr.write(
      `warning: on ${bypassed.map((r) => r.host).join(', ')}, another tool's chain ahead of fwgen's in INPUT can accept ` +
        `connections fwgen's rules reject${opts.strict ? '' : ' (--strict makes this a failure)'}\n`,
    );
  if (!allInSync(results)) {
    const bad = results.filter((r) => r.state !== 'in-sync');
    throw new WorkFailedError(
      `${bad.length} of ${results.length} host(s) not in sync: ${bad.map((r) => `${r.host} ${r.state}`).join(', ')}`,
    );
  }
  if (opts.strict && bypassed.length > 0)
    throw new WorkFailedError(
      `${bypassed.length} of ${results.length} host(s) in sync, but with a foreign chain that can get around fwgen's rules (--strict): ${bypassed.map((r) => r.host).join(', ')}`,
      "remove the hook or the chain's ACCEPT, or leave its chain out of preserve:",
    );
}

/** Pull mode: the published serial of each role of the jobs (a warning when some cannot be read). */
async function releaseSerials(source: string | undefined, jobs: readonly { host: { role: string } }[]) {
  if (source === undefined) return new Map<string, number>();
  const { serials, problems } = await publishedSerials(source, [...new Set(jobs.map((j) => j.host.role))]);
  if (problems.length > 0)
    process.stderr.write(`warning: published serials not read from ${source}: ${problems.join('; ')}\n`);
  return serials;
}

/**
 * A header row, then one aligned line per host, with warnings and (when asked) drift under it. What the
 * host sent (its state file, chain names, rules) is made printable.
 */
export function formatStatus(
  results: readonly HostStatus[],
  withDiff: boolean,
  now = Math.floor(Date.now() / 1000),
): string {
  const rows = results.map((r) =>
    [
      r.host,
      r.role,
      r.state,
      r.shipped ? r.shipped.fwgen : '-',
      r.shipped?.commit
        ? shortCommit(r.shipped.commit, 7)
        : r.lastShip?.commit
          ? shortCommit(r.lastShip.commit, 7)
          : '-',
      r.shipped
        ? r.shipped.shippedAt.replace(/\.\d+Z$/, 'Z')
        : r.lastShip
          ? r.lastShip.time.replace(/\.\d+Z$/, 'Z')
          : '-',
      r.backups === null ? '?' : String(r.backups),
      [
        r.agent ? agentColumn(r.agent, now) : '',
        r.foreign.length > 0 ? `foreign: ${r.foreign.join(', ')}` : '',
        r.reason ? `(${r.reason})` : '',
      ]
        .filter(Boolean)
        .join('  '),
    ].map((c) => printable(c)),
  );
  const lines = table(['HOST', 'ROLE', 'STATE', 'FWGEN', 'COMMIT', 'SHIPPED', 'BACKUPS', 'NOTES'], rows);
  return `${[
    lines[0],
    ...results.flatMap((r, i) => [
      lines[i + 1],
      ...[
        ...(r.bypass ?? []).map((b) => `warning: ${b}`),
        ...(withDiff ? [...r.drift, ...r.foreignRules.map((f) => `foreign rule: ${f}`)] : []),
      ].map((d) => `    ${printable(d)}`),
    ]),
  ].join('\n')}\n`;
}

/** `agent serial N (published M), last poll OUTCOME 42s ago`: what a pull agent last did. */
function agentColumn(a: AgentStatus, now: number): string {
  const published = a.published !== undefined && a.published !== a.serial ? ` (published ${a.published})` : '';
  const poll = a.poll > 0 ? `, last poll ${a.outcome} ${age(now - a.poll)} ago` : ', never polled';
  return `agent serial ${a.serial}${published}${poll}`;
}

function age(s: number): string {
  if (s < 120) return `${Math.max(0, s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
