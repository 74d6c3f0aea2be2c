import { lastErrorLine, parseStatus, step, SWITCH_WAIT_S, type RemoteCall, type RemotePaths } from './scripts.js';
import type { ExecResult } from './transport.js';

/** Seconds a poll may spend fetching (each of a few requests is bounded by remote/agent.sh's timeouts). */
export const FETCH_WAIT_S = 120;

/** Runs one poll of the installed agent now (remote/agent-poll.sh); it may wait on the origin and on a switch. */
export function agentPollCall(paths: RemotePaths): RemoteCall {
  return step('agent-poll', 'agent-poll.sh', [paths.rules], FETCH_WAIT_S + SWITCH_WAIT_S);
}

/**
 * What a poll ends with (remote/agent.sh): `applied SERIAL`, `unchanged`, `drift-repaired`, or `kept: WHY`
 * with WHY one of unreachable, http-NNN, bad-signature, bad-manifest, wrong-role, replay, expired,
 * hash-mismatch, test-failed, locked, error.
 */
export interface AgentPoll {
  readonly outcome: string;
  /** The serial of the release the host runs (0: none yet). */
  readonly serial: number;
  /** Epoch seconds of this poll, and of the last poll that left the host on its release (0: never). */
  readonly poll: number;
  readonly success: number;
  readonly detail: string;
}

/** The agent's state file: its last poll, and the wave of a staged release its config names (0: none). */
export interface AgentState extends AgentPoll {
  readonly wave: number;
}

export type AgentPollOutput =
  | ({ readonly kind: 'polled' } & AgentPoll)
  /** Another poll runs on the host (its schedule's). */
  | { readonly kind: 'busy' }
  | { readonly kind: 'not-installed' }
  | { readonly kind: 'failed'; readonly code: number; readonly error?: string };

const OUTCOME = /^(applied [0-9]{1,12}|unchanged|drift-repaired|kept: [a-z0-9-]{1,30})$/;

/** Parses a poll's output (host-supplied text: the outcome must be one the agent prints). */
export function parseAgentPollOutput(r: ExecResult): AgentPollOutput {
  const status = parseStatus(r.stdout);
  if (status.status === 'busy') return { kind: 'busy' };
  if (status.status === 'not-installed') return { kind: 'not-installed' };
  const outcome = status.outcome?.trim() ?? '';
  if (status.status !== 'polled' || !OUTCOME.test(outcome))
    return { kind: 'failed', code: r.code, error: lastErrorLine(r.stderr) ?? `agent exited with ${r.code}` };
  const detail = r.stdout.split('\n').find((l) => l.startsWith('detail=')) ?? 'detail=';
  const num = (v: string | undefined): number => (v !== undefined && /^[0-9]{1,12}$/.test(v.trim()) ? Number(v) : 0);
  return {
    kind: 'polled',
    outcome,
    serial: num(status.serial),
    poll: num(status.poll),
    success: num(status.success),
    detail: detail.slice('detail='.length).slice(0, 400),
  };
}

/** The agent's state file (RULES.fwgen-agent/state, `key=value` lines), as status reads it. */
export function parseAgentState(text: string): AgentState | undefined {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const outcome = kv.get('outcome') ?? '';
  if (!OUTCOME.test(outcome)) return undefined;
  const num = (k: string): number => (/^[0-9]{1,12}$/.test(kv.get(k) ?? '') ? Number(kv.get(k)) : 0);
  return {
    outcome,
    serial: num('serial'),
    poll: num('poll'),
    success: num('success'),
    detail: (kv.get('detail') ?? '').slice(0, 400),
    wave: num('wave'),
  };
}
