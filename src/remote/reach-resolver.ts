import type { Host, SshSettings } from '../inventory/model.js';
import { resolveReach, type Reach } from './reach.js';
import { loadSshConfig, type SshConfig } from './ssh-config.js';

/** Resolves hosts' reach for one run: each ssh_config file read once; `--ssh-config` wins over `ssh.config`. */
export interface RunReach {
  resolve(ssh: SshSettings): Reach;
  /** Warnings of the ssh_config files read so far (a `Match exec` not run). */
  warnings(): string[];
}

/** A resolver for a run; `override` is `--ssh-config` (a path or none). */
export function runReach(override: string | undefined): RunReach {
  const configs = new Map<string, SshConfig>();
  const configFor = (ssh: SshSettings): SshConfig => {
    const path = override ?? ssh.config;
    const key = path ?? '';
    if (!configs.has(key)) configs.set(key, loadSshConfig(path));
    return configs.get(key)!;
  };
  return {
    resolve: (ssh) => resolveReach(ssh, configFor(ssh)),
    warnings: () => [...new Set([...configs.values()].flatMap((c) => c.warnings))],
  };
}

/** Resolves every host once, so a bad ssh_config or jump setting stops the run (exit 2) before any host is touched. */
export function resolveAll(reach: RunReach, hosts: readonly Host[]): Map<string, Reach> {
  return new Map(hosts.map((h) => [h.name, reach.resolve(h.ssh)]));
}
