import { setsPathFor } from '../ship/remote-scripts.js';
import { prologue, type ScriptVars } from './prologue.js';

/** Where fwgen's own boot hook goes: the Debian ifupdown hook, or a systemd unit where ifupdown is absent. */
export const BOOT_HOOK_PATH = '/etc/network/if-pre-up.d/fwgen-iptables';
export const BOOT_UNIT_PATH = '/etc/systemd/system/fwgen-iptables.service';

/** Something on the host that loads iptables rules at boot. */
export interface BootMechanism {
  readonly kind: 'if-pre-up.d' | 'netfilter-persistent' | 'systemd';
  readonly path: string;
  /** It restores this inventory's rules file (not some other file). */
  readonly loadsRules: boolean;
  /**
   * Whether it will actually run: `ok`, or why not. ifupdown's run-parts skips hooks that are not
   * executable or whose name has a dot; an if-pre-up.d hook never runs without ifupdown at all.
   */
  readonly state: 'ok' | 'no-ifupdown' | 'not-executable' | 'bad-name' | 'disabled';
}

/**
 * Shell function `detect_boot` (needs RULES): prints one `boot=KIND LOADS STATE PATH` line per boot
 * mechanism found. Shared by `doctor` (to report) and {@link bootHookScript} (to install only when missing).
 */
export const DETECT_BOOT_SH = `detect_boot() {
  has_ifup=0; command -v ifup >/dev/null 2>&1 && has_ifup=1
  for f in /etc/network/if-pre-up.d/*; do
    [ -f "$f" ] && grep -q 'iptables-restore' "$f" 2>/dev/null || continue
    loads=0; grep -qF -- "$RULES" "$f" && loads=1
    st=ok
    case "\${f##*/}" in *[!A-Za-z0-9_-]*) st=bad-name ;; esac
    [ -x "$f" ] || st=not-executable
    [ "$has_ifup" = 1 ] || st=no-ifupdown
    echo "boot=if-pre-up.d $loads $st $f"
  done
  if [ -f /etc/iptables/rules.v4 ] && { command -v netfilter-persistent >/dev/null 2>&1 || [ -x /usr/sbin/netfilter-persistent ]; }; then
    loads=0; [ "$RULES" = /etc/iptables/rules.v4 ] && loads=1
    st=disabled
    if ls /etc/systemd/system/*.wants/netfilter-persistent.service /etc/rcS.d/S*netfilter-persistent /etc/rc2.d/S*netfilter-persistent >/dev/null 2>&1; then st=ok; fi
    echo "boot=netfilter-persistent $loads $st /etc/iptables/rules.v4"
  fi
  for f in /etc/systemd/system/*.service; do
    [ -f "$f" ] && grep -q 'iptables-restore' "$f" 2>/dev/null || continue
    loads=0; grep -qF -- "$RULES" "$f" && loads=1
    st=disabled; ls /etc/systemd/system/*.wants/"\${f##*/}" >/dev/null 2>&1 && st=ok
    echo "boot=systemd $loads $st $f"
  done
}
`;

/** Parses the `boot=` lines {@link DETECT_BOOT_SH} printed. */
export function parseBootMechanisms(stdout: string): BootMechanism[] {
  const out: BootMechanism[] = [];
  for (const line of stdout.split('\n')) {
    const m =
      /^boot=(if-pre-up\.d|netfilter-persistent|systemd) ([01]) (ok|no-ifupdown|not-executable|bad-name|disabled) (.+)$/.exec(
        line,
      );
    if (m)
      out.push({
        kind: m[1] as BootMechanism['kind'],
        loadsRules: m[2] === '1',
        state: m[3] as BootMechanism['state'],
        path: m[4],
      });
  }
  return out;
}

/**
 * What {@link bootHookScript} did on a host: `installed` its hook; found one already loading the rules
 * (`present`); or left alone something that loads other rules at boot (`conflict`) or would load these
 * but will not run (`inactive`), for a person to decide.
 */
export interface BootHookResult {
  readonly status: 'installed' | 'present' | 'conflict' | 'inactive';
  readonly mechanism: BootMechanism;
}

/**
 * Installs a boot hook restoring `$RULES` (and `$RULES6` when it exists at boot), unless something
 * already loads iptables rules at boot. Prints the `boot=` lines, then `status=installed|present|conflict|inactive`.
 * With ifupdown (or without systemd running) it is `/etc/network/if-pre-up.d/fwgen-iptables`; on a
 * systemd host without ifupdown, an enabled oneshot unit ordered before network-pre.target.
 */
