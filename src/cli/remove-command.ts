import { appendAudit } from '../audit/audit-log.js';
import { UsageError } from '../errors.js';
import { loadInventory } from '../inventory/load-inventory.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { runBootRemove } from '../remote/boot-hook.js';
import { forgetEntry, removeJobs } from '../ship/remove-plan.js';
import { positiveInt } from './options.js';
import { printWarnings } from './project.js';
import { newRun, realEffects, runAndReport, settingsFor, type RunOptions } from './run-output.js';

/** `fwgen remove`: acts on named hosts only, never on a role or the fleet at once. */
export interface RemoveOptions extends RunOptions {
  host?: string[];
  forget?: boolean;
}

/**
 * `fwgen remove --host H...`: takes fwgen off hosts of the inventory (its chains, hooks and ipsets, with the
 * same test, backup, dead-man switch and confirmation as a ship; then its boot hook or unit, boot marker and
 * state file). `--forget`: hosts no longer in the inventory are marked removed in the deploy log, uncontacted.
 */
export async function removeCommand(opts: RemoveOptions): Promise<void> {
  if (!opts.host?.length) throw new UsageError('say which hosts: --host NAME...');
  const loaded = loadInventory(opts.inventory);
  printWarnings(loaded.warnings);
  const inv = loaded.inventory;
  const run = newRun(inv);
  if (opts.forget) return forget(opts, opts.host, new Set(inv.hosts.map((h) => h.name)), run, inv.file);
  const hosts = selectHosts(inv, undefined, opts.host);
  const fx = realEffects(opts, hosts, run);
  const { settings, origin } = settingsFor(opts, inv, run, { force: true });
  await runAndReport(
    {
      action: 'remove',
      stages: [{ name: 'all', jobs: removeJobs(inv, hosts) }],
      staged: false,
      maxFailures: 0,
      concurrency: positiveInt(opts.concurrency, '--concurrency'),
      // After the rules, the boot step takes fwgen's boot hook off (a marker no host holds: it always runs).
      settings: {
        ...settings,
        persist: { marker: '-', run: (session, vars) => runBootRemove(session, vars.paths) },
        agentHost: (host) =>
          "the host runs the fwgen agent (pull mode): its next poll would put fwgen's rules back; take the agent " +
          `off first (\`fwgen agent install --host ${host} --uninstall\`), then remove`,
      },
      origin,
    },
    opts,
    fx,
    () => ({
      text: [
        '',
        `fwgen is off ${hosts.map((h) => h.name).join(', ')}: delete them from the inventory (and render) so that no ship puts it back`,
      ],
    }),
  );
}

function forget(
  opts: RemoveOptions,
  names: readonly string[],
  inventory: ReadonlySet<string>,
  run: ReturnType<typeof newRun>,
  file: string,
): void {
  const still = names.filter((n) => inventory.has(n));
  if (still.length > 0)
    throw new UsageError(
      `--forget is for hosts no longer in the inventory; ${still.join(', ')} still are`,
      '`fwgen remove --host H` takes fwgen off a host of the inventory',
    );
  const entry = forgetEntry(
    names,
    { run: run.id, who: run.who, inventory: file, commit: run.commit },
    new Date().toISOString(),
  );
  appendAudit(opts.auditLog, entry);
  if (opts.json) process.stdout.write(`${JSON.stringify({ run: run.id, forgotten: names }, null, 2)}\n`);
  else process.stdout.write(`marked removed in ${opts.auditLog} (not contacted): ${names.join(', ')}\n`);
}
