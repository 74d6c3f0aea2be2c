/** The validated, normalized inventory: every value here has passed a strict pattern. */

export type Family = 'ipv4' | 'ipv6';
export type Proto = 'tcp' | 'udp';

/** A network in canonical form; a single address has the full prefix length. */
export interface Net {
  readonly family: Family;
  /** Canonical text as iptables-save prints it, always with a prefix: `198.51.100.11/32`. */
  readonly cidr: string;
  /** Sort key: family first, then address bytes, then prefix length. */
  readonly key: string;
}

/** A port or port range on one protocol. */
export interface PortSpec {
  readonly proto: Proto;
  readonly from: number;
  readonly to: number;
  /** As iptables-save prints the --dport argument: `5432` or `8000:8100`. */
  readonly dport: string;
  /** As written in the inventory: `tcp/5432`. */
  readonly text: string;
}

/** How fwgen reaches a host over SSH. */
export interface SshSettings {
  readonly host: string;
  readonly user: string;
  readonly port: number;
  readonly identity?: string;
  readonly knownHosts: string;
  readonly sudo: boolean;
  /** Jump hosts, `[user@]host[:port][,next...]`, or `none`; unset: ssh_config's ProxyJump. */
  readonly jump?: string;
  /** The address the host sees SSH come from, when it cannot be found out (NAT, a jump host). */
  readonly source?: string;
  /** ssh_config file to read, or `none`; unset: ~/.ssh/config. */
  readonly config?: string;
  /** Settings written in the inventory (per host or defaults): they win over ssh_config. */
  readonly written?: readonly ('host' | 'user' | 'port' | 'identity' | 'knownHosts')[];
}

export interface Host {
  readonly name: string;
  readonly role: string;
  /** The addresses other hosts see; at most one per family. */
  readonly addresses: readonly Net[];
  readonly ssh: SshSettings;
}

/** A reference in an `allow.from` list, already classified. */
export type SourceRef =
  | { readonly kind: 'role'; readonly name: string }
  | { readonly kind: 'host'; readonly name: string }
  | { readonly kind: 'net'; readonly net: Net };

/** Sources that may reach ports of a role (an `allow` entry, or a fleet-wide `monitoring` entry). */
export interface AllowRule {
  /** Where the rule was written, for rule comments: `allow#1` or `monitoring#1`. */
  readonly label: string;
  readonly from: readonly SourceRef[];
  readonly ports: readonly PortSpec[];
}

/** What fwgen does with forwarded packets: reject them (its own FORWARD chain), or leave FORWARD alone. */
export type ForwardMode = 'reject' | 'leave';

export interface Role {
  readonly name: string;
  readonly public: boolean;
  readonly forward: ForwardMode;
  readonly ports: readonly PortSpec[];
  readonly allow: readonly AllowRule[];
  readonly hosts: readonly Host[];
  /** Template file name chosen with `template:`, if any. */
  readonly template?: string;
  /** Where `template:` is written (`file:line:col`), for errors about the template it names. */
  readonly templateAt?: { readonly file: string; readonly line: number; readonly col: number };
}

export type Trust = 'fleet' | 'none';

/** How address lists reach the rules: one rule per CIDR (`none`), or named ipsets matched by one rule each. */
export type SetsMode = 'none' | 'ipset';

/**
 * Chains of other tools kept, with the jumps into them, when `preserve:` is not set (or says
 * `default`): Docker, fail2ban, Kubernetes (kube-proxy), Calico, Cilium, libvirt, flannel, Weave,
 * Tailscale, sshguard and OpenStack nova. Names vary between versions of these tools, hence patterns.
 */
export const DEFAULT_PRESERVE: readonly string[] = [
  'DOCKER*',
  'f2b-*',
  'fail2ban-*',
  'KUBE-*',
  'cali-*',
  'CILIUM_*',
  'LIBVIRT_*',
  'FLANNEL-*',
  'WEAVE-*',
  'ts-*',
  'sshguard',
  'nova-*',
];

/** Pull mode (`agent:`): where hosts fetch signed releases, whom they trust, how often they ask. */
export interface AgentSettings {
  /** Base URLs of the published tree, tried in order, each ending with `/`. */
  readonly origins: readonly string[];
  /** OpenSSH public keys (`type base64 [comment]`) whose signatures hosts accept. */
  readonly signers: readonly string[];
  /** Seconds between polls (each host adds its own fixed delay). */
  readonly everyS: number;
  /** Seconds a release stays valid after it is signed. */
  readonly expiresS: number;
}

export interface Inventory {
  /** Path of the inventory file as given (relative paths stay relative, for messages and headers). */
  readonly file: string;
  /** Directory holding the inventory file; `templates/` beside it overrides built-in templates. */
  readonly dir: string;
  readonly interface?: string;
  readonly rulesPath: string;
  readonly management: readonly Net[];
  readonly monitoring: readonly AllowRule[];
  readonly trust: Trust;
  /** `ipset`: address lists become named sets (rendered once, in rendered/sets/ipset.rules). */
  readonly sets: SetsMode;
  /** Chain name patterns of other tools whose chains, and jumps into them, fwgen keeps. */
  readonly preserve: readonly string[];
  /** Sorted by name. */
  readonly roles: readonly Role[];
  /** Every host of every role, sorted by name. */
  readonly hosts: readonly Host[];
  /** True when any IPv6 address appears anywhere: every role then also gets an ip6tables file. */
  readonly hasIpv6: boolean;
  /** Pull mode settings, when the inventory has an `agent:` block. */
  readonly agent?: AgentSettings;
}
