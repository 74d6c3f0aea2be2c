#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { FwgenError } from '../errors.js';
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
