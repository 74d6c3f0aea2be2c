import type { Host } from '../inventory/model.js';
import type { Part } from '../remote/apply.js';
import { agentInstallCall, agentUninstallCall, parseAgentInstallOutput } from '../remote/agent-install.js';
import { agentPollCall, parseAgentPollOutput } from '../remote/agent-poll.js';
import type { RemotePaths } from '../remote/scripts.js';
import { TransportError, type Session, type Transport } from '../remote/transport.js';
import { mapPool } from '../util/map-pool.js';

/** What to do on one host: install (with its files), uninstall, or run one poll now. */
export type AgentJob =
  | { readonly kind: 'install'; readonly host: Host; readonly paths: RemotePaths; readonly parts: readonly Part[] }
  | { readonly kind: 'uninstall' | 'poll'; readonly host: Host; readonly paths: RemotePaths };

/** One host's result: a value, never an exception. */
export interface AgentResult {
  readonly host: string;
  readonly role: string;
  /**
   * install: installed, updated, unchanged; uninstall: uninstalled, absent; poll: the agent's outcome
   * (`applied SERIAL`, `unchanged`, `drift-repaired`, `kept: WHY`), or busy / not-installed; failed.
   */
  readonly outcome: string;
  readonly ok: boolean;
  readonly detail: string;
  /** poll: the serial the host runs. */
  readonly serial?: number;
  readonly ms: number;
}

/** Settings of an agent run. */
export interface AgentRunSettings {
  readonly acceptNew: boolean;
  readonly connectTimeoutMs: number;
  /** Seconds between polls (the schedule). */
  readonly everyS: number;
  /** After an install: make sure the rules load at boot (the boot hook of `ship --persist`); returns a note. */
  readonly persist?: (session: Session, paths: RemotePaths) => Promise<string>;
}

/** Runs the jobs, at most `concurrency` hosts at once; results in the order of `jobs`. */
export function agentFleet(
  jobs: readonly AgentJob[],
  transport: Transport,
  s: AgentRunSettings,
  concurrency: number,
  onResult: (r: AgentResult) => void = () => {},
): Promise<AgentResult[]> {
  return mapPool(jobs, concurrency, (job) => agentHost(job, transport, s), onResult);
}

/** One host: connect, run the step, parse what it says. */
export async function agentHost(job: AgentJob, transport: Transport, s: AgentRunSettings): Promise<AgentResult> {
  const started = Date.now();
  const result = (outcome: string, ok: boolean, detail: string, serial?: number): AgentResult => ({
    host: job.host.name,
    role: job.host.role,
    outcome,
    ok,
    detail,
    ...(serial !== undefined ? { serial } : {}),
    ms: Date.now() - started,
  });
  let session: Session;
  try {
    session = await transport.connect({
      name: job.host.name,
      ssh: job.host.ssh,
      acceptNew: s.acceptNew,
      timeoutMs: s.connectTimeoutMs,
    });
  } catch (err) {
    return result('failed', false, describe(err));
  }
  try {
    switch (job.kind) {
      case 'install': {
        const input = Buffer.concat(job.parts.map((p) => p.bytes));
        const out = parseAgentInstallOutput(await session.run(agentInstallCall(job.paths, s.everyS, job.parts), input));
        if (out.kind === 'failed') return result('failed', false, out.error ?? `install step exited with ${out.code}`);
        if (out.kind !== 'installed' && out.kind !== 'updated' && out.kind !== 'unchanged')
          return result('failed', false, `unexpected install status ${out.kind}`);
        const boot = s.persist ? await s.persist(session, job.paths).catch((e: unknown) => describe(e)) : undefined;
        const files = out.changed > 0 ? `${out.changed} file(s) written` : 'nothing to write';
        return result(out.kind, true, [`schedule: ${out.schedule}`, files, boot].filter(Boolean).join('; '));
      }
      case 'uninstall': {
        const out = parseAgentInstallOutput(await session.run(agentUninstallCall(job.paths)));
        if (out.kind === 'failed') return result('failed', false, out.error ?? `uninstall exited with ${out.code}`);
        return out.kind === 'absent'
          ? result('absent', true, 'no agent on this host')
          : result('uninstalled', true, 'schedule and agent folder removed; the rules in place stay');
      }
      case 'poll': {
        const out = parseAgentPollOutput(await session.run(agentPollCall(job.paths)));
        if (out.kind === 'failed') return result('failed', false, out.error ?? `agent exited with ${out.code}`);
        if (out.kind === 'busy') return result('busy', false, 'another poll is running on the host');
        if (out.kind === 'not-installed')
          return result('not-installed', false, 'no agent on this host: fwgen agent install');
        return result(out.outcome, !out.outcome.startsWith('kept'), out.detail, out.serial);
      }
    }
  } catch (err) {
    return result('failed', false, describe(err));
  } finally {
    session.close();
  }
}

function describe(err: unknown): string {
  if (err instanceof TransportError) return err.message;
  return (err as Error)?.message ?? String(err);
}
