import { readAudit } from '../audit/audit-log.js';
import { UsageError, WorkFailedError } from '../errors.js';
import { loadInventory } from '../inventory/load-inventory.js';
import type { Host, Inventory } from '../inventory/model.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { listBackups, type BackupEntry } from '../remote/backups.js';
import { remotePaths } from '../remote/scripts.js';
import type { Effects } from '../ship/ship-host.js';
import { checkBackupId, lastShipBackups, rollbackJobs } from '../ship/rollback-plan.js';
import { mapPool } from '../util/map-pool.js';
import { positiveInt } from './options.js';
import { printWarnings, selectRoles } from './project.js';
import { newRun, realEffects, runAndReport, settingsFor, type RunOptions } from './run-output.js';
import { table } from './table.js';

/** `fwgen backups`: no rendered folder, templates or audit log involved. */
export interface BackupsOptions {
  inventory: string;
  concurrency?: string;
  role?: string;
  host?: string[];
  connectTimeout: string;
  json?: boolean;
  acceptNew?: boolean;
  sshConfig?: string;
  auditLog?: string;
}

/** `fwgen rollback`: restores backups, so neither roles, rendered/ nor templates play a part. */
export interface RollbackOptions extends RunOptions {
  host?: string[];
  to?: string;
  wave?: string;
}

/** `fwgen rollback --host H [--to TS]` or `--wave last`: restore backups with the same test, dead-man switch and confirmation. */
export async function rollbackCommand(opts: RollbackOptions): Promise<void> {
  if (opts.wave !== undefined && opts.wave !== 'last')
    throw new UsageError(`--wave ${opts.wave}: only "last" is supported (the hosts the last ship applied)`);
  if (opts.wave === undefined && !opts.host?.length)
    throw new UsageError('say which host to roll back: --host NAME, or --wave last');
  if (opts.to !== undefined) checkBackupId(opts.to);
  const last = opts.wave === 'last' ? lastShipBackups(readAudit(opts.auditLog), opts.auditLog) : undefined;
  const inv = loadChecked(opts.inventory);
  const hosts = selectHosts(inv, undefined, last ? [...last.backups.keys()] : opts.host!);
  if (last) process.stderr.write(`rolling back run ${last.run}: ${hosts.length} host(s) to the backups it made\n`);
  const run = newRun(inv);
  const fx = realEffects(opts, hosts, run);
  let backups: Map<string, string>;
  try {
    backups = last ? new Map(last.backups) : await backupsToRestore(fx, hosts, inv, opts);
  } catch (err) {
    fx.close();
    throw err;
  }
  const jobs = rollbackJobs(inv, hosts, (h) => backups.get(h.name)!);
  const { settings, origin } = settingsFor(opts, inv, run, { force: true });
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  await runAndReport(
    {
      action: 'rollback',
      stages: [{ name: 'all', jobs }],
      staged: false,
      maxFailures: 0,
      concurrency,
      settings: { ...settings, agentHost: AGENT_HOST },
      origin,
    },
    opts,
    fx,
  );
}

/** A host running the pull agent: its next poll would put its release back over the rollback. */
const AGENT_HOST = (host: string) =>
  'the host runs the fwgen agent (pull mode): its next poll would put its release back; publish the rules it ' +
  `should run (\`fwgen publish\`, then \`fwgen agent poll --host ${host}\`), or take the agent off first ` +
  `(\`fwgen agent install --host ${host} --uninstall\`) and roll back`;

/** `--to TS` for every host, or each host's newest backup. */
async function backupsToRestore(
  fx: Effects,
  hosts: readonly Host[],
  inv: Inventory,
  opts: RollbackOptions,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const host of hosts) {
    const to = opts.to ?? (await hostBackups(fx, host, inv, opts))[0]?.ts;
    if (!to) throw new WorkFailedError(`host ${host.name} has no backups to roll back to`);
    out.set(host.name, to);
  }
  return out;
}

/** One backup a host keeps, as `backups --json` lists it. */
export type BackupRow = { readonly host: string; readonly role: string } & BackupEntry;

/** `fwgen backups`: the backups each selected host (every host by default) keeps, newest first. */
export async function backupsCommand(opts: BackupsOptions): Promise<void> {
  const inv = loadChecked(opts.inventory);
  const roles = selectRoles(
    opts.role ?? 'all',
    inv.roles.map((r) => r.name),
  );
  const hosts = selectHosts(inv, roles, opts.host ?? []);
  const fx = realEffects(opts, hosts);
  const rows: BackupRow[] = [];
  const failed: { host: string; reason: string }[] = [];
  const stop = fx.progress.run();
  const found = await mapPool(hosts, positiveInt(opts.concurrency ?? '10', '--concurrency'), async (host) => {
    try {
      return { host, backups: await hostBackups(fx, host, inv, opts) };
    } catch (err) {
      return { host, error: (err as Error).message };
    }
  }).finally(() => {
    stop();
    fx.close();
  });
  for (const f of found) {
    if (f.backups) rows.push(...f.backups.map((b) => ({ host: f.host.name, role: f.host.role, ...b })));
    else {
      failed.push({ host: f.host.name, reason: f.error! });
      process.stderr.write(`${f.host.name}: ${f.error}\n`);
    }
  }
  if (opts.json) process.stdout.write(`${JSON.stringify({ backups: rows, unreachable: failed }, null, 2)}\n`);
  else {
    const cells = rows.map((r) => [r.host, r.role, r.ts, r.size === null ? '- (no rules file then)' : String(r.size)]);
    process.stdout.write(`${table(['HOST', 'ROLE', 'BACKUP', 'BYTES'], cells).join('\n')}\n`);
  }
  if (failed.length > 0) throw new WorkFailedError(`${failed.length} host(s) could not be reached`);
}

async function hostBackups(fx: Effects, host: Host, inv: Inventory, opts: BackupsOptions): Promise<BackupEntry[]> {
  const session = await fx.transport.connect({
    name: host.name,
    ssh: host.ssh,
    acceptNew: !!opts.acceptNew,
    timeoutMs: Number(opts.connectTimeout) * 1000,
  });
  try {
    return await listBackups(session, remotePaths(inv));
  } finally {
    session.close();
  }
}

/** The inventory, validated, for commands that act on backups rather than on rendered/. */
function loadChecked(file: string): Inventory {
  const loaded = loadInventory(file);
  printWarnings(loaded.warnings);
  return loaded.inventory;
}
