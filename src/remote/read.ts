import { ownedFingerprint } from '../model/ownership.js';
import { lastErrorLine, parseStatus, step, type RemoteCall, type RemotePaths } from './scripts.js';
import { TransportError, type Session } from './transport.js';

/** Reads state, rules files and live filter tables (and a backup's files for a rollback); changes nothing. */
export function readCall(paths: RemotePaths, ipv6: boolean, fromBackup?: string): RemoteCall {
  return step('read', 'read.sh', [paths.rules, paths.rules6, ipv6 ? 1 : 0, ...(fromBackup ? [fromBackup] : [])]);
}

/** What a status read needs to know about the host: where the rules live, and whether IPv6 is managed. */
export interface StatusVars {
  readonly paths: RemotePaths;
  readonly ipv6: boolean;
}

/** Everything one status read brings back from a host; `undefined` means the file does not exist. */
export interface RemoteStatus {
  /** `<rules_path>.fwgen-state.json`, as the commit step wrote it. */
  readonly stateJson?: string;
  readonly file4?: string;
  /** `iptables-save -t filter`. */
  readonly live4: string;
  readonly file6?: string;
  /** `ip6tables-save -t filter`, when the inventory has IPv6. */
  readonly live6?: string;
  /** Backups kept (`<rules_path>.bak.*.live`). */
  readonly backups: number;
  /** A dead-man switch is armed (`<rules_path>.fwgen-armed.*`): a ship is in flight, or was cut off. */
  readonly armed: boolean;
  /** A ship holds the lock. */
  readonly locked: boolean;
  /** Fingerprints of what fwgen owns of the live tables (the apply step checks them again). */
  readonly fp4: string;
  readonly fp6: string;
  /** With a backup asked for: that backup's rules files (undefined: the host had none then). */
  readonly backup4?: string;
  readonly backup6?: string;
  /** The host has the `ipset` command. */
  readonly hasIpset?: boolean;
  /** `ipset save` of the live sets named fwgen-* ('' without the ipset command). */
  readonly liveSets?: string;
  /** The sets file beside the rules (`<rules_path>.ipset`). */
  readonly setsFile?: string;
  /** With a backup asked for: the live sets saved with it (undefined: none were saved). */
  readonly backupSets?: string;
  /**
   * The boot-hook step's marker (remote/boot-hook.sh), while the mechanism it found loading the rules at
   * boot is still there; undefined when there is none.
   */
  readonly bootMarker?: string;
  /** The pull agent is installed on the host (`<rules_path>.fwgen-agent/config`). */
  readonly agent?: true;
  /** The agent's state file (`<rules_path>.fwgen-agent/state`), when it has polled. */
  readonly agentState?: string;
}

/** A status read: what the host holds, or why it could not be read. */
export type RemoteRead =
  { readonly ok: true; readonly status: RemoteStatus } | { readonly ok: false; readonly reason: string };

/** Reads a host's fwgen state, rules files and live filter tables in one command; never throws for a host's failure. */
export async function readHostStatus(session: Session, v: StatusVars, fromBackup?: string): Promise<RemoteRead> {
  let r;
  try {
    r = await session.run(readCall(v.paths, v.ipv6, fromBackup));
  } catch (err) {
    return {
      ok: false,
      reason:
        err instanceof TransportError ? err.message : `connection lost: ${(err as Error)?.message ?? String(err)}`,
    };
  }
  if (r.code !== 0) {
    const msg = lastErrorLine(r.stderr) ?? `status script exited with ${r.code}`;
    return { ok: false, reason: `could not read the rules: ${msg}` };
  }
  return parseStatusOutput(r.stdout, v.ipv6, fromBackup !== undefined);
}

/** Splits the status script's output into its sections. */
export function parseStatusOutput(stdout: string, ipv6: boolean, withBackup = false): RemoteRead {
  const rules = (ipv6 ? 5 : 3) + (withBackup ? (ipv6 ? 2 : 1) : 0);
  // The sets' sections follow the rules', then the agent's (an older read step has neither, or no agent's).
  const sets = 2 + (withBackup ? 1 : 0);
  const { sections, rest } = splitSections(Buffer.from(stdout, 'utf8'), rules + sets + 1);
  const tail = parseStatus(rest);
  const complete = [rules, rules + sets, rules + sets + 1].includes(sections.length);
  if (tail.status !== 'read' || !complete)
    return { ok: false, reason: 'could not read the rules: the status output was cut short' };
  const [stateJson, file4, live4] = sections;
  const [file6, live6] = ipv6 ? sections.slice(3, 5) : [];
  const [backup4, backup6] = sections.slice(ipv6 ? 5 : 3, rules);
  const [liveSets, setsFile, backupSets] = sections.slice(rules, rules + sets);
  const agentState = sections[rules + sets];
  return {
    ok: true,
    status: {
      stateJson,
      file4,
      live4: live4 ?? '',
      ...(ipv6 ? { file6, live6: live6 ?? '' } : {}),
      backups: Number(tail.backups) || 0,
      armed: Number(tail.armed) > 0,
      locked: tail.locked === '1',
      // Computed here from the live text the step sent, as the host steps compute it (test/ownership.test.ts).
      fp4: ownedFingerprint(live4 ?? ''),
      fp6: ipv6 ? ownedFingerprint(live6 ?? '') : '-',
      ...(withBackup ? { backup4, backup6, backupSets } : {}),
      ...(tail.ipset !== undefined ? { hasIpset: tail.ipset === '1' } : {}),
      liveSets: liveSets ?? '',
      setsFile,
      ...(tail.boot && tail.boot !== '-' ? { bootMarker: tail.boot } : {}),
      ...(tail.agent === '1' ? { agent: true as const } : {}),
      ...(agentState !== undefined ? { agentState } : {}),
    },
  };
}

function splitSections(out: Buffer, count: number): { sections: (string | undefined)[]; rest: string } {
  const sections: (string | undefined)[] = [];
  let rest = out;
  while (sections.length < count) {
    const nl = rest.indexOf(10);
    const size = nl < 0 ? NaN : Number(rest.subarray(0, nl).toString().trim());
    if (!Number.isInteger(size) || rest.length < nl + 1 + Math.max(size, 0)) break;
    rest = rest.subarray(nl + 1);
    sections.push(size < 0 ? undefined : rest.subarray(0, size).toString('utf8'));
    rest = rest.subarray(Math.max(size, 0));
  }
  return { sections, rest: rest.toString('utf8') };
}
