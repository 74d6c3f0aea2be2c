import { step, type RemoteCall, type RemotePaths } from './scripts.js';
import { parseBootMechanisms, type BootMechanism, type BootRunner } from './boot-hook.js';

const isRunner = (v: string | undefined): boolean => v === 'ifupdown' || v === 'systemd' || v === 'none';

/** Doctor's facts about a host (which of `tools` it has, and much else as `key=value` lines); changes nothing. */
export function factsCall(paths: RemotePaths, tools: readonly string[]): RemoteCall {
  return step('doctor-facts', 'facts.sh', [paths.rules, paths.rules6, ...tools]);
}

/** Commands whose presence doctor reports (or needs to interpret the other facts): the facts step's arguments. */
export const TOOLS = [
  'iptables',
  'iptables-restore',
  'iptables-save',
  'ip6tables-restore',
  'ip6tables-save',
  'iptables-legacy-save',
  'ip6tables-legacy-save',
  'iptables-nft-save',
  'ip6tables-nft-save',
  'ipset',
  'sha256sum',
  'curl',
  'wget',
  'ssh-keygen',
] as const;
export type Tool = (typeof TOOLS)[number];

/** How the live filter table compares with the rules file. */
export type LiveState = 'match' | 'differ' | 'no-file' | 'no-tool';

/** A `<rules_path>.fwgen-*` file or folder a ship left behind, with its age. */
export interface Leftover {
  readonly path: string;
  readonly ageS: number;
}

/** Everything one host told about itself, in one run of remote/facts.sh. */
export interface HostFacts {
  readonly uid: number;
  readonly tools: ReadonlySet<Tool>;
  /** First line of `iptables -V`: `iptables v1.8.9 (nf_tables)`. */
  readonly iptablesVersion: string;
  /** `-A` lines per backend and family, from `iptables-legacy-save` etc.; undefined when the command is missing. */
  readonly ruleCounts: {
    readonly legacy4?: number;
    readonly legacy6?: number;
    readonly nft4?: number;
    readonly nft6?: number;
  };
  readonly live4: LiveState;
  readonly live6: LiveState;
  readonly boot: readonly BootMechanism[];
  /**
   * What would run fwgen's boot hook (remote/boot.sh `boot_runner`): ifupdown, systemd, or none (ship's
   * boot-hook step fails there); undefined from a host whose facts step did not say.
   */
  readonly bootRunner?: BootRunner;
  readonly ufwEnabled: boolean;
  readonly ufwChains: number;
  readonly firewalldActive: boolean;
  readonly dockerChains: number;
  readonly nftablesEnabled: boolean;
  readonly addresses: readonly { readonly ifname: string; readonly address: string }[];
  readonly links: readonly string[];
  /** Armed dead-man switches: `alive` when the process (or systemd timer) that fires it still exists. */
  readonly armed: readonly (Leftover & { readonly id: string; readonly alive: boolean })[];
  readonly lock?: Leftover & { readonly owner: string };
  readonly staged: readonly Leftover[];
  /** Why the rules' folder is not root's alone (remote/lib.sh `unsafe_folder`): every step refuses it. */
  readonly unsafeFolder?: string;
  /** Pull mode: `ssh-keygen -Y verify` exists (OpenSSH 8.1 or later). */
  readonly sshsig?: boolean;
  /** Pull mode: which wget the host has (the agent's timeouts need GNU wget's options). */
  readonly wget?: 'gnu' | 'other';
  /** Pull mode: the agent is installed (`<rules_path>.fwgen-agent/config`). */
  readonly agent?: boolean;
}

/** Parses what remote/facts.sh printed. */
export function parseFacts(stdout: string): HostFacts {
  const kv: [string, string][] = stdout
    .split('\n')
    .filter((l) => /^[a-z0-9_.]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
  const all = (k: string) => kv.filter(([key]) => key === k).map(([, v]) => v);
  const one = (k: string) => all(k)[0];
  const num = (k: string) => (one(k) === undefined ? undefined : Number(one(k)));
  const words = (v: string, n: number) => {
    const parts = v.split(' ');
    return [...parts.slice(0, n), parts.slice(n).join(' ')];
  };
  const lockLine = one('lock');
  const lock = lockLine === undefined ? undefined : words(lockLine, 2);
  return {
    uid: num('uid') ?? -1,
    tools: new Set(all('tool').filter((t): t is Tool => (TOOLS as readonly string[]).includes(t))),
    iptablesVersion: one('version') ?? '',
    ruleCounts: {
      legacy4: num('count.legacy4'),
      legacy6: num('count.legacy6'),
      nft4: num('count.nft4'),
      nft6: num('count.nft6'),
    },
    live4: (one('live4') ?? 'no-tool') as LiveState,
    live6: (one('live6') ?? 'no-tool') as LiveState,
    boot: parseBootMechanisms(stdout),
    ...(isRunner(one('boot_runner')) ? { bootRunner: one('boot_runner') as BootRunner } : {}),
    ufwEnabled: one('ufw') === 'enabled',
    ufwChains: num('ufw_chains') ?? 0,
    firewalldActive: one('firewalld') === 'active',
    dockerChains: num('docker_chains') ?? 0,
    nftablesEnabled: one('nftables') === 'enabled',
    addresses: all('addr').map((v) => {
      const [ifname, address] = words(v, 1);
      return { ifname, address };
    }),
    links: all('link'),
    armed: all('armed').map((v) => {
      const [ageS, alive, id, path] = words(v, 3);
      return { ageS: Number(ageS), alive: alive === '1', id, path };
    }),
    lock: lock && { ageS: Number(lock[0]), path: lock[1], owner: lock[2].trim() },
    staged: all('staged').map((v) => {
      const [ageS, path] = words(v, 1);
      return { ageS: Number(ageS), path };
    }),
    ...(one('unsafe_folder') ? { unsafeFolder: one('unsafe_folder') } : {}),
    ...(one('sshsig') !== undefined ? { sshsig: one('sshsig') === '1' } : {}),
    ...(one('wget') === 'gnu' || one('wget') === 'other' ? { wget: one('wget') as 'gnu' | 'other' } : {}),
    ...(one('agent') === '1' ? { agent: true } : {}),
  };
}
