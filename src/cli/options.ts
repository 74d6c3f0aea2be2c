import { UsageError } from '../errors.js';
import type { Host } from '../inventory/model.js';
import type { Reach } from '../remote/reach.js';
import { resolveAll, runReach, type RunReach } from '../remote/reach-resolver.js';
import { DEFAULT_STEP_LIMITS, expandHome, SshTransport } from '../remote/ssh-transport.js';
import type { ProjectOptions } from './project.js';

/** Options of every command that talks to hosts (program.ts `connection()`). */
export interface HostOptions extends ProjectOptions {
  host?: string[];
  concurrency: string;
  connectTimeout: string;
  /** `--step-timeout S`: how long one remote step may run (default 120). */
  stepTimeout?: string;
  json?: boolean;
  /** `--ssh-config PATH|none`. */
  sshConfig?: string;
}

/**
 * The run's ssh_config resolution and an SSH transport using it; prints ssh_config warnings once.
 * Every hop's known_hosts file is read here, so that one that is not a known_hosts file (an
 * authorized_keys file, /dev/zero) stops the run (exit 2) before any host is touched.
 */
export function sshForRun(
  opts: { sshConfig?: string; stepTimeout?: string },
  hosts: readonly Host[],
): { reach: RunReach; reaches: Map<string, Reach>; transport: SshTransport } {
  const limits = {
    ...DEFAULT_STEP_LIMITS,
    ...(opts.stepTimeout !== undefined ? { stepMs: positiveInt(opts.stepTimeout, '--step-timeout') * 1000 } : {}),
  };
  const reach = runReach(opts.sshConfig);
  const reaches = resolveAll(reach, hosts);
  for (const w of reach.warnings()) process.stderr.write(`warning: ${w}\n`);
  const transport = new SshTransport((ssh) => reach.resolve(ssh), undefined, limits);
  for (const r of reaches.values())
    for (const hop of [...r.jumps, r.target]) transport.loadKnownHosts(expandHome(hop.knownHosts));
  return { reach, reaches, transport };
}

/** Parses a numeric option that must be a whole number ≥ 1. */
export function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${value} is not a positive whole number`);
  return n;
}

/** Parses a numeric option that must be a whole number ≥ 0. */
export function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} ${value} is not a whole number`);
  return n;
}
