import type { Host } from '../inventory/model.js';
import { diffSets, parseSets } from '../model/sets.js';
import { RULES_FILE, SETS_FILE } from '../render/render-role.js';
import { setsPathFor, type RemotePaths } from '../remote/scripts.js';
import { TransportError, type Session, type Transport } from '../remote/transport.js';
import type { PreserveFn } from '../model/ownership.js';
import { compareLive, type LiveComparison } from './compare-rules.js';
import { bypassingHooks } from './foreign-hooks.js';
import { mapPool } from '../util/map-pool.js';
import { readHostStatus, type RemoteStatus } from '../remote/read.js';
import { parseState, type ShippedRecord } from '../remote/state-file.js';
import { agentStatusOf, isBehind, withoutPinned, type AgentStatus } from './agent-status.js';

export type { ShippedRecord } from '../remote/state-file.js';

/**
 * - `in-sync`: the live rules of every chain fwgen manages are the rendered ones (foreign chains aside).
 *   A host without a state file whose rules match is in sync too, with `shipped` undefined.
 * - `drifted`: fwgen shipped this host (a state file exists) and its live rules differ from rendered/.
 * - `never-shipped`: no state file, and the live rules differ from rendered/.
 * - `unreachable`: no connection, or the rules could not be read (`reason` says which).
 * - `orphaned`: not in the inventory any more, yet the deploy log says fwgen shipped to it and never took
 *   its rules off (status/orphans.ts); not contacted.
 * - `behind`: the host's pull agent runs an older release than the origin serves for its role.
 * On a host with a pull agent, its pinned chain (and the jumps into it) is left out of the comparison.
 */
export type HostState = 'in-sync' | 'drifted' | 'never-shipped' | 'unreachable' | 'orphaned' | 'behind';

/** One host's status: a value, never an exception. */
export interface HostStatus {
  readonly host: string;
  readonly role: string;
  readonly state: HostState;
  readonly shipped?: ShippedRecord;
  /** Backups kept on the host; null when unknown (unreachable, orphaned). */
  readonly backups: number | null;
  /** A dead-man switch is armed: a ship is in flight (or was cut off before confirming); null when unknown. */
  readonly armed: boolean | null;
  /** Chains on the host that fwgen does not manage (`ip6:` prefix for IPv6-only ones). */
  readonly foreign: string[];
  /** Rules in fwgen's chains that jump to foreign chains. */
  readonly foreignRules: string[];
  /** Unified-diff lines, rendered → live, of fwgen's chains; empty when in sync. */
  readonly drift: string[];
  readonly reason?: string;
  /**
   * Foreign hooks ahead of fwgen's in INPUT that can accept new connections fwgen's rules reject
   * (`ip6:` for IPv6): a warning whatever the state, a failure with `status --strict`.
   */
  readonly bypass?: string[];
  /** `orphaned`: the last run the deploy log shows putting fwgen's rules on it. */
  readonly lastShip?: {
    readonly run: string;
    readonly time: string;
    readonly who: string;
    readonly commit: string | null;
  };
  /** Pull mode: what the host's agent last did (hosts with an agent only). */
  readonly agent?: AgentStatus;
}

/** The host and the rendered files to compare with; a ship `HostJob` is one. */
export interface StatusJob {
  readonly host: Host;
  readonly paths: RemotePaths;
  readonly v4: Buffer;
  /** Present when the inventory has IPv6: the live IPv6 rules are compared too. */
  readonly v6?: Buffer;
  /** Other tools' chains that fwgen keeps (the inventory's `preserve:`). */
  readonly preserve: PreserveFn;
  /** ipset mode: the sets the role's rules match (`ipset restore` text); live members are compared. */
  readonly sets?: Buffer;
  /** Pull mode: the serial the origin serves for the host's role, when known. */
  readonly published?: number;
}

/** Connection settings of a status run. */
export interface StatusSettings {
  readonly acceptNew: boolean;
  readonly connectTimeoutMs: number;
}

