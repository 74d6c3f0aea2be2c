import { preserveMatcher } from '../model/ownership.js';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type Ipaddr from 'ipaddr.js';
import { requireCjs } from '../util/require-cjs.js';
import { parseSets } from '../model/sets.js';
import { LockoutError, UsageError, WorkFailedError } from '../errors.js';
import type { Host, Inventory } from '../inventory/model.js';
import { checkRulesText, describeVerdict, type SshVerdict } from '../lockout/lockout.js';
import { sshSourceFor } from '../lockout/lockout-source.js';
import type { Reach } from '../remote/reach.js';
import { planShip, remotePaths, selectHosts } from '../ship/plan.js';
import { appendAudit, completedEntries, readAudit, type AuditEntry } from '../audit/audit-log.js';
import { describeBootHookResult, parseBootHookResult } from '../remote/boot-hook.js';
import { backupsCall, bootHookCall, type ScriptVars } from '../remote/scripts.js';
import type { Session } from '../remote/transport.js';
import { parseWaves, planStages, type Stage } from '../ship/rollout.js';
import { mapPool } from '../util/map-pool.js';
import { fleetSucceeded, shipFleet } from '../ship/ship-fleet.js';
import { checkHost } from '../status/host-status.js';
import type { Effects, HostJob, HostResult, RunSettings } from '../ship/ship-host.js';
import { positiveInt, nonNegativeInt, sshForRun, type HostOptions } from './options.js';
import { printWarnings, renderProject, selectRoles, VERSION } from './project.js';
import type { InternalOptions } from './program.js';
import { loadInventory } from '../inventory/load-inventory.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/** Options of the commands that change hosts (ship, rollback); see program.ts for which command takes which. */
interface RunOptions {
  inventory: string;
  concurrency: string;
  connectTimeout: string;
  json?: boolean;
  acceptNew?: boolean;
  auditLog: string;
  timeout: string;
  keep: string;
  dryRun?: boolean;
  force?: boolean;
  persist?: boolean;
  breakLock?: boolean;
  sshConfig?: string;
}

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

export interface ShipOptions extends HostOptions {
  dryRun?: boolean;
  timeout: string;
  keep: string;
  force?: boolean;
  acceptNew?: boolean;
  canary?: string;
  waves?: string;
  maxFailures?: string;
  auditLog: string;
  persist?: boolean;
  /** `--from ADDR`: the address hosts see SSH come from (NAT); overrides ssh.source. */
  from?: string;
  breakLock?: boolean;
}

/** What a run is, for the audit log. */
interface RunContext {
  readonly action: 'ship' | 'rollback';
  readonly inv: Inventory;
  readonly staged: boolean;
  readonly maxFailures: number;
}

/** The real effects of a run: one SSH transport (sharing jump host connections), timers, the clock. */
const realEffects = (
  opts: { sshConfig?: string },
  hosts: readonly Host[],
): Effects & { reaches: Map<string, Reach> } => {
  const { transport, reaches } = sshForRun(opts, hosts);
  return { transport, reaches, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), now: () => Date.now() };
};

/** `fwgen ship`: check rendered/ is current and safe, then ship every selected host. */
export async function shipCommand(opts: ShipOptions, internal: InternalOptions = {}): Promise<void> {
  if (!opts.role && !opts.host?.length)
    throw new UsageError('say which roles to ship: --role all, --role ROLE[,ROLE...] or --host NAME');
  const project = renderProject({ ...opts, role: opts.role ?? 'all' });
  printWarnings(project.loaded.warnings);
  const stale = project.changes.filter((c) => c.status !== 'unchanged');
  if (stale.length > 0) {
    throw new WorkFailedError(
      `${opts.out}/ does not match the inventory (${stale.map((c) => `${c.status}: ${c.path}`).join(', ')}); refusing to ship`,
      'run `fwgen render`, review and commit, then ship',
    );
  }
  const inv = project.loaded.inventory;
  const jobs = planShip(inv, selectHosts(inv, project.roles, opts.host ?? []), opts.out);
  const fx = realEffects(
    opts,
    jobs.map((j) => j.host),
  );
  if (!opts.dryRun && !internal.skipLockoutCheck) await checkLockout(jobs, inv, fx.reaches, opts.from);
  const staged = opts.canary !== undefined || opts.waves !== undefined;
  const stages = staged
    ? planStages(
        jobs,
        opts.canary === undefined ? 0 : nonNegativeInt(opts.canary, '--canary'),
        parseWaves(opts.waves ?? '100%'),
      )
    : [{ name: 'all', jobs }];
  const maxFailures = opts.maxFailures === undefined ? 0 : nonNegativeInt(opts.maxFailures, '--max-failures');
  await runStages(stages, runSettings(opts, inv), opts, { action: 'ship', inv, staged, maxFailures }, fx);
}

