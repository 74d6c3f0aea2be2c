import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printable } from '../util/printable.js';

/** The host's sets file in ipset mode (remote/sets.sh `sets_file`): loaded at boot before the rules. */
export function setsPathFor(rules: string): string {
  return `${rules}.ipset`;
}

/** Where a host keeps its rules and fwgen's bookkeeping: everything sits beside the rules file. */
export interface RemotePaths {
  readonly rules: string;
  readonly rules6: string;
}

/** What the steps of one host's run need: its paths, the run's id, whether the inventory has IPv6. */
export interface ScriptVars {
  readonly paths: RemotePaths;
  readonly id: string;
  readonly ipv6: boolean;
}

/** The host-side steps, each a shell file in the package's `remote/` folder. */
export type StepName = 'read' | 'apply' | 'commit' | 'verify' | 'backups' | 'doctor-facts' | 'boot-hook';

/** One remote call: a script, run by `sh -c` with its values as arguments, never pasted into the code. */
export interface RemoteCall {
  readonly name: StepName;
  readonly script: string;
  readonly args: readonly string[];
  /** Seconds the step may wait on the host besides its work (the dead-man switch): added to its deadline. */
  readonly waitS?: number;
}

/** How long a step may wait for a dead-man switch that fired to finish its undo (remote/lib.sh `await_switch`). */
export const SWITCH_WAIT_S = 120;

/** The IPv6 rules file beside the IPv4 one: `iptables` becomes `ip6tables`, `rules.v4` becomes `rules.v6`, else `.v6` is appended. */
export function rules6PathFor(rules: string): string {
  const slash = rules.lastIndexOf('/');
  const base = rules.slice(slash + 1);
  const v6 = base.includes('iptables')
    ? base.replace('iptables', 'ip6tables')
    : base.endsWith('.v4')
      ? `${base.slice(0, -3)}.v6`
      : `${base}.v6`;
  return `${rules.slice(0, slash + 1)}${v6}`;
}

/** Exit codes the scripts use, besides 0 (remote/lib.sh). */
export const EXIT = {
  locked: 10,
  testFailed: 11,
  applyFailed: 13,
  rolledBack: 14,
  missingTool: 15,
  noBackup: 16,
  neverArmed: 17,
  stageFailed: 18,
  changed: 19,
  fileNotReplaced: 20,
  unsafeFolder: 21,
} as const;

/** The package's folder of host-side scripts. */
export const remoteDir = fileURLToPath(new URL('../../remote', import.meta.url));

const sources = new Map<string, string>();

/** A script file of `remote/`, read once. */
export function remoteFile(file: string): string {
  let s = sources.get(file);
  if (s === undefined) {
    s = readFileSync(`${remoteDir}/${file}`, 'utf8');
    sources.set(file, s);
  }
  return s;
}

/** The libraries each step gets after lib.sh: sets.sh for those that handle ipsets, boot.sh for those about boot. */
const LIBS: Readonly<Record<string, readonly string[]>> = {
  'read.sh': ['sets.sh'],
  'apply.sh': ['sets.sh'],
  'commit.sh': ['sets.sh'],
  'facts.sh': ['boot.sh'],
  'boot-hook.sh': ['boot.sh'],
};

function step(name: StepName, file: string, args: readonly (string | number)[], waitS?: number): RemoteCall {
  const files = ['lib.sh', ...(LIBS[file] ?? []), file];
  return { name, script: files.map(remoteFile).join('\n'), args: args.map(String), ...(waitS ? { waitS } : {}) };
}

/** Reads state, rules files and live filter tables (and a backup's files for a rollback); changes nothing. */
export function readCall(paths: RemotePaths, ipv6: boolean, fromBackup?: string): RemoteCall {
  return step('read', 'read.sh', [paths.rules, paths.rules6, ipv6 ? 1 : 0, ...(fromBackup ? [fromBackup] : [])]);
}

/** One part of the apply step's upload. */
export interface Part {
  readonly name: string;
  readonly bytes: Buffer;
}

