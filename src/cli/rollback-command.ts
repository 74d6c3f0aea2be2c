import { readAudit } from '../audit/audit-log.js';
import { UsageError, WorkFailedError } from '../errors.js';
import { loadInventory } from '../inventory/load-inventory.js';
import type { Host, Inventory } from '../inventory/model.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { listBackups, type BackupEntry } from '../remote/backups.js';
import { remotePaths } from '../remote/scripts.js';
import type { Effects } from '../ship/ship-host.js';
import { checkBackupId, lastShipBackups, rollbackJobs } from '../ship/rollback-plan.js';
import { positiveInt } from './options.js';
import { printWarnings, selectRoles } from './project.js';
import { realEffects, runAndReport, settingsFor, type RunOptions } from './run-output.js';

/** `fwgen backups`: no rendered folder, templates or audit log involved. */
export interface BackupsOptions {
  inventory: string;
  role?: string;
  host?: string[];
  connectTimeout: string;
  json?: boolean;
  acceptNew?: boolean;
  sshConfig?: string;
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
  const fx = realEffects(opts, hosts);
  let backups: Map<string, string>;
  try {
    backups = last ? new Map(last.backups) : await backupsToRestore(fx, hosts, inv, opts);
  } catch (err) {
    fx.close();
    throw err;
  }
  const jobs = rollbackJobs(inv, hosts, (h) => backups.get(h.name)!);
  const { settings, origin } = settingsFor(opts, inv, true);
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  await runAndReport(
    {
      action: 'rollback',
      stages: [{ name: 'all', jobs }],
      staged: false,
      maxFailures: 0,
      concurrency,
      settings,
      origin,
    },
    opts,
    fx,
  );
}

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

/** `fwgen backups`: the backups each selected host keeps, newest first. */
export async function backupsCommand(opts: BackupsOptions): Promise<void> {
  if (!opts.role && !opts.host?.length) throw new UsageError('say which hosts: --role ROLE or --host NAME');
  const inv = loadChecked(opts.inventory);
  const roles = selectRoles(
    opts.role ?? 'all',
    inv.roles.map((r) => r.name),
  );
  const hosts = selectHosts(inv, roles, opts.host ?? []);
  const fx = realEffects(opts, hosts);
  const rows: ({ host: string } & BackupEntry)[] = [];
  let failed = 0;
  for (const host of hosts) {
    try {
      for (const b of await hostBackups(fx, host, inv, opts)) rows.push({ host: host.name, ...b });
    } catch (err) {
      failed++;
      process.stderr.write(`${host.name}: ${(err as Error).message}\n`);
    }
  }
  fx.close();
  if (opts.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else
    for (const r of rows)
      process.stdout.write(
        `${r.host.padEnd(20)} ${r.ts.padEnd(20)} ${r.size === null ? '(live snapshot only)' : `${r.size} bytes`}\n`,
      );
  if (failed > 0) throw new WorkFailedError(`${failed} host(s) could not be reached`);
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
