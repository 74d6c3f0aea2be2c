import { WorkFailedError } from '../errors.js';
import type { Check, Level } from '../doctor/checks.js';
import { doctorFleet } from '../doctor/doctor-host.js';
import { inventoryChecks } from '../doctor/inventory-checks.js';
import { systemResolver } from '../doctor/name-checks.js';
import type { InternalOptions } from './internal.js';
import type { Host } from '../inventory/model.js';
import { describeReach } from '../remote/reach.js';
import { resolvePolicies } from '../resolve/resolve-policy.js';
import { remotePaths } from '../remote/scripts.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { positiveInt, sshForRun, type HostOptions } from './options.js';
import { waitProgress } from './progress.js';
import { printWarnings, renderProject } from './project.js';
import { printable } from '../util/printable.js';

export interface DoctorOptions extends HostOptions {
  offline?: boolean;
}

/** `fwgen doctor`: checks the inventory and (unless --offline) every selected host; exit 1 on any failure. */
export async function doctorCommand(opts: DoctorOptions, internal: InternalOptions = {}): Promise<void> {
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  const connectTimeoutMs = positiveInt(opts.connectTimeout, '--connect-timeout') * 1000;
  const project = renderProject({ ...opts, role: opts.role ?? 'all' });
  printWarnings(project.loaded.warnings);
  const inv = project.loaded.inventory;
  // Templates do not matter to any check: resolve with the base one.
  const policies = resolvePolicies(inv, () => 'base.rules.njk');
  const groups: Group[] = [
    {
      name: 'inventory',
      title: `inventory ${inv.file}`,
      checks: [...inventoryChecks(inv, policies), renderedCheck(project.changes, opts.out)],
    },
  ];
  // --offline still rejects unknown --host names, but needs no host at all.
  const hosts = opts.offline && !opts.host?.length ? [] : selectHosts(inv, project.roles, opts.host ?? []);
  if (!opts.offline) {
    process.stderr.write(`checking ${hosts.length} host(s), ${concurrency} at a time\n`);
    const progress = waitProgress(opts.json);
    const { transport, reaches } = sshForRun(opts, hosts, { progress });
    const deps = { transport, resolver: internal.resolver ?? systemResolver(), connectTimeoutMs, reaches };
    const stop = progress.run();
    const results = await doctorFleet(hosts, inv, remotePaths(inv), deps, concurrency).finally(() => {
      stop();
      transport.close?.();
    });
    hosts.forEach((h, i) =>
      groups.push({ name: h.name, title: hostTitle(h, describeReach(reaches.get(h.name)!)), checks: results[i] }),
    );
  }
  printReport(groups, !!opts.json);
  const failed = groups.filter((g) => g.checks.some((c) => c.level === 'fail'));
  const failures = groups.flatMap((g) => g.checks).filter((c) => c.level === 'fail').length;
  if (failed.length > 0)
    throw new WorkFailedError(
      `${failures} check(s) failed: ${failed.map((g) => g.name).join(', ')}`,
      'each failure above says how to fix it',
    );
}

interface Group {
  readonly name: string;
  readonly title: string;
  readonly checks: readonly Check[];
}

/** The report grouped by host on stdout, or with --json the checks as JSON on stdout. */
function printReport(groups: readonly Group[], json: boolean): void {
  const all = groups.flatMap((g) => g.checks);
  const text = groups.map((g) => `${g.title}\n${g.checks.map(formatCheck).join('\n')}\n`).join('\n');
  process.stdout.write(json ? `${JSON.stringify(all, null, 2)}\n` : text);
  const count = (l: Level) => all.filter((c) => c.level === l).length;
  process.stderr.write(`\n${count('ok')} ok, ${count('warn')} warning(s), ${count('fail')} failure(s)\n`);
}

/** One report line: `  ok    name: detail`, or with WARN / FAIL and the fix (what a host said, made printable). */
export function formatCheck(c: Check): string {
  const tag = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' }[c.level];
  return `  ${tag}  ${c.name}: ${printable(c.detail)}${c.fix ? `  → fix: ${printable(c.fix)}` : ''}`;
}

function hostTitle(h: Host, reach: string): string {
  return `${h.name} (role ${h.role}, ${reach})`;
}

function renderedCheck(changes: ReturnType<typeof renderProject>['changes'], out: string): Check {
  const stale = changes.filter((c) => c.status !== 'unchanged');
  if (stale.length === 0) return { name: 'rendered', level: 'ok', detail: `${out}/ matches the inventory` };
  return {
    name: 'rendered',
    level: 'warn',
    detail: `${out}/ is out of date: ${stale.map((c) => `${c.status} ${c.path}`).join(', ')}`,
    fix: 'run `fwgen render`, review and commit',
  };
}
