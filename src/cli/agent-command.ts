import { agentParts } from '../agent/agent-files.js';
import { agentFleet, type AgentJob, type AgentResult } from '../agent/agent-fleet.js';
import { UsageError, WorkFailedError } from '../errors.js';
import type { Inventory } from '../inventory/model.js';
import { selectHosts } from '../inventory/select-hosts.js';
import { runBootHook } from '../remote/boot-hook.js';
import { remotePaths } from '../remote/scripts.js';
import { parseWaves } from '../ship/rollout.js';
import { nonNegativeInt, positiveInt, sshForRun, type HostOptions } from './options.js';
import { waveOf } from './publish-command.js';
import { printWarnings, renderProject, VERSION } from './project.js';

export interface AgentPollOptions extends HostOptions {
  acceptNew?: boolean;
}

export interface AgentOptions extends AgentPollOptions {
  uninstall?: boolean;
  textfileDir: string;
  timeout: string;
  keep: string;
  /** Staged releases: each host's wave, from the split of the whole inventory. */
  canary?: string;
  waves?: string;
}

const PATH_WORD = /^\/[A-Za-z0-9._/@+-]*$/;

/** `fwgen agent install`: the agent, its config and schedule (and the boot hook) on every selected host. */
export async function agentInstallCommand(opts: AgentOptions): Promise<void> {
  const { inv, hosts } = selected(opts);
  const paths = remotePaths(inv);
  let jobs: AgentJob[];
  if (opts.uninstall) {
    jobs = hosts.map((host) => ({ kind: 'uninstall', host, paths }));
  } else {
    if (!PATH_WORD.test(opts.textfileDir))
      throw new UsageError(`--textfile-dir ${opts.textfileDir} is not an absolute path of plain characters`);
    const agent = requireAgent(inv);
    const parts = agentParts({ ...inv, agent }, hosts, {
      version: VERSION,
      textfileDir: opts.textfileDir.replace(/\/$/, '') || '/',
      timeoutS: positiveInt(opts.timeout, '--timeout'),
      keep: positiveInt(opts.keep, '--keep'),
      ...(opts.canary !== undefined || opts.waves !== undefined
        ? {
            waves: waveOf(
              inv.hosts,
              opts.canary === undefined ? 0 : nonNegativeInt(opts.canary, '--canary'),
              parseWaves(opts.waves ?? '100%'),
            ).wave,
          }
        : {}),
    });
    jobs = hosts.map((host) => ({ kind: 'install', host, paths, parts: parts.get(host.name)! }));
  }
  const results = await run(opts, inv, jobs, opts.uninstall ? 'uninstalling' : 'installing the agent on');
  report(results, opts);
}

/** `fwgen agent poll`: one poll now on each selected host; prints each host's outcome. */
export async function agentPollCommand(opts: AgentPollOptions): Promise<void> {
  const { inv, hosts } = selected(opts);
  const paths = remotePaths(inv);
  const results = await run(
    opts,
    inv,
    hosts.map((host) => ({ kind: 'poll', host, paths })),
    'polling',
  );
  report(results, opts);
}

function selected(opts: AgentPollOptions) {
  if (!opts.role && !opts.host?.length)
    throw new UsageError('say which hosts: --role all, --role ROLE[,ROLE...] or --host NAME');
  const project = renderProject({ ...opts, role: opts.role ?? 'all' });
  printWarnings(project.loaded.warnings);
  const inv = project.loaded.inventory;
  return { inv, hosts: selectHosts(inv, project.roles, opts.host ?? []) };
}

function requireAgent(inv: Inventory): NonNullable<Inventory['agent']> {
  if (!inv.agent)
    throw new UsageError(
      `${inv.file} has no agent: block`,
      'add agent: { origin: URL, signers: [PUBLIC KEY] } to the inventory (see README, Pull mode)',
    );
  if (inv.management.length === 0)
    throw new UsageError(
      `${inv.file} has no management networks: an agent pins SSH from them, and publish refuses without them`,
      'list the networks SSH comes from under management:',
    );
  return inv.agent;
}

async function run(opts: AgentPollOptions, inv: Inventory, jobs: AgentJob[], verb: string): Promise<AgentResult[]> {
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  process.stderr.write(`${verb} ${jobs.length} host(s), ${concurrency} at a time\n`);
  const { transport } = sshForRun(
    opts,
    jobs.map((j) => j.host),
  );
  const settings = {
    acceptNew: !!opts.acceptNew,
    connectTimeoutMs: positiveInt(opts.connectTimeout, '--connect-timeout') * 1000,
    everyS: inv.agent?.everyS ?? 60,
    persist: async (session: Parameters<typeof runBootHook>[0], paths: Parameters<typeof runBootHook>[1]) =>
      (await runBootHook(session, paths)).detail,
  };
  return agentFleet(jobs, transport, settings, concurrency).finally(() => transport.close?.());
}

/** One line per host (HOST ROLE OUTCOME DETAIL); exit 1 unless every host succeeded. */
function report(results: readonly AgentResult[], opts: AgentPollOptions): void {
  const table = formatAgentResults(results);
  if (opts.json) {
    process.stderr.write(table);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } else process.stdout.write(table);
  const bad = results.filter((r) => !r.ok);
  if (bad.length > 0)
    throw new WorkFailedError(
      `${bad.length} of ${results.length} host(s): ${bad.map((r) => `${r.host} ${r.outcome}`).join(', ')}`,
    );
}

/** The aligned table of an agent run. */
export function formatAgentResults(results: readonly AgentResult[]): string {
  const rows = [['HOST', 'ROLE', 'OUTCOME', 'DETAIL'], ...results.map((r) => [r.host, r.role, r.outcome, r.detail])];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join('  ')}\n`).join('');
}