/** `fwgen rollback --host H [--to TS]` or `--wave last`: restore backups with the same test, dead-man switch and confirmation. */
export async function rollbackCommand(opts: RollbackOptions): Promise<void> {
  if (opts.wave !== undefined) return rollbackLastShip(opts);
  if (!opts.host?.length) throw new UsageError('say which host to roll back: --host NAME, or --wave last');
  if (opts.to !== undefined && !/^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$/.test(opts.to))
    throw new UsageError(
      `--to ${opts.to} is not a backup timestamp (expected e.g. 20261121T183000Z, as \`fwgen backups\` lists)`,
    );
  const inv = loadChecked(opts.inventory);
  const hosts = selectHosts(inv, undefined, opts.host);
  const fx = realEffects(opts, hosts);
  const jobs: HostJob[] = [];
  try {
    for (const host of hosts) {
      const to = opts.to ?? (await listBackups(fx, host, inv, opts))[0]?.ts;
      if (!to) throw new WorkFailedError(`host ${host.name} has no backups to roll back to`);
      jobs.push({
        host,
        paths: remotePaths(inv),
        v4: Buffer.alloc(0),
        v6: inv.hasIpv6 ? Buffer.alloc(0) : undefined,
        fromBackup: to,
        preserve: preserveMatcher(inv.preserve),
      });
    }
  } catch (err) {
    fx.transport.close?.();
    throw err;
  }
  await runStages(
    [{ name: 'all', jobs }],
    { ...runSettings(opts, inv), force: true },
    opts,
    { action: 'rollback', inv, staged: false, maxFailures: 0 },
    fx,
  );
}

/** Undoes the hosts the last ship (or the shipped part of a halted rollout) changed, from the audit log. */
async function rollbackLastShip(opts: RollbackOptions): Promise<void> {
  if (opts.wave !== 'last')
    throw new UsageError(`--wave ${opts.wave}: only "last" is supported (the hosts the last ship applied)`);
  const last = completedEntries(readAudit(opts.auditLog))
    .filter((e) => e.action === 'ship')
    .pop();
  if (!last) throw new WorkFailedError(`no ship recorded in ${opts.auditLog}`);
  // Every host the ship changed has a backup, including those that failed the check after their stage.
  const applied = last.hosts.filter((h) => h.backup && h.outcome !== 'rolled-back');
  if (applied.length === 0)
    throw new WorkFailedError(`the last ship (run ${last.run}) applied no host; nothing to roll back`);
  const inv = loadChecked(opts.inventory);
  const hosts = selectHosts(
    inv,
    undefined,
    applied.map((h) => h.host),
  );
  const backupOf = new Map(applied.map((h) => [h.host, h.backup!]));
  process.stderr.write(`rolling back run ${last.run}: ${applied.length} host(s) to the backups it made\n`);
  const preserve = preserveMatcher(inv.preserve);
  const jobs: HostJob[] = hosts.map((host) => ({
    host,
    paths: remotePaths(inv),
    v4: Buffer.alloc(0),
    v6: inv.hasIpv6 ? Buffer.alloc(0) : undefined,
    fromBackup: backupOf.get(host.name),
    preserve,
  }));
  await runStages(
    [{ name: 'all', jobs }],
    { ...runSettings(opts, inv), force: true },
    opts,
    { action: 'rollback', inv, staged: false, maxFailures: 0 },
    realEffects(opts, hosts),
  );
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
  const rows: { host: string; ts: string; size: string }[] = [];
  let failed = 0;
  for (const host of hosts) {
    try {
      for (const b of await listBackups(fx, host, inv, opts)) rows.push({ host: host.name, ...b });
    } catch (err) {
      failed++;
      process.stderr.write(`${host.name}: ${(err as Error).message}\n`);
    }
  }
  fx.transport.close?.();
  if (opts.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else
    for (const r of rows)
      process.stdout.write(
        `${r.host.padEnd(20)} ${r.ts.padEnd(20)} ${r.size === '-' ? '(live snapshot only)' : `${r.size} bytes`}\n`,
      );
  if (failed > 0) throw new WorkFailedError(`${failed} host(s) could not be reached`);
}

async function listBackups(
  fx: Effects,
  host: HostJob['host'],
  inv: Inventory,
  opts: BackupsOptions,
): Promise<{ ts: string; size: string }[]> {
  const session = await fx.transport.connect({
    name: host.name,
    ssh: host.ssh,
    acceptNew: !!opts.acceptNew,
    timeoutMs: Number(opts.connectTimeout) * 1000,
  });
  try {
    const r = await session.run(backupsCall(remotePaths(inv)));
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [ts, size] = l.split(' ');
        return { ts, size };
      });
  } finally {
    session.close();
  }
}