/** Reads one host over an open session and says whether it runs its rendered rules (one command). */
export async function hostStatus(job: StatusJob, session: Session): Promise<HostStatus> {
  const read = await readHostStatus(session, { paths: job.paths, ipv6: job.v6 !== undefined });
  return read.ok ? assessHost(job, read.status) : unreachable(job, read.reason);
}

/** Connects, reads and closes; an unreachable host is a result, not an error. */
export async function checkHost(job: StatusJob, transport: Transport, s: StatusSettings): Promise<HostStatus> {
  let session: Session;
  try {
    session = await transport.connect({
      name: job.host.name,
      ssh: job.host.ssh,
      acceptNew: s.acceptNew,
      timeoutMs: s.connectTimeoutMs,
    });
  } catch (err) {
    return unreachable(job, err instanceof TransportError ? err.message : ((err as Error)?.message ?? String(err)));
  }
  try {
    return await hostStatus(job, session);
  } finally {
    session.close();
  }
}

/** Checks hosts in parallel, at most `concurrency` at once; results in the order of `jobs`. */
export function statusFleet(
  jobs: readonly StatusJob[],
  transport: Transport,
  s: StatusSettings,
  concurrency: number,
  onResult: (r: HostStatus) => void = () => {},
): Promise<HostStatus[]> {
  const one = (job: StatusJob): Promise<HostStatus> =>
    checkHost(job, transport, s).catch((err: unknown) =>
      unreachable(job, `internal error: ${(err as Error)?.message ?? String(err)}`),
    );
  return mapPool(jobs, concurrency, one, onResult);
}

/** True when every inventory host is in sync: the exit status of `fwgen status` (orphans are reported, not judged). */
export function allInSync(results: readonly HostStatus[]): boolean {
  return results.every((r) => r.state === 'in-sync' || r.state === 'orphaned');
}

/** Pure: what a host's remote status means against its rendered files. */
export function assessHost(job: StatusJob, remote: RemoteStatus): HostStatus {
  const families = comparedFamilies(job, remote);
  const vsRendered = families.map((f) => ({
    ...f,
    cmp: compareLive(f.rendered, f.live, job.preserve, {
      rendered: `rendered/${job.host.role}/${f.file}`,
      live: `${job.host.name} live ${f.save}`,
    }),
  }));
  const setDrift = compareSets(job.sets?.toString('utf8'), remote, setsPathFor(job.paths.rules));
  const bypass = bypassOf(job, families);
  const rulesInSync = vsRendered.every((f) => f.cmp.inSync);
  const inSync = rulesInSync && setDrift.length === 0;
  const recorded = remote.stateJson !== undefined;
  const shipped = recorded ? parseState(remote.stateJson!) : undefined;
  const agent = agentStatusOf(remote, job.published);
  const behind = agent !== undefined && isBehind(agent);
  const state: HostState = behind ? 'behind' : inSync ? 'in-sync' : recorded ? 'drifted' : 'never-shipped';
  const reasons = [
    behind ? `its agent runs serial ${agent.serial}, the origin serves ${agent.published}: not pulled yet` : undefined,
    behind || inSync
      ? behind || recorded
        ? undefined
        : 'live rules match rendered/, but fwgen has no record of shipping them'
      : rulesInSync
        ? job.sets
          ? `the live ipset members differ from rendered/${SETS_FILE} (${setDrift.length} difference(s))`
          : `fwgen's ipsets are left on the host from sets: ipset (${setDrift.length}); the next ship drops them`
        : whyDifferent(families, recorded, job.preserve),
    recorded && !shipped ? `${job.paths.rules}.fwgen-state.json is unreadable` : undefined,
    remote.armed || remote.locked ? 'a ship is in flight on this host (lock held or dead-man switch armed)' : undefined,
  ].filter((r): r is string => r !== undefined);
  return {
    host: job.host.name,
    role: job.host.role,
    state,
    ...(shipped ? { shipped } : {}),
    backups: remote.backups,
    armed: remote.armed,
    foreign: foreignNames(vsRendered.map((f) => f.cmp)),
    foreignRules: vsRendered.flatMap((f) => f.cmp.foreignRules),
    drift: [...vsRendered.flatMap((f) => f.cmp.drift), ...setDrift],
    ...(reasons.length > 0 ? { reason: reasons.join('; ') } : {}),
    ...(bypass.length > 0 ? { bypass } : {}),
    ...(agent ? { agent } : {}),
  };
}

