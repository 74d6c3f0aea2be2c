import { inventoryCommit } from '../audit/inventory-commit.js';
import { UsageError, WorkFailedError } from '../errors.js';
import type { Host, Inventory } from '../inventory/model.js';
import { publishRelease } from '../publish/publish-release.js';
import { readPublished, type PublishReport } from '../publish/publish-tree.js';
import { loadSignKey } from '../publish/sign.js';
import {
  advanceProblems,
  openWave,
  readWaves,
  servedNow,
  stagePublished,
  writeWaves,
  type WaveHost,
  type WavePlan,
} from '../publish/waves.js';
import { planShip } from '../ship/plan.js';
import { parseWaves, planStages } from '../ship/rollout.js';
import { statusFleet } from '../status/host-status.js';
import { nonNegativeInt, positiveInt, sshForRun } from './options.js';
import { inventoryLabel, printWarnings, renderProject } from './project.js';

export interface PublishOptions {
  inventory: string;
  rendered: string;
  templates?: string;
  out: string;
  signKey?: string;
  json?: boolean;
  /** Staged releases: the split of the fleet into waves (as `agent install` got it). */
  canary?: string;
  waves?: string;
  /** Open the next wave, once every host of the open ones runs the newest release. */
  advance?: boolean;
  concurrency: string;
  connectTimeout: string;
  stepTimeout?: string;
  sshConfig?: string;
}

