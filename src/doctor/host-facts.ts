import { prologue, type ScriptVars } from './prologue.js';
import { bootFilesSh, DETECT_BOOT_SH, parseBootMechanisms, type BootMechanism } from './boot-hook.js';

/** Commands whose presence doctor reports (or needs to interpret the other facts). */
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
] as const;
export type Tool = (typeof TOOLS)[number];

/** How the live filter table compares with the rules file. */
export type LiveState = 'match' | 'differ' | 'no-file' | 'no-tool';

/** A `<rules_path>.fwgen-*` file or folder a ship left behind, with its age. */
export interface Leftover {
  readonly path: string;
  readonly ageS: number;
}

/** Everything one host told about itself, in one script run. */
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
}

/**
 * One read-only script that prints `key=value` lines about the host: tools, backend and rule counts,
 * rules file vs live rules, boot mechanisms, other firewall managers, addresses and links, leftovers.
 */
export function factsScript(v: ScriptVars): string {
  return `${prologue(v)}
say() { printf '%s=%s\\n' "$1" "$2"; }
now=$(date +%s)
age() { echo $((now - $(stat -c %Y "$1" 2>/dev/null || echo "$now"))); }
has() { command -v "$1" >/dev/null 2>&1; }
say uid "$(id -u)"
for t in ${TOOLS.join(' ')}; do has "$t" && say tool "$t"; done
say version "$(iptables -V 2>/dev/null | head -n 1)"
for b in legacy nft; do
  for f in 4 6; do
    cmd=iptables; [ "$f" = 6 ] && cmd=ip6tables
    has "$cmd-$b-save" && say "count.$b$f" "$("$cmd-$b-save" 2>/dev/null | grep -c '^-A ')"
  done
done
# Only what fwgen owns is compared (its chains and hooks), as in remote/lib.sh: other tools' chains never differ.
owned() { sed 's/ \\[[0-9]*:[0-9]*\\]$//' | grep -E '^(:FWGEN-|-A FWGEN-|-A [A-Z]+ .*(-j FWGEN-|--comment "?fwgen))' | cksum; }
live_state() {
  if [ ! -f "$2" ]; then echo no-file; elif ! has "$1"; then echo no-tool;
  elif [ "$("$1" -t filter 2>/dev/null | owned)" = "$(owned < "$2")" ]; then echo match; else echo differ; fi
}
say live4 "$(live_state iptables-save "$RULES")"
say live6 "$(live_state ip6tables-save "$RULES6")"
${DETECT_BOOT_SH}
detect_boot
${bootFilesSh(v.paths)}detect_outdated
grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf && say ufw enabled
all=$(iptables-save 2>/dev/null)
say ufw_chains "$(printf '%s\\n' "$all" | grep -c '^:ufw-')"
say docker_chains "$(printf '%s\\n' "$all" | grep -c '^:DOCKER')"
if [ "$(systemctl is-active firewalld 2>/dev/null)" = active ] || pidof firewalld >/dev/null 2>&1; then say firewalld active; fi
ls /etc/systemd/system/*.wants/nftables.service >/dev/null 2>&1 && say nftables enabled
ip -o addr show 2>/dev/null | while read -r _ ifname _ addr _; do say addr "$ifname \${addr%/*}"; done
ip -o link show 2>/dev/null | while read -r _ ifname _; do ifname=\${ifname%:}; say link "\${ifname%%@*}"; done
for f in "$RULES".fwgen-armed.*; do
  [ -e "$f" ] || continue
  id=\${f#"$RULES.fwgen-armed."}; id=\${id%.fired}; id=\${id%.done}
  alive=0; pid=$(cat "$RULES.fwgen-deadman.$id.pid" 2>/dev/null)
  case "$pid" in
    systemd) systemctl is-active --quiet "fwgen-deadman-$id.timer" 2>/dev/null && alive=1 ;;
    [0-9]*) kill -0 "$pid" 2>/dev/null && alive=1 ;;
  esac
  say armed "$(age "$f") $alive $id $f"
done
[ -d "$LOCK" ] && say lock "$(age "$LOCK") $LOCK $(head -c 300 "$LOCK/owner" 2>/dev/null | tr '\\n' ' ')"
for f in "$RULES".fwgen-new.* "$RULES6".fwgen-new.*; do [ -e "$f" ] && say staged "$(age "$f") $f"; done
echo "status=facts"
`;
}

/** Parses what {@link factsScript} printed. */
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
  };
}
