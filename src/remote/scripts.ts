import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Inventory } from '../inventory/model.js';
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
export type StepName =
  | 'read'
  | 'apply'
  | 'commit'
  | 'verify'
  | 'backups'
  | 'doctor-facts'
  | 'boot-hook'
  | 'boot-remove'
  | 'agent-install'
  | 'agent-poll';

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

/** Remote paths of the rules files. */
export function remotePaths(inv: Pick<Inventory, 'rulesPath'>): RemotePaths {
  return { rules: inv.rulesPath, rules6: rules6PathFor(inv.rulesPath) };
}

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
  noBoot: 22,
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
  'boot-remove.sh': ['boot.sh'],
};

/** A step's call: lib.sh, the libraries it needs, its own file; values as arguments. */
export function step(name: StepName, file: string, args: readonly (string | number)[], waitS?: number): RemoteCall {
  const files = ['lib.sh', ...(LIBS[file] ?? []), file];
  return { name, script: files.map(remoteFile).join('\n'), args: args.map(String), ...(waitS ? { waitS } : {}) };
}

/** Hex SHA-256, as `sha256sum` prints it. */
export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
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
