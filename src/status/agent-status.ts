import { PINNED_CHAIN } from '../model/ownership.js';
import { parseAgentState } from '../remote/agent-poll.js';
import type { RemoteStatus } from '../remote/read.js';

/** What the pull agent of a host last did, from its state file, and where the role's release stands. */
export interface AgentStatus {
  /** The serial of the release the host runs (0: none yet). */
  readonly serial: number;
  /** The last poll's outcome: `applied SERIAL`, `unchanged`, `drift-repaired` or `kept: WHY`; `-` before any. */
  readonly outcome: string;
  /** Epoch seconds of the last poll, and of the last that left the host on its release (0: never). */
  readonly poll: number;
  readonly success: number;
  readonly detail: string;
  /** The serial the origin serves for the role, when it could be read. */
  readonly published?: number;
  /** The wave of a staged release the agent's config names (0: none). */
  readonly wave: number;
}

/** The agent's part of a status read; undefined on a host without an agent. */
export function agentStatusOf(remote: RemoteStatus, published: number | undefined): AgentStatus | undefined {
  if (!remote.agent) return undefined;
  const state = remote.agentState !== undefined ? parseAgentState(remote.agentState) : undefined;
  return {
    serial: state?.serial ?? 0,
    outcome: state?.outcome ?? '-',
    poll: state?.poll ?? 0,
    success: state?.success ?? 0,
    detail: state?.detail ?? 'never polled',
    wave: state?.wave ?? 0,
    ...(published !== undefined ? { published } : {}),
  };
}

/** The host runs an older release than the origin serves. */
export function isBehind(a: AgentStatus): boolean {
  return a.published !== undefined && a.serial < a.published;
}

const PINNED_LINE = new RegExp(`^(:${PINNED_CHAIN} |-A ${PINNED_CHAIN} |-A \\S+ .*-j ${PINNED_CHAIN}( |$))`);

/**
 * iptables-save text without the agent's pinned chain and the jumps into it: what an agent host runs
 * of its release, to compare with rendered/ (the pinned rules come from the agent's config, not the release).
 */
export function withoutPinned(save: string): string {
  return save
    .split('\n')
    .filter((l) => !PINNED_LINE.test(l))
    .join('\n');
}