/** `fwgen publish`: rendered/ must be current; signs a release of every role that changed into the tree. */
export async function publishCommand(opts: PublishOptions): Promise<void> {
  if (opts.advance) return advanceCommand(opts);
  if (!opts.signKey) throw new UsageError("required option '--sign-key <path>' not specified");
  const project = renderProject({ inventory: opts.inventory, out: opts.rendered, templates: opts.templates });
  printWarnings(project.loaded.warnings);
  const stale = project.changes.filter((c) => c.status !== 'unchanged');
  if (stale.length > 0) {
    throw new WorkFailedError(
      `${opts.rendered}/ does not match the inventory (${stale.map((c) => `${c.status}: ${c.path}`).join(', ')}); refusing to publish`,
      'run `fwgen render`, review and commit, then publish',
    );
  }
  const inv = project.loaded.inventory;
  const staged = stagingOf(opts, inv);
  const before = servedNow(
    opts.out,
    inv.roles.map((r) => r.name),
  );
  const report = await publishRelease({
    inv,
    files: project.files,
    out: opts.out,
    key: await loadSignKey(opts.signKey),
    now: Math.floor(Date.now() / 1000),
    commit: inventoryCommit(inv.dir) ?? '-',
    inventoryLabel: inventoryLabel(opts.inventory, opts.rendered).replace(/ /g, '_'),
  });
  process.stderr.write(formatReport(report, opts.out));
  if (staged) {
    const plan = stagePublished(opts.out, staged, report, before);
    writeWaves(opts.out, plan);
    process.stderr.write(
      `staged: waves 1..${plan.open} of ${plan.stages} get the newest releases; \`fwgen publish --advance\` opens the next\n`,
    );
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

/** The staging of this publish: the split given (--canary/--waves), else the tree's, else none. */
function stagingOf(opts: PublishOptions, inv: Inventory): WavePlan | undefined {
  const recorded = readWaves(opts.out);
  if (opts.canary === undefined && opts.waves === undefined)
    return recorded && { ...recorded, ...split(inv, recorded) };
  const canary = opts.canary === undefined ? 0 : nonNegativeInt(opts.canary, '--canary');
  const waves = parseWaves(opts.waves ?? '100%');
  return { ...split(inv, { canary, waves }), open: recorded?.open ?? 1 };
}

/** The waves the split makes of the inventory's hosts, each host's wave (1-based). */
export function waveOf(
  hosts: readonly Host[],
  canary: number,
  waves: readonly number[],
): { stages: number; wave: Map<string, number> } {
  const stages = planStages(
    hosts.map((host) => ({ host })),
    canary,
    waves,
  );
  return { stages: stages.length, wave: new Map(stages.flatMap((s, i) => s.jobs.map((j) => [j.host.name, i + 1]))) };
}

function split(inv: Inventory, p: { canary: number; waves: readonly number[] }) {
  return { canary: p.canary, waves: p.waves, stages: waveOf(inv.hosts, p.canary, p.waves).stages };
}

/**
 * `fwgen publish --advance`: every host of the open waves is read over SSH (as status reads it); when
 * each runs its role's newest release and its last poll did not keep the old rules, the next wave
 * opens. Otherwise nothing changes and the hosts in the way are listed (exit 1).
 */
async function advanceCommand(opts: PublishOptions): Promise<void> {
  const project = renderProject({ inventory: opts.inventory, out: opts.rendered, templates: opts.templates });
  printWarnings(project.loaded.warnings);
  const inv = project.loaded.inventory;
  const recorded = readWaves(opts.out);
  if (!recorded)
    throw new UsageError(
      `${opts.out}/ is not staged`,
      'publish with --canary N --waves ... to stage releases (and install the agents with the same)',
    );
  const plan = { ...recorded, ...split(inv, recorded) };
  if (plan.open >= plan.stages) {
    process.stderr.write(`every wave (${plan.stages}) already serves the newest releases\n`);
    return;
  }
  const { wave } = waveOf(inv.hosts, plan.canary, plan.waves);
  const open = inv.hosts.filter((h) => (wave.get(h.name) ?? 0) <= plan.open);
  const jobs = planShip(inv, open, opts.rendered);
  const { transport } = sshForRun(opts, open);
  process.stderr.write(`checking the ${open.length} host(s) of wave(s) 1..${plan.open}\n`);
  const results = await statusFleet(
    jobs,
    transport,
    { acceptNew: false, connectTimeoutMs: positiveInt(opts.connectTimeout, '--connect-timeout') * 1000 },
    positiveInt(opts.concurrency, '--concurrency'),
  ).finally(() => transport.close?.());
  const hosts: WaveHost[] = results.map((r) => ({
    host: r.host,
    role: r.role,
    wave: wave.get(r.host) ?? 0,
    ...(r.state === 'unreachable' ? { agent: r.reason ?? 'unreachable' } : r.agent ? { agent: r.agent } : {}),
  }));
  const roles = inv.roles.map((r) => r.name);
  const latest = new Map([...readPublished(opts.out, roles)].map(([role, m]) => [role, m.serial]));
  const problems = advanceProblems(hosts, latest);
  if (problems.length > 0)
    throw new WorkFailedError(
      `wave ${plan.open + 1} stays closed: ${problems.length} host(s) of the open waves are not on the newest release\n${problems.join('\n')}`,
      'poll them (`fwgen agent poll`), fix what their last poll kept, or publish a fix (it restarts at wave 1)',
    );
  openWave(opts.out, roles, plan.open + 1);
  writeWaves(opts.out, { ...plan, open: plan.open + 1 });
  process.stderr.write(`opened wave ${plan.open + 1} of ${plan.stages}\n`);
}

/** One line per role (`ROLE SERIAL new|refreshed|kept expires ...`), then what was written. */
export function formatReport(r: PublishReport, out: string): string {
  const iso = (s: number): string => new Date(s * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const rows = r.roles.map((x) => [x.role, String(x.serial), x.action, `expires ${iso(x.expires)}`]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) => row.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join('  '));
  const count = (a: string): number => r.roles.filter((x) => x.action === a).length;
  const mb = (r.bytesWritten / 1e6).toFixed(1);
  return (
    `${lines.join('\n')}\n` +
    `published ${r.roles.length} role(s) into ${out}/: ${count('new')} new, ${count('refreshed')} refreshed, ` +
    `${count('kept')} kept; ${r.blobsWritten} blob(s) written (${mb} MB)\n`
  );
}
