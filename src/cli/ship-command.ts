import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import ipaddr from 'ipaddr.js';
import { LockoutError, UsageError, WorkFailedError } from '../errors.js';
import type { Inventory } from '../inventory/model.js';
import { evaluateInput, sourceAddressFor } from '../ship/lockout.js';
import { planShip, remotePaths, selectHosts } from '../ship/plan.js';
import { listBackupsScript } from '../ship/remote-scripts.js';
import { fleetSucceeded, shipFleet } from '../ship/ship-fleet.js';
import type { Effects, HostJob, HostResult, RunSettings } from '../ship/ship-host.js';
import { SshTransport } from '../ship/ssh-transport.js';
import { printWarnings, renderProject, VERSION } from './project.js';

export interface ShipOptions {
  inventory: string;
  out: string;
  templates?: string;
  role?: string;
  host?: string[];
  concurrency: string;
  dryRun?: boolean;
  timeout: string;
  connectTimeout: string;
  keep: string;
  force?: boolean;
  json?: boolean;
  acceptNew?: boolean;
}

const realEffects = (): Effects => ({ transport: new SshTransport(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)), now: () => Date.now() });

/** `fwgen ship`: check rendered/ is current and safe, then ship every selected host. */
export async function shipCommand(opts: ShipOptions): Promise<void> {
  if (!opts.role && !opts.host?.length) throw new UsageError('say which roles to ship: --role all, --role ROLE[,ROLE...] or --host NAME');
  const project = renderProject({ ...opts, role: opts.role ?? 'all' });
  printWarnings(project.loaded.warnings);
  const stale = project.changes.filter((c) => c.status !== 'unchanged');
  if (stale.length > 0) {
    throw new WorkFailedError(`${opts.out}/ does not match the inventory (${stale.map((c) => `${c.status}: ${c.path}`).join(', ')}); refusing to ship`, 'run `fwgen render`, review and commit, then ship');
  }
  const inv = project.loaded.inventory;
  const jobs = planShip(inv, selectHosts(inv, project.roles, opts.host ?? []), opts.out);
  if (!opts.dryRun && !testHook('skip-lockout-check')) await checkLockout(jobs);
  const settings = runSettings(opts, inv);
  await runFleet(jobs, settings, opts);
}

/** `fwgen rollback --host H [--to TS]`: restore a backup with the same test, dead-man switch and confirmation. */
export async function rollbackCommand(opts: ShipOptions & { to?: string }): Promise<void> {
  if (!opts.host?.length) throw new UsageError('say which host to roll back: --host NAME');
  if (opts.to !== undefined && !/^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$/.test(opts.to)) throw new UsageError(`--to ${opts.to} is not a backup timestamp (expected e.g. 20261121T183000Z, as \`fwgen backups\` lists)`);
  const project = renderProject({ ...opts, role: 'all' });
  const inv = project.loaded.inventory;
  const hosts = selectHosts(inv, undefined, opts.host);
  const fx = realEffects();
  const jobs: HostJob[] = [];
  for (const host of hosts) {
    const to = opts.to ?? (await listBackups(fx, host, inv, opts))[0]?.ts;
    if (!to) throw new WorkFailedError(`host ${host.name} has no backups to roll back to`);
    jobs.push({ host, paths: remotePaths(inv), v4: Buffer.alloc(0), v6: inv.hasIpv6 ? Buffer.alloc(0) : undefined, fromBackup: to });
  }
  await runFleet(jobs, { ...runSettings(opts, inv), force: true }, opts);
}

