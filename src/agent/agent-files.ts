import type { AgentSettings, Host, Inventory } from '../inventory/model.js';
import type { Part } from '../remote/apply.js';
import { agentScriptParts } from '../remote/agent-install.js';
import { allowedSigners } from '../remote/release-trust.js';
import { rules6PathFor } from '../remote/scripts.js';
import { pinnedFragments } from './pinned.js';

/** Settings of an agent install that do not come from the inventory. */
export interface AgentInstallSettings {
  /** fwgen's version, recorded in the config and in the state file of each apply. */
  readonly version: string;
  /** node_exporter's textfile folder; the agent writes its metrics there when the folder exists. */
  readonly textfileDir: string;
  /** Dead-man switch of the agent's applies (seconds). */
  readonly timeoutS: number;
  /** Backups of the previous rules kept on the host. */
  readonly keep: number;
  /** Staged releases: each host's wave (1 = the first, the canary when there is one); absent: none. */
  readonly waves?: ReadonlyMap<string, number>;
}

/** The agent's config file: `key value` lines, every value one word of a checked pattern (remote/agent.sh reads it). */
export function agentConfig(agent: AgentSettings, host: Host, rulesPath: string, s: AgentInstallSettings): string {
  return [
    'fwgen-agent 1',
    `version ${s.version}`,
    `host ${host.name}`,
    `role ${host.role}`,
    `rules6 ${rules6PathFor(rulesPath)}`,
    ...agent.origins.map((o) => `origin ${o}`),
    `every ${agent.everyS}`,
    `timeout ${s.timeoutS}`,
    `keep ${s.keep}`,
    `textfile ${s.textfileDir}`,
    ...(s.waves?.has(host.name) ? [`wave ${s.waves.get(host.name)}`] : []),
    '',
  ].join('\n');
}

/**
 * What `agent install` puts on each host, in the order remote/agent-install.sh stages it: the agent and
 * its steps, its config, the trusted keys, and the pinned rules of each family.
 */
export function agentParts(
  inv: Inventory & { readonly agent: AgentSettings },
  hosts: readonly Host[],
  s: AgentInstallSettings,
): Map<string, Part[]> {
  const scripts = agentScriptParts();
  const signers = Buffer.from(allowedSigners(inv.agent.signers), 'utf8');
  const pinned = pinnedFragments(inv, hosts);
  const text = (name: string, t: string): Part => ({ name, bytes: Buffer.from(t, 'utf8') });
  return new Map(
    hosts.map((h) => [
      h.name,
      [
        ...scripts,
        text('config', agentConfig(inv.agent, h, inv.rulesPath, s)),
        { name: 'allowed_signers', bytes: signers },
        text('pinned4', pinned.get(h.name)!.ipv4),
        text('pinned6', pinned.get(h.name)!.ipv6),
      ],
    ]),
  );
}