/** Foreign hooks that get around fwgen's rules ({@link bypassingHooks}), per family. */
function bypassOf(job: StatusJob, families: readonly FamilyTexts[]): string[] {
  const members = new Map(
    (job.sets ? parseSets(job.sets.toString('utf8')).sets : []).map((s) => [s.name, s.members] as const),
  );
  return families.flatMap((f, i) =>
    bypassingHooks(f.rendered, f.live, job.preserve, members).map((w) => (i === 0 ? w : `ip6: ${w}`)),
  );
}

/**
 * Live sets against the rendered ones ({@link diffSets}), and the sets file the boot hook loads:
 * `-file PATH` when it is not what ship writes there. With no sets rendered (`sets: none`), fwgen sets
 * and a sets file left on the host from ipset mode are drift too (`+file PATH`): the next ship drops them.
 */
export function compareSets(rendered: string | undefined, remote: RemoteStatus, setsFile: string): string[] {
  if (rendered !== undefined && remote.hasIpset === false)
    return ['-ipset (the ipset command is missing on the host: apt-get install ipset)'];
  const lines = diffSets(rendered ?? '', remote.liveSets ?? '');
  if (rendered === undefined) return remote.setsFile !== undefined ? [...lines, `+file ${setsFile}`] : lines;
  return remote.setsFile !== rendered ? [...lines, `-file ${setsFile}`] : lines;
}

interface FamilyTexts {
  readonly file: string;
  readonly save: string;
  readonly rendered: string;
  readonly live: string;
  readonly onHost?: string;
}

function comparedFamilies(job: StatusJob, remote: RemoteStatus): FamilyTexts[] {
  const v4: FamilyTexts = {
    file: RULES_FILE.ipv4,
    save: 'iptables-save',
    rendered: job.v4.toString('utf8'),
    live: remote.agent ? withoutPinned(remote.live4) : remote.live4,
    onHost: remote.file4 !== undefined && remote.agent ? withoutPinned(remote.file4) : remote.file4,
  };
  if (!job.v6) return [v4];
  return [
    v4,
    {
      file: RULES_FILE.ipv6,
      save: 'ip6tables-save',
      rendered: job.v6.toString('utf8'),
      live: remote.agent ? withoutPinned(remote.live6 ?? '') : (remote.live6 ?? ''),
      onHost: remote.file6 !== undefined && remote.agent ? withoutPinned(remote.file6) : remote.file6,
    },
  ];
}

/** Tells "changed by hand" from "rendered/ moved on": does the host still run its own rules file? */
function whyDifferent(families: readonly FamilyTexts[], recorded: boolean, preserve: PreserveFn): string {
  if (!recorded) return 'no fwgen state on the host, and its live rules differ from rendered/';
  const runsOwnFile = families.every((f) => f.onHost !== undefined && compareLive(f.onHost, f.live, preserve).inSync);
  return runsOwnFile
    ? 'not shipped yet: the host runs the rules last shipped, and rendered/ has changed since'
    : 'the live rules were changed on the host since the last ship';
}

function foreignNames(cmps: readonly LiveComparison[]): string[] {
  const [v4, v6] = cmps;
  const names = [...v4.foreignChains];
  for (const c of v6?.foreignChains ?? []) if (!names.includes(c)) names.push(`ip6:${c}`);
  return names;
}

function unreachable(job: StatusJob, reason: string): HostStatus {
  return {
    host: job.host.name,
    role: job.host.role,
    state: 'unreachable',
    backups: null,
    armed: null,
    foreign: [],
    foreignRules: [],
    drift: [],
    reason,
  };
}
