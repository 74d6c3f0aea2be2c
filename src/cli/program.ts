import type * as Commander from 'commander';
import { FwgenError, InputError } from '../errors.js';
import { VERSION } from './project.js';
import { renderCommand, validateCommand } from './render-command.js';
import type { InternalOptions } from './internal.js';

export type { InternalOptions } from './internal.js';
import { requireCjs } from '../util/require-cjs.js';

const { Command, CommanderError, Help, Option } = requireCjs('commander') as typeof Commander;
type Command = Commander.Command;
type Help = Commander.Help;
type Option = Commander.Option;

const DEFAULT_INVENTORY = 'inventory/inventory.yaml';

const EXIT_CODES = `
Exit codes: 0 success; 1 the work failed (a host not applied, stale files, a check failed);
            2 bad input or usage (each inventory problem as FILE:LINE:COL).`;

/** Help with defaults shown as typed (`default: rendered`), not as JSON strings. */
class FwgenHelp extends Help {
  override optionDescription(option: Option): string {
    const base = option.description;
    if (option.defaultValue === undefined || option.negate || typeof option.defaultValue === 'boolean') return base;
    const shown = option.defaultValueDescription ?? String(option.defaultValue);
    return `${base} (default: ${shown})`;
  }
}

/** Commands whose help shows defaults as typed (FwgenHelp), for every subcommand too. */
class FwgenCommand extends Command {
  override createCommand(name?: string): Command {
    return new FwgenCommand(name);
  }
  override createHelp(): Help {
    return Object.assign(new FwgenHelp(), this.configureHelp());
  }
}

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n${EXIT_CODES}\n`;
}

/** One definition per option, so every command that takes it says the same. */
const opt = {
  inventory: () => new Option('-i, --inventory <path>', 'inventory file').default(DEFAULT_INVENTORY),
  out: (what = 'output folder') => new Option('-o, --out <dir>', what).default('rendered'),
  templates: () => new Option('--templates <dir>', 'templates folder (default: templates/ beside the inventory)'),
  role: (what = 'roles: all, or ROLE[,ROLE...]') => new Option('-r, --role <names>', what),
  host: () => new Option('--host <names...>', 'only these hosts'),
  concurrency: () => new Option('--concurrency <n>', 'hosts at a time').default('10'),
  connectTimeout: () => new Option('--connect-timeout <s>', 'seconds to wait for an SSH connection').default('10'),
  stepTimeout: () =>
    new Option(
      '--step-timeout <s>',
      'seconds a remote step may run before its host fails (the apply step: plus --timeout and 120)',
    ).default('120'),
  json: (what = 'print the results as JSON on stdout') => new Option('--json', what),
  acceptNew: () => new Option('--accept-new', 'trust and record host keys not yet in known_hosts'),
  auditLog: () =>
    new Option('--audit-log <path>', 'deploy log (one JSON line per ship, rollback and halt)').default(
      '.fwgen/deploy.log',
    ),
  timeout: () =>
    new Option(
      '--timeout <s>',
      'dead-man switch: seconds before an unconfirmed host restores its previous rules',
    ).default('30'),
  keep: () => new Option('--keep <n>', 'backups to keep on each host').default('10'),
  sshConfig: () =>
    new Option(
      '--ssh-config <path>',
      "ssh_config for hosts' settings and jump hosts, or none (default: ~/.ssh/config)",
    ),
  from: () =>
    new Option(
      '--from <addr>',
      'lockout check: the address hosts see SSH come from (behind NAT); overrides ssh.source',
    ),
  breakLock: () => new Option('--break-lock', "take over a host's lock even if the run holding it may still be alive"),
};

function withOptions(cmd: Command, options: readonly Option[]): Command {
  for (const o of options) cmd.addOption(o);
  return cmd;
}

function buildProgram(internal: InternalOptions): Command {
  const program = new FwgenCommand('fwgen')
    .description('Git-driven iptables rules generator with safe SSH deployment')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', `\nStart with: fwgen init my-firewall\n${EXIT_CODES}\n`);

  program
    .command('init')
    .argument('[dir]', 'folder for the new repository, created if missing (default: the current folder)')
    .description('scaffold an inventory repository: inventory, templates/, rendered/, package.json, CI workflow')
    .addHelpText('after', examples('fwgen init my-firewall', 'npx fwgen init .'))
    .action(async (dir: string | undefined) => (await import('./init-command.js')).initCommand(dir));

  withOptions(program.command('validate'), [
    opt.inventory(),
    opt.templates(),
    opt.json('print the result (roles, hosts, warnings) as JSON on stdout'),
  ])
    .description('validate the inventory and templates; write nothing')
    .addHelpText('after', examples('fwgen validate', 'fwgen validate -i staging/inventory.yaml'))
    .action(validateCommand);

  withOptions(program.command('render'), [
    opt.inventory(),
    opt.out(),
    opt.templates(),
    opt.role('only these roles (comma-separated) or all').default('all'),
    new Option('--check', 'write nothing; exit 1 if the output folder is stale'),
    opt.json('print the file changes as JSON on stdout'),
  ])
    .description('render one iptables.up.rules (and ip6tables.up.rules) per role into the output folder')
    .addHelpText('after', examples('fwgen render', 'fwgen render --check', 'fwgen render --role web,db -o out'))
    .action(renderCommand);

  withOptions(program.command('query'), [
    opt.inventory(),
    opt.out('rendered folder'),
    new Option('--from <src>', 'source: a host, a role, an address or a CIDR').makeOptionMandatory(),
    new Option('--to <dst>', 'destination: a host or a role').makeOptionMandatory(),
    new Option('--port <proto/n>', 'tcp/N or udp/N (default: list every port SRC may reach)'),
    new Option('--in <iface>', 'interface the packet arrives on (default: internal one for inventory hosts)'),
    opt.json('print the answer as JSON on stdout'),
  ])
    .description('can SRC reach DST (on a port), and which rendered rule decides? exit 0 allowed, 1 not')
    .addHelpText(
      'after',
      examples('fwgen query --from worker --to db --port tcp/5432', 'fwgen query --from 192.0.2.7 --to web1'),
    )
    .action(async (opts) => (await import('./query-command.js')).queryCommand(opts));

  withOptions(program.command('diff'), [
    opt.inventory(),
    opt.templates(),
    new Option('--format <format>', 'text, md (pull requests, job summaries) or json').default('text'),
    new Option('--exit-code', 'exit 1 when access changed, 0 when not'),
    new Option('--max-bytes <n>', 'cut the output at a line boundary below N bytes (job summaries)'),
  ])
    .argument('[base]', 'git revision of the inventory before (default: HEAD)')
    .argument('[head]', 'git revision after (default: the working tree)')
    .description('access that changed between two revisions of the inventory, as sentences a reviewer can approve')
    .addHelpText('after', examples('fwgen diff', 'fwgen diff main', 'fwgen diff HEAD^1 HEAD --format md'))
    .action(async (base, head, opts) => (await import('./diff-command.js')).diffCommand(base, head, opts));

  // Ship code (and ssh2) loads only for the commands that need it, keeping `render` fast.
  const ship = async () => import('./ship-command.js');
  const connection = () => [opt.connectTimeout(), opt.stepTimeout(), opt.json(), opt.acceptNew(), opt.sshConfig()];
  // What ship, status and doctor act on: the rendered roles and hosts.
  const target = (role = opt.role()) => [
    opt.inventory(),
    opt.out('rendered folder'),
    opt.templates(),
    role,
    opt.host(),
    opt.concurrency(),
  ];

  withOptions(program.command('ship'), [
    ...target(opt.role('roles: all, changed (whose rules differ from what their hosts last got), or ROLE[,ROLE...]')),
    ...connection(),
    opt.auditLog(),
    new Option('--dry-run', "connect and show each role's change, and hosts that differ from it; change nothing"),
    new Option('--verbose', "with --dry-run: every host's full change"),
    opt.timeout(),
    opt.keep(),
    new Option('--force', 'apply even where the host already runs these rules'),
    opt.breakLock(),
    opt.from(),
    new Option(
      '--no-persist',
      'do not make the rules load at boot (by default ship installs a boot hook where none loads them)',
    ),
    new Option('--persist', 'the default (kept for scripts): make the rules load at boot'),
    new Option('--canary <n>', 'staged rollout: ship N hosts (spread over roles) first'),
    new Option('--waves <list>', 'staged rollout: then cumulative shares of the fleet, e.g. 10%,50%,100%'),
    new Option('--max-failures <k>', 'staged rollout: halt after a stage with more than K failures').default('0'),
  ])
    .description("push each role's rules to its hosts over SSH: test, back up, apply atomically, confirm or roll back")
    .addHelpText(
      'after',
      examples(
        'fwgen ship --role all --dry-run',
        'fwgen ship --role web --host web1',
        'fwgen ship --role changed',
        'fwgen ship --role all --canary 2 --waves 10%,50%,100% --max-failures 0',
      ),
    )
    .action(async (opts) => (await ship()).shipCommand(opts, internal));

  withOptions(program.command('publish'), [
    opt.inventory(),
    new Option('--rendered <dir>', 'rendered folder').default('rendered'),
    opt.templates(),
    new Option('-o, --out <dir>', 'the tree to publish into (served as agent.origin)').makeOptionMandatory(),
    new Option('--sign-key <path>', 'OpenSSH private key file, or the .pub of a key held by ssh-agent'),
    opt.json('print what was published as JSON on stdout'),
    new Option('--canary <n>', 'staged releases: N hosts (spread over roles) form wave 1, as agent install split them'),
    new Option('--waves <list>', 'staged releases: then cumulative shares of the fleet, e.g. 10%,50%,100%'),
    new Option(
      '--advance',
      'staged releases: open the next wave once every host of the open ones runs the newest release (read over SSH)',
    ),
    opt.concurrency(),
    opt.connectTimeout(),
    opt.stepTimeout(),
    opt.sshConfig(),
  ])
    .description(
      'sign a release of every role whose rules changed into a static tree (content-addressed blobs, one manifest per role) that agents pull',
    )
    .addHelpText(
      'after',
      examples(
        'fwgen publish --out public --sign-key ~/.ssh/fwgen_release',
        'fwgen publish --out public --sign-key ~/.ssh/fwgen_release.pub   # the key held by ssh-agent',
        'fwgen publish --out public --sign-key ~/.ssh/fwgen_release --canary 2 --waves 50%,100%',
        'fwgen publish --out public --advance',
      ),
    )
    .action(async (opts) => (await import('./publish-command.js')).publishCommand(opts));

  const agent = program
    .command('agent')
    .description('pull mode: install the agent on hosts, or make them poll now (see README, Pull mode)');
  const agentCommand = async () => import('./agent-command.js');
  const agentTarget = () => [
    opt.inventory(),
    opt.out('rendered folder'),
    opt.templates(),
    opt.role('roles: all, or ROLE[,ROLE...]'),
    opt.host(),
    opt.concurrency(),
    ...connection(),
  ];
  withOptions(agent.command('install'), [
    ...agentTarget(),
    new Option('--uninstall', 'remove the agent, its config and schedule (the rules in place stay)'),
    new Option('--textfile-dir <dir>', "node_exporter's textfile folder (metrics written when it exists)").default(
      '/var/lib/prometheus/node-exporter',
    ),
    new Option('--timeout <s>', "dead-man switch of the agent's applies, seconds").default('30'),
    opt.keep(),
    new Option('--canary <n>', 'staged releases: N hosts (spread over roles) form wave 1'),
    new Option('--waves <list>', 'staged releases: then cumulative shares of the fleet, e.g. 10%,50%,100%'),
  ])
    .description(
      'install (or update) the pull agent over SSH: the agent, its config (origins, role, period, trusted keys, pinned management and monitoring rules), a systemd timer or cron entry, and the boot hook',
    )
    .addHelpText(
      'after',
      examples(
        'fwgen agent install --role all',
        'fwgen agent install --role all --canary 2 --waves 50%,100%',
        'fwgen agent install --host web1 --uninstall',
      ),
    )
    .action(async (opts) => (await agentCommand()).agentInstallCommand(opts));
  withOptions(agent.command('poll'), agentTarget())
    .description("run one poll of the installed agent on each host now, over SSH, and print each host's outcome")
    .addHelpText('after', examples('fwgen agent poll --role web', 'fwgen agent poll --host web1 --json'))
    .action(async (opts) =>
      (await agentCommand()).agentPollCommand({ ...opts, textfileDir: '/', timeout: '30', keep: '10' }),
    );

  const backupsOptions = [
    opt.inventory(),
    opt.role('roles: all, or ROLE[,ROLE...]').default('all'),
    opt.host(),
    opt.concurrency(),
    ...connection(),
    opt.auditLog(),
  ];
  withOptions(program.command('backups'), backupsOptions)
    .description('list the rules backups kept on hosts (every host unless --role or --host)')
    .addHelpText('after', examples('fwgen backups', 'fwgen backups --host db1', 'fwgen backups --role web --json'))
    .action(async (opts) => (await import('./rollback-command.js')).backupsCommand(opts));

  withOptions(program.command('rollback'), [
    opt.inventory(),
    opt.host(),
    opt.concurrency(),
    ...connection(),
    opt.auditLog(),
    new Option('--to <timestamp>', 'the backup to restore (default: the newest)'),
    new Option('--wave <which>', '"last": roll back every host the last ship applied, to the backup it made'),
    opt.timeout(),
    opt.keep(),
    opt.breakLock(),
  ])
    .description('restore a backup on a host, with the same test, dead-man switch and confirmation as ship')
    .addHelpText(
      'after',
      examples(
        'fwgen rollback --host db1',
        'fwgen rollback --host db1 --to 20261121T183000Z',
        'fwgen rollback --wave last',
      ),
    )
    .action(async (opts) => (await import('./rollback-command.js')).rollbackCommand(opts));

  withOptions(program.command('remove'), [
    opt.inventory(),
    opt.host(),
    opt.concurrency(),
    ...connection(),
    opt.auditLog(),
    opt.timeout(),
    opt.keep(),
    opt.breakLock(),
    new Option(
      '--forget',
      'hosts no longer in the inventory (gone): mark them removed in the deploy log without contacting them',
    ),
  ])
    .description(
      'take fwgen off hosts: its chains, hooks and ipsets (tested, backed up, confirmed as a ship is), its boot hook and state',
    )
    .addHelpText('after', examples('fwgen remove --host web4', 'fwgen remove --host old-web9 --forget'))
    .action(async (opts) => (await import('./remove-command.js')).removeCommand(opts));

  withOptions(program.command('status'), [
    ...target(),
    ...connection(),
    opt.auditLog(),
    new Option('--diff', 'print the drift of each host under its line'),
    new Option(
      '--strict',
      "exit 1 also when another tool's chain ahead of fwgen's in INPUT can accept what fwgen rejects",
    ),
    new Option(
      '--published <tree|url>',
      'pull mode: where to read the published serials, to flag agent hosts behind them (default: the first agent.origin)',
    ),
  ])
    .description(
      'for each host: in sync, drifted, never shipped, behind (a pull agent on an older release) or unreachable, and hosts fwgen shipped to that left the inventory (orphaned); exit 1 unless all are in sync',
    )
    .addHelpText('after', examples('fwgen status', 'fwgen status --role web --diff'))
    .action(async (opts) => (await import('./status-command.js')).statusCommand(opts));

  withOptions(program.command('log'), [
    new Option('--audit-log <path>', 'deploy log').default('.fwgen/deploy.log'),
    new Option('-n, --last <n>', 'only the last N entries'),
    opt.json('print the entries as JSON lines'),
  ])
    .description('print the deploy log: every ship, rollback and halt')
    .addHelpText('after', examples('fwgen log --last 5'))
    .action(async (opts: { auditLog: string; last?: string; json?: boolean }) =>
      (await import('./log-command.js')).logCommand(opts),
    );

  // No --accept-new on doctor: it only looks, and never writes to known_hosts.
  withOptions(program.command('doctor'), [
    ...target(),
    opt.connectTimeout(),
    opt.stepTimeout(),
    opt.json(),
    opt.sshConfig(),
    new Option('--offline', 'check the inventory alone; contact no host'),
  ])
    .description(
      'check the inventory and each host (SSH, iptables backend, boot persistence, other firewalls, leftovers): ok / warn / fail, each with a fix',
    )
    .addHelpText('after', examples('fwgen doctor --offline', 'fwgen doctor --host web1'))
    .action(async (opts) => (await import('./doctor-command.js')).doctorCommand(opts, internal));

  return program;
}

/** Runs the CLI; only here do errors become stderr text and exit codes. */
export async function runCli(argv: string[], internal: InternalOptions = {}): Promise<number> {
  const program = buildProgram(internal);
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
