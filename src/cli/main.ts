#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { FwgenError, InputError } from '../errors.js';
import { printWarnings, renderProject, VERSION } from './project.js';
import { renderCommand } from './render-command.js';

const DEFAULT_INVENTORY = 'inventory/inventory.yaml';

function buildProgram(): Command {
  const program = new Command('fwgen')
    .description('Git-driven iptables rules generator with safe SSH deployment')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('validate')
    .description('validate the inventory and templates; write nothing')
    .option('-i, --inventory <path>', 'inventory file', DEFAULT_INVENTORY)
    .option('--templates <dir>', 'templates folder (default: templates/ beside the inventory)')
    .action((opts: { inventory: string; templates?: string }) => {
      const project = renderProject({ ...opts, out: 'rendered' });
      printWarnings(project.loaded.warnings);
      const inv = project.loaded.inventory;
      process.stderr.write(`${opts.inventory}: valid (${inv.roles.length} roles, ${inv.hosts.length} hosts)\n`);
    });

  program
    .command('render')
    .description('render one iptables.up.rules (and ip6tables.up.rules) per role into the output folder')
    .option('-i, --inventory <path>', 'inventory file', DEFAULT_INVENTORY)
    .option('-o, --out <dir>', 'output folder', 'rendered')
    .option('--templates <dir>', 'templates folder (default: templates/ beside the inventory)')
    .option('-r, --role <names>', 'only these roles (comma-separated) or all', 'all')
    .option('--check', 'write nothing; exit 1 if the output folder is stale')
    .option('--json', 'print the file changes as JSON on stdout')
    .action(renderCommand);

  /** Options of every command that talks to hosts. */
  const hostOptions = (cmd: Command): Command =>
    cmd
      .option('-i, --inventory <path>', 'inventory file', DEFAULT_INVENTORY)
      .option('-o, --out <dir>', 'rendered folder', 'rendered')
      .option('--templates <dir>', 'templates folder (default: templates/ beside the inventory)')
      .option('-r, --role <names>', 'roles: all, or ROLE[,ROLE...]')
      .option('--host <names...>', 'only these hosts')
      .option('--concurrency <n>', 'hosts at a time', '10')
      .option('--connect-timeout <s>', 'seconds to wait for an SSH connection', '10')
      .option('--ssh-config <path>', 'ssh_config file for hosts\' settings and jump hosts, or none (default ~/.ssh/config)')
      .option('--json', 'print the results as JSON on stdout');
  const shipOptions = (cmd: Command): Command =>
    hostOptions(cmd)
      .option('--accept-new', 'trust and record host keys not yet in known_hosts')
      .option('--audit-log <path>', 'deploy log (one JSON line per ship, rollback and halt)', '.fwgen/deploy.log');

  // Ship code (and ssh2) loads only for the commands that need it, keeping `render` fast.
  const ship = async () => import('./ship-command.js');

  shipOptions(program.command('ship'))
    .description('push each role\'s rules to its hosts over SSH: test, back up, apply atomically, confirm or roll back')
    .option('--dry-run', 'connect and show each host\'s diff; change nothing')
    .option('--timeout <s>', 'dead-man switch: seconds before an unconfirmed host restores its previous rules', '30')
    .option('--keep <n>', 'backups to keep on each host', '10')
    .option('--force', 'apply even where the host already runs these rules')
    .option('--break-lock', 'take over a host\'s lock even if its holder may still be running')
    .option('--persist', 'install a boot hook on hosts where nothing loads the rules at boot')
    .option('--canary <n>', 'staged rollout: ship N hosts (spread over roles) first')
    .option('--waves <list>', 'staged rollout: then cumulative shares of the fleet, e.g. 10%,50%,100%')
    .option('--max-failures <k>', 'staged rollout: halt after a stage with more than K failures', '0')
    .option('--from <addr>', 'lockout check: the address hosts see SSH come from (behind NAT); overrides ssh.source')
    .action(async (opts) => (await ship()).shipCommand(opts));

  shipOptions(program.command('backups'))
    .description('list the rules backups kept on hosts')
    .action(async (opts) => (await ship()).backupsCommand(opts));

  shipOptions(program.command('rollback'))
    .description('restore a backup on a host, with the same test, dead-man switch and confirmation as ship')
    .option('--to <timestamp>', 'the backup to restore (default: the newest)')
    .option('--wave <which>', '"last": roll back every host the last ship applied, to the backup it made')
    .option('--timeout <s>', 'dead-man switch timeout in seconds', '30')
    .option('--keep <n>', 'backups to keep on each host', '10')
    .option('--break-lock', 'take over a host\'s lock even if its holder may still be running')
    .action(async (opts) => (await ship()).rollbackCommand(opts));

  hostOptions(program.command('status'))
    .option('--accept-new', 'trust and record host keys not yet in known_hosts')
    .description('for each host: in sync, drifted, never shipped or unreachable; exit 1 unless all are in sync')
    .option('--diff', 'print the drift of each host under its line')
    .action(async (opts) => (await import('./status-command.js')).statusCommand(opts));

  program
    .command('log')
    .description('print the deploy log: every ship, rollback and halt')
    .option('--audit-log <path>', 'deploy log', '.fwgen/deploy.log')
    .option('-n, --last <n>', 'only the last N entries')
    .option('--json', 'print the entries as JSON lines')
    .action(async (opts: { auditLog: string; last?: string; json?: boolean }) => (await import('./log-command.js')).logCommand(opts));

  // No --accept-new on doctor: it only looks, and never writes to known_hosts.
  hostOptions(program.command('doctor'))
    .description('check the inventory and each host (SSH, iptables backend, boot persistence, other firewalls, leftovers): ok / warn / fail, each with a fix')
    .option('--offline', 'check the inventory alone; contact no host')
    .action(async (opts) => (await import('./doctor-command.js')).doctorCommand(opts));

  return program;
}

/** Runs the CLI; only here do errors become stderr text and exit codes. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander already printed the message; --help and --version are successes.
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof InputError) {
    process.stderr.write(`${err.message}\n`);
    if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    return err.exitCode;
  }
  if (err instanceof FwgenError) {
    process.stderr.write(`fwgen: ${err.message}\n`);
    if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    return err.exitCode;
  }
  process.stderr.write(`fwgen: internal error (a bug; please report it):\n${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