/** Runs the stages in order; in a staged rollout, checks every host after its stage and halts on too many failures. */
async function runStages(
  stages: readonly Stage[],
  settings: RunSettings,
  opts: RunOptions,
  ctx: RunContext,
  fx: Effects,
): Promise<void> {
  try {
    await runAllStages(stages, settings, opts, ctx, fx);
  } finally {
    fx.transport.close?.();
  }
}

async function runAllStages(
  stages: readonly Stage[],
  settings: RunSettings,
  opts: RunOptions,
  ctx: RunContext,
  fx: Effects,
): Promise<void> {
  const concurrency = positiveInt(opts.concurrency, '--concurrency');
  const total = stages.reduce((n, st) => n + st.jobs.length, 0);
  process.stderr.write(
    `${opts.dryRun ? 'checking' : 'shipping'} ${total} host(s), ${concurrency} at a time (run ${settings.id})\n`,
  );
  const results: (HostResult & { stage: string })[] = [];
  let halted: AuditEntry['halted'];
  for (const [i, stage] of stages.entries()) {
    if (ctx.staged) process.stderr.write(`\n== ${stage.name}: ${stage.jobs.map((j) => j.host.name).join(', ')}\n`);
    let done = await shipFleet(stage.jobs, settings, fx, concurrency, (r) => {
      printProgress(r);
      // Each host's result is on disk as soon as it is known: a controller killed later loses none.
      if (!opts.dryRun) recordHost(opts, settings, ctx, r, stage.name);
    });
    if (ctx.staged && !opts.dryRun) done = await verifyStage(stage, done, settings, fx, concurrency);
    results.push(...done.map((r) => ({ ...r, stage: stage.name })));
    const failures = done.filter((r) => !fleetSucceeded([r])).length;
    if (ctx.staged && failures > ctx.maxFailures && i < stages.length - 1) {
      halted = {
        stage: stage.name,
        failures,
        untouched: stages.slice(i + 1).flatMap((st) => st.jobs.map((j) => j.host.name)),
      };
      break;
    }
  }
  printSummary(results);
  if (!opts.dryRun) record(opts, settings, ctx, results, stages, halted);
  if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  if (halted) {
    const running = results.filter((r) => r.outcome === 'applied' || r.outcome === 'unchanged').map((r) => r.host);
    // A host that took the rules but failed its check after the stage has a backup: its state is suspect.
    const suspect = results.filter((r) => r.outcome === 'failed' && r.backup).map((r) => r.host);
    const notRunning = [
      ...results.filter((r) => !running.includes(r.host) && !suspect.includes(r.host)).map((r) => r.host),
      ...halted.untouched,
    ];
    throw new WorkFailedError(
      `rollout halted after ${halted.stage}: ${halted.failures} failure(s), more than --max-failures ${ctx.maxFailures}\n` +
        `run the new rules (${running.length}): ${running.join(', ') || 'none'}\n` +
        (suspect.length > 0
          ? `took the new rules but failed the check after their stage (${suspect.length}): ${suspect.join(', ')}\n`
          : '') +
        `do not (${notRunning.length}): ${notRunning.join(', ')}`,
      'fix the failures and ship again, or undo the shipped part with `fwgen rollback --wave last`',
    );
  }
  if (!fleetSucceeded(results)) {
    const bad = results.filter((r) => !fleetSucceeded([r]));
    throw new WorkFailedError(
      `${bad.length} of ${results.length} host(s) did not get the new rules: ${bad.map((r) => `${r.host} ${r.outcome}`).join(', ')}`,
    );
  }
}

