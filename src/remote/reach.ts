import type { SshSettings } from '../inventory/model.js';
import { ConfigError } from '../errors.js';
import { isLiteralHost, isPort } from './host-name.js';
import { lookupHost, type SshConfig } from './ssh-config.js';

/** One SSH endpoint, every setting resolved: the target, or a jump host on the way. */
export interface Hop {
  /** The name as written (inventory `ssh.host`, a `jump` entry or a ProxyJump entry): maybe an alias. */
  readonly name: string;
  /** Where to connect (ssh_config HostName applied). */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly identities: readonly string[];
  readonly identitiesOnly: boolean;
  readonly knownHosts: string;
}

/** How to reach a host: through these jump hosts (first to last), then the target. */
export interface Reach {
  readonly target: Hop;
  readonly jumps: readonly Hop[];
  /** Where the jump chain came from, for doctor. */
  readonly jumpFrom?: 'inventory' | 'ssh_config';
}

const BUILT_IN = { user: 'root', port: 22, knownHosts: '~/.ssh/known_hosts' };
export const DEFAULT_IDENTITIES = ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'];

/**
 * Resolves a host's SSH settings: the inventory (per host, then defaults) wins over ssh_config,
 * which wins over built-in defaults; jump hosts from `ssh.jump`, else ssh_config's ProxyJump.
 */
export function resolveReach(ssh: SshSettings, cfg: SshConfig): Reach {
  const written = new Set(ssh.written ?? []);
  const c = lookupHost(cfg, ssh.host, written.has('user') ? ssh.user : undefined);
  const pick = <T>(key: 'user' | 'port' | 'knownHosts', fromConfig: T | undefined, builtIn: T): T =>
    written.has(key) ? (ssh[key] as T) : (fromConfig ?? builtIn);
  const identities = [...(written.has('identity') && ssh.identity ? [ssh.identity] : []), ...c.identityFiles];
  const fallbackIdentity = ssh.identity ? [ssh.identity] : DEFAULT_IDENTITIES;
  const target: Hop = {
    name: ssh.host,
    host: c.hostName ?? ssh.host,
    port: pick('port', c.port, BUILT_IN.port),
    user: pick('user', c.user, BUILT_IN.user),
    identities: identities.length > 0 ? identities : fallbackIdentity,
    identitiesOnly: c.identitiesOnly ?? false,
    knownHosts: pick('knownHosts', c.knownHosts, ssh.knownHosts),
  };
  checkHop(target, cfg);
  const spec = ssh.jump ?? c.proxyJump;
  if (!spec || spec === 'none') return { target, jumps: [] };
  const inherit = { identities: fallbackIdentity, knownHosts: target.knownHosts };
  const jumps = parseJumpSpec(spec).map((j) => checkHop(resolveJump(j, cfg, inherit), cfg, spec));
  return { target, jumps, jumpFrom: ssh.jump ? 'inventory' : 'ssh_config' };
}

/**
 * Every hop's name and address are literal, as the inventory's ssh.host must be: what ssh_config says
 * (HostName, ProxyJump, Port) is checked the same way before anything connects to it, or records its
 * host key under that name (`HostName *` would record a key for every host).
 */
function checkHop(hop: Hop, cfg: SshConfig, jumpSpec?: string): Hop {
  const from = jumpSpec === undefined ? '' : ` (jump host "${jumpSpec}")`;
  // The name may be an ssh_config alias (a lookup key, never connected to): no pattern, list or space.
  if (!/^[A-Za-z0-9_.:-]{1,253}$/.test(hop.name))
    throw new ConfigError(`${cfg.file}: "${hop.name}"${from} is not a host name, an address or an alias`);
  if (!isLiteralHost(hop.host))
    throw new ConfigError(
      `${cfg.file}: HostName "${hop.host}" for ${hop.name}${from} is neither an IP address nor a DNS name ` +
        '(fwgen connects to, and records host keys for, literal names only)',
    );
  if (!isPort(hop.port))
    throw new ConfigError(`${cfg.file}: Port "${hop.port}" for ${hop.name}${from} is not 1..65535`);
  return hop;
}

interface JumpSpec {
  readonly user?: string;
  readonly host: string;
  readonly port?: number;
}

const JUMP_ENTRY = /^(?:([^@\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^:@\s[\]]+)(?::(\d{1,5}))?$/;

/** Parses `[user@]host[:port][,next...]` (IPv6 in brackets), as `ssh -J` and ProxyJump take it. */
export function parseJumpSpec(spec: string): JumpSpec[] {
  return spec.split(',').map((part) => {
    const m = JUMP_ENTRY.exec(part.trim().replace(/^ssh:\/\//, ''));
    const port = m?.[3] === undefined ? undefined : Number(m[3]);
    if (!m || (port !== undefined && (port < 1 || port > 65535))) {
      throw new ConfigError(`jump host "${part}" is not [user@]host[:port] (in "${spec}")`);
    }
    return { user: m[1], host: m[2].replace(/^\[|\]$/g, ''), port };
  });
}

/** A jump host is looked up in ssh_config too; what the jump entry says wins. Its own ProxyJump is not followed. */
function resolveJump(j: JumpSpec, cfg: SshConfig, inherit: { identities: readonly string[]; knownHosts: string }): Hop {
  const c = lookupHost(cfg, j.host, j.user);
  return {
    name: j.host,
    host: c.hostName ?? j.host,
    port: j.port ?? c.port ?? BUILT_IN.port,
    user: j.user ?? c.user ?? BUILT_IN.user,
    identities: c.identityFiles.length > 0 ? c.identityFiles : inherit.identities,
    identitiesOnly: c.identitiesOnly ?? false,
    knownHosts: c.knownHosts ?? inherit.knownHosts,
  };
}

/** `user@host:port`, for messages. */
export function hopLabel(h: Hop): string {
  const host = h.host.includes(':') ? `[${h.host}]` : h.host;
  return `${h.user}@${host}${h.port === 22 ? '' : `:${h.port}`}${h.name !== h.host ? ` (${h.name})` : ''}`;
}

/** One line saying how a host is reached: alias, jump chain. */
export function describeReach(r: Reach): string {
  if (r.jumps.length === 0) return hopLabel(r.target);
  const from = r.jumpFrom === 'inventory' ? 'ssh.jump' : 'ssh_config ProxyJump';
  return `${hopLabel(r.target)} via ${r.jumps.map(hopLabel).join(' → ')} (from ${from})`;
}
