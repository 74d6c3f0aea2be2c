import { hostname, userInfo } from 'node:os';
import { appendAudit } from '../audit/audit-log.js';
import { UsageError } from '../errors.js';
import type { Host } from '../inventory/model.js';
import type { Reach } from '../remote/reach.js';
import { resolveAll, runReach, type RunReach } from '../remote/reach-resolver.js';
import { DEFAULT_STEP_LIMITS, expandHome, SshTransport, type AcceptedKey } from '../remote/ssh-transport.js';
import type { Transport } from '../remote/transport.js';
import { watchTransport, type WaitProgress } from './progress.js';
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

/** What a run's SSH transport reports besides connections: progress on long waits, host keys it recorded. */
export interface RunWatch {
  readonly progress?: WaitProgress;
  /** `--accept-new`: where each recorded host key is logged, and the run it belongs to. */
  readonly keys?: {
    readonly auditLog: string;
    readonly run: string;
    readonly inventory: string;
    readonly commit: string | null;
  };
}

/**
 * The run's ssh_config resolution and an SSH transport using it; prints ssh_config warnings once.
 * Every hop's known_hosts file is read here, so that one that is not a known_hosts file (an
 * authorized_keys file, /dev/zero) stops the run (exit 2) before any host is touched.
 */
export function sshForRun(
  opts: { sshConfig?: string; stepTimeout?: string },
  hosts: readonly Host[],
  watch: RunWatch = {},
): { reach: RunReach; reaches: Map<string, Reach>; transport: Transport } {
  const limits = {
    ...DEFAULT_STEP_LIMITS,
    ...(opts.stepTimeout !== undefined ? { stepMs: positiveInt(opts.stepTimeout, '--step-timeout') * 1000 } : {}),
  };
  const reach = runReach(opts.sshConfig);
  const reaches = resolveAll(reach, hosts);
  for (const w of reach.warnings()) process.stderr.write(`warning: ${w}\n`);
  const ssh = new SshTransport(
    (ssh) => reach.resolve(ssh),
    undefined,
    limits,
    (key) => acceptedKey(key, watch.keys),
  );
  for (const r of reaches.values())
    for (const hop of [...r.jumps, r.target]) ssh.loadKnownHosts(expandHome(hop.knownHosts));
  return { reach, reaches, transport: watch.progress ? watchTransport(ssh, watch.progress) : ssh };
}

/** A host key `--accept-new` recorded: its fingerprint on stderr, and a line in the deploy log. */
function acceptedKey(key: AcceptedKey, log: RunWatch['keys']): void {
  process.stderr.write(
    `accepted new host key for ${key.name}: ${key.keyType} ${key.fingerprint} (recorded in ${key.knownHosts})\n`,
  );
  if (!log) return;
  appendAudit(log.auditLog, {
    time: new Date().toISOString(),
    action: 'host-key',
    run: log.run,
    who: `${userInfo().username}@${hostname()}`,
    inventory: log.inventory,
    commit: log.commit,
    hosts: [],
    hostKey: key,
  });
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