/** After a stage, every host that took (or kept) the rules is checked with `status`, over a new connection. */
async function verifyStage(
  stage: Stage,
  done: HostResult[],
  settings: RunSettings,
  fx: Effects,
  concurrency: number,
): Promise<HostResult[]> {
  return mapPool(stage.jobs, concurrency, async (job, i) => {
    const result = done[i];
    if (result.outcome !== 'applied' && result.outcome !== 'unchanged') return result;
    const st = await checkHost(job, fx.transport, { acceptNew: false, connectTimeoutMs: settings.connectTimeoutMs });
    if (st.state === 'in-sync') return result;
    const problem = `check after the stage: ${st.state}${st.reason ? ` (${st.reason})` : ''}`;
    process.stderr.write(`failed      ${result.host} (${result.role}) ${problem}\n`);
    return { ...result, outcome: 'failed' as const, reason: problem };
  });
}

function printProgress(r: HostResult): void {
  process.stderr.write(`${r.outcome.padEnd(11)} ${r.host} (${r.role}) ${r.reason} [${(r.ms / 1000).toFixed(1)}s]\n`);
  if (r.diff) process.stderr.write(`${r.diff}\n`);
}

/** The run's part of every audit line; the inventory commit is asked of git once per run. */
function auditBase(settings: RunSettings, ctx: RunContext) {
  return {
    run: settings.id,
    who: settings.owner.split(' ')[0],
    inventory: ctx.inv.file,
    commit: inventoryCommit(ctx.inv),
  };
}

function recordHost(opts: RunOptions, settings: RunSettings, ctx: RunContext, r: HostResult, stage: string): void {
  const host = {
    host: r.host,
    role: r.role,
    outcome: r.outcome,
    reason: r.reason,
    backup: r.backup,
    stage: ctx.staged ? stage : undefined,
  };
  appendAudit(opts.auditLog, {
    time: new Date().toISOString(),
    action: 'host',
    ...auditBase(settings, ctx),
    hosts: [host],
  });
}

function record(
  opts: RunOptions,
  settings: RunSettings,
  ctx: RunContext,
  results: (HostResult & { stage: string })[],
  stages: readonly Stage[],
  halted: AuditEntry['halted'],
): void {
  const base = auditBase(settings, ctx);
  const hosts = results.map((r) => ({
    host: r.host,
    role: r.role,
    outcome: r.outcome,
    reason: r.reason,
    backup: r.backup,
    stage: ctx.staged ? r.stage : undefined,
  }));
  appendAudit(opts.auditLog, {
    time: new Date().toISOString(),
    action: ctx.action,
    ...base,
    hosts,
    stages: ctx.staged ? stages.map((s) => s.name) : undefined,
  });
  if (halted)
    appendAudit(opts.auditLog, { time: new Date().toISOString(), action: 'halt', ...base, hosts: [], halted });
}