/** `fwgen backups`: the backups each selected host keeps, newest first. */
export async function backupsCommand(opts: ShipOptions): Promise<void> {
  if (!opts.role && !opts.host?.length) throw new UsageError('say which hosts: --role ROLE or --host NAME');
  const project = renderProject({ ...opts, role: opts.role ?? 'all' });
  const inv = project.loaded.inventory;
  const fx = realEffects();
  const rows: { host: string; ts: string; size: string }[] = [];
  let failed = 0;
  for (const host of selectHosts(inv, project.roles, opts.host ?? [])) {
    try {
      for (const b of await listBackups(fx, host, inv, opts)) rows.push({ host: host.name, ...b });
    } catch (err) {
      failed++;
      process.stderr.write(`${host.name}: ${(err as Error).message}\n`);
    }
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else for (const r of rows) process.stdout.write(`${r.host.padEnd(20)} ${r.ts.padEnd(20)} ${r.size === '-' ? '(live snapshot only)' : `${r.size} bytes`}\n`);
  if (failed > 0) throw new WorkFailedError(`${failed} host(s) could not be reached`);
}

async function listBackups(fx: Effects, host: HostJob['host'], inv: Inventory, opts: ShipOptions): Promise<{ ts: string; size: string }[]> {
  const session = await fx.transport.connect({ name: host.name, ssh: host.ssh, acceptNew: !!opts.acceptNew, timeoutMs: Number(opts.connectTimeout) * 1000 });
  try {
    const r = await session.run(listBackupsScript({ paths: remotePaths(inv), id: 'list', ipv6: inv.hasIpv6 }));
    return r.stdout.split('\n').filter(Boolean).map((l) => {
      const [ts, size] = l.split(' ');
      return { ts, size };
    });
  } finally {
    session.close();
  }
}

async function runFleet(jobs: HostJob[], settings: RunSettings, opts: ShipOptions): Promise<void> {
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  const verb = opts.dryRun ? 'checking' : 'shipping';
  process.stderr.write(`${verb} ${jobs.length} host(s), ${concurrency} at a time (run ${settings.id})\n`);
  const results = await shipFleet(jobs, settings, realEffects(), concurrency, (r) => {
    process.stderr.write(`${r.outcome.padEnd(11)} ${r.host} (${r.role}) ${r.reason} [${(r.ms / 1000).toFixed(1)}s]\n`);
    if (r.diff) process.stderr.write(`${r.diff}\n`);
  });
  printSummary(results);
  if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  if (!fleetSucceeded(results)) {
    const bad = results.filter((r) => !['applied', 'unchanged', 'would-apply'].includes(r.outcome));
    throw new WorkFailedError(`${bad.length} of ${results.length} host(s) did not get the new rules: ${bad.map((r) => `${r.host} ${r.outcome}`).join(', ')}`);
  }
}

function printSummary(results: readonly HostResult[]): void {
  const rows = [['HOST', 'ROLE', 'OUTCOME', 'TIME', 'REASON'], ...results.map((r) => [r.host, r.role, r.outcome, `${(r.ms / 1000).toFixed(1)}s`, r.reason])];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  process.stderr.write('\n');
  for (const r of rows) process.stderr.write(`${r.slice(0, 4).map((c, i) => c.padEnd(widths[i])).join('  ')}  ${r[4]}\n`);
  const count = (o: string) => results.filter((r) => r.outcome === o).length;
  process.stderr.write(`\n${results.length} host(s): ${['applied', 'unchanged', 'would-apply', 'rolled-back', 'failed'].map((o) => `${count(o)} ${o}`).join(', ')}\n`);
}

/** Refuses (exit 2) a ruleset that would not admit this machine's SSH connection to a host. */
async function checkLockout(jobs: readonly HostJob[]): Promise<void> {
  const problems: string[] = [];
  await Promise.all(
    jobs.map(async (job) => {
      const { host, port } = job.host.ssh;
      let source: string;
      try {
        source = await sourceAddressFor(host, port);
      } catch {
        return; // no route or no name: the connection itself will fail and say why.
      }
      const v6 = ipaddr.IPv6.isValid(source) && source.includes(':') && !source.startsWith('::ffff:');
      const rules = v6 ? job.v6 : job.v4;
      if (!rules) return;
      const verdict = evaluateInput(rules.toString('utf8'), { source, dport: port });
      if (!verdict.admitted) problems.push(`${job.host.name}: the new rules would not admit SSH from ${source} to port ${port} (decided by: ${verdict.rule})`);
    }),
  );
  if (problems.length > 0) {
    throw new LockoutError(`refusing to ship: it would lock this machine out\n${problems.sort().join('\n')}`, 'add this machine\'s network to `management` (or ship from a management host); nothing was shipped');
  }
}

function runSettings(opts: ShipOptions, inv: Inventory): RunSettings {
  const id = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}Z-${randomBytes(3).toString('hex')}`;
  const who = `${userInfo().username}@${hostname()}`;
  const commit = inventoryCommit(inv.dir);
  return {
    id,
    owner: `${who} run ${id} pid ${process.pid} since ${new Date().toISOString()}`,
    timeoutS: positiveInt(opts.timeout, '--timeout'),
    keep: positiveInt(opts.keep, '--keep'),
    force: !!opts.force,
    dryRun: !!opts.dryRun,
    acceptNew: !!opts.acceptNew,
    connectTimeoutMs: positiveInt(opts.connectTimeout, '--connect-timeout') * 1000,
    stateJson: (job, backup) =>
      JSON.stringify({ fwgen: VERSION, run: id, role: job.host.role, host: job.host.name, inventory: inv.file, commit, shippedAt: new Date().toISOString(), shippedBy: who, backup: backup ?? null, restoredFrom: job.fromBackup ?? null }),
  };
}

function inventoryCommit(dir: string): string | null {
  try {
    const head = execFileSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--', '.'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${value} is not a positive whole number`);
  return n;
}

/** Test-only hooks, set through FWGEN_TEST_HOOKS; never needed in normal use. */
function testHook(name: string): boolean {
  return (process.env.FWGEN_TEST_HOOKS ?? '').split(',').includes(name);
}