export function bootHookScript(v: ScriptVars): string {
  // rules_path matched ^/[A-Za-z0-9._/@+-]*$, so it needs no quoting here (nor inside the unit's single quotes).
  // A failed restore is logged, not fatal: a failing hook would keep the interface down and the host unreachable.
  // --noflush, and only while fwgen's chain is absent: the hook runs once per interface, and tools that
  // started earlier (Docker, fail2ban) keep their chains.
  const restore = (tool: string, file: string) => {
    const list = tool.replace('-restore', '');
    return `if [ -r ${file} ] && ! ${list} -n -L FWGEN-INPUT >/dev/null 2>&1; then ${tool} --noflush < ${file} || logger -t fwgen "${tool} < ${file} failed at boot"; fi`;
  };
  // ipset mode: the sets go in first, or the rules that match them fail to load.
  // -exist: the hook runs once per interface.
  const setsFile = setsPathFor(v.paths.rules);
  const sets =
    `if [ -r ${setsFile} ] && command -v ipset >/dev/null 2>&1; then ` +
    `ipset restore -exist < ${setsFile} || logger -t fwgen "ipset restore < ${setsFile} failed at boot"; fi`;
  const hook = `#!/bin/sh
# Installed by fwgen ship --persist: loads the firewall before the network comes up.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
${sets}
${restore('iptables-restore', v.paths.rules)}
${restore('ip6tables-restore', v.paths.rules6)}
exit 0
`;
  const unit = `[Unit]
Description=fwgen firewall rules (${v.paths.rules})
DefaultDependencies=no
Wants=network-pre.target systemd-modules-load.service local-fs.target
Before=network-pre.target shutdown.target
After=systemd-modules-load.service local-fs.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '${sets}'
ExecStart=/bin/sh -c '${restore('iptables-restore', v.paths.rules)}'
ExecStart=/bin/sh -c '${restore('ip6tables-restore', v.paths.rules6)}'

[Install]
WantedBy=multi-user.target
`;
  return `${prologue(v)}
umask 022
${DETECT_BOOT_SH}
found=$(detect_boot)
[ -n "$found" ] && printf '%s\\n' "$found"
has_boot() { printf '%s\\n' "$found" | grep -qE "$1"; }
if has_boot '^boot=[^ ]+ 1 ok '; then echo "status=present"; exit 0; fi
if has_boot '^boot=[^ ]+ 0 '; then echo "status=conflict"; exit 0; fi
if has_boot '^boot=[^ ]+ 1 '; then echo "status=inactive"; exit 0; fi
write() { cat > "$1.fwgen-tmp" && chmod "$2" "$1.fwgen-tmp" && mv -f "$1.fwgen-tmp" "$1" || fail 1 "cannot write $1"; }
if ! command -v ifup >/dev/null 2>&1 && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  write ${BOOT_UNIT_PATH} 644 <<'FWGEN_UNIT'
${unit}FWGEN_UNIT
  # What \`systemctl enable\` does for WantedBy=, without needing the bus.
  mkdir -p /etc/systemd/system/multi-user.target.wants && ln -sf ../fwgen-iptables.service /etc/systemd/system/multi-user.target.wants/fwgen-iptables.service || fail 1 "cannot enable ${BOOT_UNIT_PATH}"
  systemctl daemon-reload >/dev/null 2>&1
else
  mkdir -p /etc/network/if-pre-up.d || fail 1 "cannot create /etc/network/if-pre-up.d"
  write ${BOOT_HOOK_PATH} 755 <<'FWGEN_HOOK'
${hook}FWGEN_HOOK
fi
detect_boot | grep -F -e ' ${BOOT_HOOK_PATH}' -e ' ${BOOT_UNIT_PATH}'
echo "status=installed"
`;
}

/** Reads what {@link bootHookScript} printed; undefined when it printed no status (the script failed). */
export function parseBootHookResult(stdout: string): BootHookResult | undefined {
  const status = /^status=(installed|present|conflict|inactive)$/m.exec(stdout)?.[1] as
    BootHookResult['status'] | undefined;
  if (!status) return undefined;
  const found = parseBootMechanisms(stdout);
  const pickers: Record<BootHookResult['status'], (m: BootMechanism) => boolean> = {
    installed: (m) => m.path === BOOT_HOOK_PATH || m.path === BOOT_UNIT_PATH,
    present: (m) => m.loadsRules && m.state === 'ok',
    conflict: (m) => !m.loadsRules,
    inactive: (m) => m.loadsRules,
  };
  // The installed one is printed last, after the detection that found nothing.
  const mechanism = status === 'installed' ? found.filter(pickers.installed).at(-1) : found.find(pickers[status]);
  return mechanism ? { status, mechanism } : undefined;
}

/** One line for a person: what the boot hook step did, and what is left to do. */
export function describeBootHookResult(r: BootHookResult, rules: string): string {
  const m = r.mechanism;
  switch (r.status) {
    case 'installed':
      return m.state === 'ok'
        ? `boot hook installed: ${m.path}`
        : `boot hook installed: ${m.path}, but ${whyInactive(m)}`;
    case 'present':
      return `boot: ${m.path} already loads ${rules}`;
    case 'conflict':
      return `boot: left alone: ${m.path} (${m.kind}) loads other iptables rules at boot, not ${rules}`;
    case 'inactive':
      return `boot: left alone: ${m.path} loads ${rules} at boot, but ${whyInactive(m)}`;
  }
}

/** Why a boot mechanism will not run, in words. */
export function whyInactive(m: BootMechanism): string {
  switch (m.state) {
    case 'ok':
      return 'it runs';
    case 'no-ifupdown':
      return 'ifupdown is not installed, so if-pre-up.d hooks never run';
    case 'not-executable':
      return 'it is not executable, so run-parts skips it';
    case 'bad-name':
      return 'its name has characters other than letters, digits, _ and -, so run-parts skips it';
    case 'disabled':
      return 'it is not enabled';
  }
}