function printSummary(results: readonly HostResult[]): void {
  const rows = [
    ['HOST', 'ROLE', 'OUTCOME', 'TIME', 'REASON'],
    ...results.map((r) => [r.host, r.role, r.outcome, `${(r.ms / 1000).toFixed(1)}s`, r.reason]),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  process.stderr.write('\n');
  for (const r of rows)
    process.stderr.write(
      `${r
        .slice(0, 4)
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')}  ${r[4]}\n`,
    );
  const count = (o: string) => results.filter((r) => r.outcome === o).length;
  process.stderr.write(
    `\n${results.length} host(s): ${['applied', 'unchanged', 'would-apply', 'rolled-back', 'failed'].map((o) => `${count(o)} ${o}`).join(', ')}\n`,
  );
}

/** Refuses (exit 2) a ruleset that would not admit SSH from where each host sees it come from (here or a jump host). */
async function checkLockout(
  jobs: readonly HostJob[],
  inv: Inventory,
  reaches: Map<string, Reach>,
  from?: string,
): Promise<void> {
  if (from !== undefined && !ipaddr.isValid(from)) throw new UsageError(`--from ${from} is not an IP address`);
  const problems: string[] = [];
  let viaJump = false;
  // Hosts of a role share one file: evaluate it once per role, family, source and port.
  const verdicts = new Map<string, SshVerdict>();
  await Promise.all(
    jobs.map(async (job) => {
      const reach = reaches.get(job.host.name)!;
      const port = reach.target.port;
      let source: Awaited<ReturnType<typeof sshSourceFor>>;
      try {
        source = await sshSourceFor(job.host, reach, inv, from);
      } catch {
        return; // no route or no name: the connection itself will fail and say why.
      }
      const v6 = ipaddr.process(source.address).kind() === 'ipv6';
      const rules = v6 ? job.v6 : job.v4;
      if (!rules) return;
      const key = `${job.host.role}|${v6 ? 6 : 4}|${source.address}|${port}`;
      let verdict = verdicts.get(key);
      const sets = job.sets ? setMembers(job.sets) : undefined;
      const probe = { source: source.address, dport: port, ...(sets ? { sets } : {}) };
      if (!verdict) verdicts.set(key, (verdict = checkRulesText(rules.toString('utf8'), probe)));
      if (!verdict.admitted) {
        viaJump ||= reach.jumps.length > 0;
        const why = source.why === 'this machine' ? '' : ` (${source.why})`;
        const what = `the new rules would not admit SSH from ${source.address}${why} to port ${port}`;
        problems.push(`${job.host.name}: ${what} (decided by ${describeVerdict(verdict)})`);
      }
    }),
  );
  if (problems.length > 0) {
    const hint = viaJump
      ? "add the jump host's address to `management` (hosts behind a jump host see SSH come from it); nothing was shipped"
      : "add this machine's network to `management` (or ship from a management host; behind NAT, say the address with --from); nothing was shipped";
    throw new LockoutError(`refusing to ship: it would lock this machine out\n${problems.sort().join('\n')}`, hint);
  }
}

function runSettings(opts: RunOptions, inv: Inventory): RunSettings {
  const id = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}Z-${randomBytes(3).toString('hex')}`;
  const who = `${userInfo().username}@${hostname()}`;
  const commit = inventoryCommit(inv);
  return {
    id,
    owner: `${who} run ${id} pid ${process.pid} since ${new Date().toISOString()}`,
    timeoutS: positiveInt(opts.timeout, '--timeout'),
    keep: positiveInt(opts.keep, '--keep'),
    force: !!opts.force,
    dryRun: !!opts.dryRun,
    breakLock: !!opts.breakLock,
    acceptNew: !!opts.acceptNew,
    connectTimeoutMs: positiveInt(opts.connectTimeout, '--connect-timeout') * 1000,
    persist: opts.persist ? persistBootHook : undefined,
    stateJson: (job, backup) =>
      JSON.stringify({
        fwgen: VERSION,
        run: id,
        role: job.host.role,
        host: job.host.name,
        inventory: inv.file,
        commit,
        shippedAt: new Date().toISOString(),
        shippedBy: who,
        backup: backup ?? null,
        restoredFrom: job.fromBackup ?? null,
      }),
  };
}

/** Installs a boot hook where nothing loads the rules at boot, or updates fwgen's own (remote/boot-hook.sh). */
async function persistBootHook(session: Session, vars: ScriptVars): Promise<string> {
  const r = await session.run(bootHookCall(vars.paths));
  const res = parseBootHookResult(r.stdout);
  return res
    ? describeBootHookResult(res, vars.paths.rules)
    : `boot hook failed: ${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.code}`}`;
}

// Asked once per run, that is per loaded inventory (the state files and the audit log both name it):
// git is two processes.
const commits = new WeakMap<Inventory, string | null>();

function inventoryCommit(inv: Inventory): string | null {
  if (!commits.has(inv)) commits.set(inv, gitCommit(inv.dir));
  return commits.get(inv)!;
}

function gitCommit(dir: string): string | null {
  try {
    const head = execFileSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    const dirty =
      execFileSync('git', ['-C', dir, 'status', '--porcelain', '--', '.'], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}

/** The inventory, validated, for commands that act on backups rather than on rendered/. */
function loadChecked(file: string): Inventory {
  const loaded = loadInventory(file);
  printWarnings(loaded.warnings);
  return loaded.inventory;
}

const membersCache = new WeakMap<Buffer, Map<string, readonly string[]>>();

/** The members of each set of a host's sets text (shared by the role's hosts), for the lockout check. */
function setMembers(text: Buffer): Map<string, readonly string[]> {
  let m = membersCache.get(text);
  if (!m) membersCache.set(text, (m = new Map(parseSets(text.toString('utf8')).sets.map((s) => [s.name, s.members]))));
  return m;
}
