import type { Part } from './apply.js';
import {
  lastErrorLine,
  parseKeyValues,
  parseStatus,
  remoteFile,
  sha256,
  step,
  type RemoteCall,
  type RemotePaths,
} from './scripts.js';
import type { ExecResult } from './transport.js';

/** The agent's own files, from the package's `remote/` folder: the agent and the steps it runs, byte for byte ship's. */
export const AGENT_SCRIPTS = [
  'agent.sh',
  'lib.sh',
  'sets.sh',
  'plan.sh',
  'agent-lib.sh',
  'apply.sh',
  'commit.sh',
  'deadman.sh',
] as const;

/** The agent's scripts as install parts (read once, shared by every host). */
export function agentScriptParts(): Part[] {
  return AGENT_SCRIPTS.map((name) => ({ name, bytes: scriptBytes(name) }));
}

const bytes = new Map<string, Buffer>();
function scriptBytes(name: string): Buffer {
  let b = bytes.get(name);
  if (!b) bytes.set(name, (b = Buffer.from(remoteFile(name), 'utf8')));
  return b;
}

/** Installs (or updates) the agent's files and schedule; `parts` go on stdin, in order. */
export function agentInstallCall(paths: RemotePaths, everyS: number, parts: readonly Part[]): RemoteCall {
  const manifest = parts.flatMap((p) => [p.name, p.bytes.length, sha256(p.bytes)]);
  return step('agent-install', 'agent-install.sh', [paths.rules, 'install', everyS, ...manifest]);
}

/** Removes the agent's schedule and folder (the rules in place stay). */
export function agentUninstallCall(paths: RemotePaths): RemoteCall {
  return step('agent-install', 'agent-install.sh', [paths.rules, 'uninstall', 0]);
}

/** What the install step did. */
export type AgentInstallOutput =
  | {
      readonly kind: 'installed' | 'updated' | 'unchanged';
      /** Files and schedule entries written. */
      readonly changed: number;
      readonly schedule: 'systemd' | 'cron';
    }
  | { readonly kind: 'uninstalled' | 'absent' }
  | { readonly kind: 'failed'; readonly code: number; readonly error?: string };

/** Parses the install step's result. */
export function parseAgentInstallOutput(r: ExecResult): AgentInstallOutput {
  const status = parseStatus(r.stdout).status;
  if (r.code !== 0 || status === undefined) return { kind: 'failed', code: r.code, error: lastErrorLine(r.stderr) };
  if (status === 'uninstalled' || status === 'absent') return { kind: status };
  if (status !== 'installed' && status !== 'updated' && status !== 'unchanged')
    return { kind: 'failed', code: r.code, error: `unexpected status ${status}` };
  const line = r.stdout.split('\n').find((l) => l.startsWith('changed=')) ?? '';
  const kv = parseKeyValues(line);
  return {
    kind: status,
    changed: Number(kv.changed) || 0,
    schedule: kv.schedule?.trim() === 'systemd' ? 'systemd' : 'cron',
  };
}