/** Settings of the apply step. */
export interface ApplySettings {
  readonly id: string;
  readonly ipv6: boolean;
  readonly owner: string;
  readonly timeoutS: number;
  readonly keep: number;
  readonly breakLock: boolean;
  /** Fingerprints of fwgen's live rules as the read step saw them (`-` for a family not read). */
  readonly fp4: string;
  readonly fp6: string;
}

/** Locks, stages and verifies `parts` (sent on stdin), tests, backs up, arms the switch and applies. */
export function applyCall(paths: RemotePaths, s: ApplySettings, parts: readonly Part[]): RemoteCall {
  const manifest = parts.flatMap((p) => [p.name, p.bytes.length, digestOf(p.bytes)]);
  const args = [paths.rules, paths.rules6, s.id, s.ipv6 ? 1 : 0, s.owner, s.timeoutS, s.keep, s.breakLock ? 1 : 0];
  // It may outlast the switch's timeout, then wait for the switch's undo.
  return step('apply', 'apply.sh', [...args, s.fp4, s.fp6, ...manifest], s.timeoutS + SWITCH_WAIT_S);
}

/** Claims the switch, moves the new files into place, records state, unlocks. */
export function commitCall(
  paths: RemotePaths,
  id: string,
  ipv6: boolean,
  backup: string,
  stateJson: string,
): RemoteCall {
  // It may find the switch fired, and wait for its undo.
  return step('commit', 'commit.sh', [paths.rules, paths.rules6, id, ipv6 ? 1 : 0, backup, stateJson], SWITCH_WAIT_S);
}

/** After a failed confirmation: has the dead-man switch fired? */
export function verifyCall(paths: RemotePaths, id: string): RemoteCall {
  return step('verify', 'verify.sh', [paths.rules, id]);
}

/** Lists backups, newest first, as `TS SIZE` lines. */
export function backupsCall(paths: RemotePaths): RemoteCall {
  return step('backups', 'backups.sh', [paths.rules]);
}

/** Doctor's facts about a host (which of `tools` it has, and much else as `key=value` lines); changes nothing. */
export function factsCall(paths: RemotePaths, tools: readonly string[]): RemoteCall {
  return step('doctor-facts', 'facts.sh', [paths.rules, paths.rules6, ...tools]);
}

/** `ship --persist`: installs a boot hook where nothing loads the rules at boot, or rewrites fwgen's own. */
export function bootHookCall(paths: RemotePaths): RemoteCall {
  return step('boot-hook', 'boot-hook.sh', [paths.rules, paths.rules6]);
}

let deadman: Buffer | undefined;

/** The upload of the apply step: the dead-man switch script is one of its parts. */
export function deadmanPart(): Part {
  deadman ??= Buffer.from(remoteFile('deadman.sh'), 'utf8');
  return { name: 'deadman', bytes: deadman };
}

/** Hex SHA-256, as `sha256sum` prints it. */
export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// Parts are shared between hosts (a role's file, a plan's change, the switch): one digest each.
const digests = new WeakMap<Buffer, string>();

function digestOf(bytes: Buffer): string {
  let d = digests.get(bytes);
  if (d === undefined) digests.set(bytes, (d = sha256(bytes)));
  return d;
}

/** The last line a step printed on stderr, without the `fwgen: ` of remote/lib.sh's `fail`; control characters escaped. */
export function lastErrorLine(stderr: string): string | undefined {
  const line = stderr
    .trim()
    .split('\n')
    .filter(Boolean)
    .pop()
    ?.replace(/^fwgen: /, '');
  return line ? printable(line) : undefined;
}

/** Parses the `status=...` line and `key=value` pairs a script printed last. */
export function parseStatus(stdout: string): Record<string, string> {
  const line =
    stdout
      .trim()
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('status=')) ?? '';
  return parseKeyValues(line);
}

/** `a=1 b=2 owner=rest of line`: the last key takes the rest of the line. */
export function parseKeyValues(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = / ?([a-z0-9_]+)=/g;
  const keys = [...line.matchAll(re)];
  keys.forEach((m, i) => {
    const end = i + 1 < keys.length ? keys[i + 1].index : line.length;
    out[m[1]] = line.slice(m.index + m[0].length, end);
  });
  return out;
}
