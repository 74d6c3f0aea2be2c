import { setsPathFor, type RemotePaths } from '../ship/remote-scripts.js';
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
  /**
   * fwgen's own hook or unit, differing from what this version writes (`fwgen ship --persist` rewrites it);
   * `no-sets`: the rules match ipsets and it does not restore them, so the rules fail to load at boot.
   * Only in doctor's facts (see {@link bootFilesSh}).
   */
  readonly outdated?: 'differs' | 'no-sets';
}

/**
 * Shell function `detect_boot` (needs RULES): prints one `boot=KIND LOADS STATE PATH` line per boot
 * mechanism found. Shared by `doctor` (to report) and {@link bootHookScript} (to install only when missing).
 */
export const DETECT_BOOT_SH = `detect_boot() {
  has_ifup=0; command -v ifup >/dev/null 2>&1 && has_ifup=1
  for f in /etc/network/if-pre-up.d/*; do
    { [ -f "$f" ] && grep -q 'iptables-restore' "$f" 2>/dev/null; } || continue
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
    { [ -f "$f" ] && grep -q 'iptables-restore' "$f" 2>/dev/null; } || continue
    loads=0; grep -qF -- "$RULES" "$f" && loads=1
    st=disabled; ls /etc/systemd/system/*.wants/"\${f##*/}" >/dev/null 2>&1 && st=ok
    echo "boot=systemd $loads $st $f"
  done
}
`;

/** Parses the `boot=` lines {@link DETECT_BOOT_SH} printed, and the `boot_outdated=` lines of `detect_outdated`. */
export function parseBootMechanisms(stdout: string): BootMechanism[] {
  const out: BootMechanism[] = [];
  const outdated = new Map<string, NonNullable<BootMechanism['outdated']>>();
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
    const o = /^boot_outdated=(differs|no-sets) (.+)$/.exec(line);
    if (o) outdated.set(o[2], o[1] as NonNullable<BootMechanism['outdated']>);
  }
  return out.map((m) => (outdated.has(m.path) ? { ...m, outdated: outdated.get(m.path) } : m));
}

/**
 * What {@link bootHookScript} did on a host: `installed` its hook; rewrote fwgen's own hook or unit that an
 * older fwgen wrote (`updated`); found one already loading the rules (`present`); or left alone something
 * that loads other rules at boot (`conflict`) or would load these but will not run (`inactive`), for a
 * person to decide.
 */
export interface BootHookResult {
  readonly status: 'installed' | 'updated' | 'present' | 'conflict' | 'inactive';
  readonly mechanism: BootMechanism;
}

// rules_path matched ^/[A-Za-z0-9._/@+-]*$, so it needs no quoting here (nor inside the unit's single quotes).
// A failed restore is logged, not fatal: a failing hook would keep the interface down and the host unreachable.
// --noflush, and only while fwgen's chain is absent: the hook runs once per interface, and tools that
// started earlier (Docker, fail2ban) keep their chains.
function restoreLine(tool: string, file: string): string {
  const list = tool.replace('-restore', '');
  return `if [ -r ${file} ] && ! ${list} -n -L FWGEN-INPUT >/dev/null 2>&1; then ${tool} --noflush < ${file} || logger -t fwgen "${tool} < ${file} failed at boot"; fi`;
}

// ipset mode: the sets go in first, or the rules that match them fail to load.
// -exist: the hook runs once per interface.
function setsLine(rules: string): string {
  const setsFile = setsPathFor(rules);
  return (
    `if [ -r ${setsFile} ] && command -v ipset >/dev/null 2>&1; then ` +
    `ipset restore -exist < ${setsFile} || logger -t fwgen "ipset restore < ${setsFile} failed at boot"; fi`
  );
}

/** The if-pre-up.d hook this version writes, byte for byte. */
export function bootHookText(paths: RemotePaths): string {
  return `#!/bin/sh
# Installed by fwgen ship --persist: loads the firewall before the network comes up.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
${setsLine(paths.rules)}
${restoreLine('iptables-restore', paths.rules)}
${restoreLine('ip6tables-restore', paths.rules6)}
exit 0
`;
}

/** The systemd unit this version writes, byte for byte. */
export function bootUnitText(paths: RemotePaths): string {
  return `[Unit]
Description=fwgen firewall rules (${paths.rules})
DefaultDependencies=no
Wants=network-pre.target systemd-modules-load.service local-fs.target
Before=network-pre.target shutdown.target
After=systemd-modules-load.service local-fs.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '${setsLine(paths.rules)}'
ExecStart=/bin/sh -c '${restoreLine('iptables-restore', paths.rules)}'
ExecStart=/bin/sh -c '${restoreLine('ip6tables-restore', paths.rules6)}'

[Install]
WantedBy=multi-user.target
`;
}

/**
 * Shell functions (need RULES): `hook_text` and `unit_text` print what this version writes;
 * `differs FILE TEXT_FN` is true when FILE exists with other content; `detect_outdated` prints
 * `boot_outdated=no-sets|differs PATH` for fwgen's own hook or unit when it differs (`no-sets`: the
 * rules match ipsets and it does not restore them, so the rules fail to load at boot).
 * Shared by `doctor` (to report) and {@link bootHookScript} (to rewrite).
 */
export function bootFilesSh(paths: RemotePaths): string {
  return `hook_text() {
  cat <<'FWGEN_HOOK'
${bootHookText(paths)}FWGEN_HOOK
}
unit_text() {
  cat <<'FWGEN_UNIT'
${bootUnitText(paths)}FWGEN_UNIT
}
differs() { [ -f "$1" ] && ! "$2" | cmp -s - "$1"; }
outdated_one() {
  differs "$1" "$2" || return 0
  st=differs
  if grep -q -e '--match-set' "$RULES" 2>/dev/null && ! grep -q 'ipset restore' "$1"; then st=no-sets; fi
  echo "boot_outdated=$st $1"
}
detect_outdated() { outdated_one ${BOOT_HOOK_PATH} hook_text; outdated_one ${BOOT_UNIT_PATH} unit_text; }
`;
}

/**
 * Installs a boot hook restoring `$RULES` (and `$RULES6` when it exists at boot), unless something
 * already loads iptables rules at boot; rewrites fwgen's own hook or unit when an older fwgen wrote it
 * differently. Prints the `boot=` lines, then `status=installed|updated|present|conflict|inactive`.
 * With ifupdown (or without systemd running) it is `/etc/network/if-pre-up.d/fwgen-iptables`; on a
 * systemd host without ifupdown, an enabled oneshot unit ordered before network-pre.target.
 */
export function bootHookScript(v: ScriptVars): string {
  return `${prologue(v)}
umask 022
${DETECT_BOOT_SH}
${bootFilesSh(v.paths)}
found=$(detect_boot)
[ -n "$found" ] && printf '%s\\n' "$found"
has_boot() { printf '%s\\n' "$found" | grep -qE "$1"; }
write() { { "$3" > "$1.fwgen-tmp" && chmod "$2" "$1.fwgen-tmp" && mv -f "$1.fwgen-tmp" "$1"; } || fail 1 "cannot write $1"; }
# fwgen's own hook or unit as another version wrote it (before ipset mode it did not restore the sets):
# rewritten in place. Only its content: a hook someone made non-executable, or a unit someone disabled, stays so.
updated=0
if differs ${BOOT_HOOK_PATH} hook_text; then
  mode=644; [ -x ${BOOT_HOOK_PATH} ] && mode=755
  write ${BOOT_HOOK_PATH} "$mode" hook_text
  updated=1
fi
if differs ${BOOT_UNIT_PATH} unit_text; then
  write ${BOOT_UNIT_PATH} 644 unit_text
  [ -d /run/systemd/system ] && systemctl daemon-reload >/dev/null 2>&1
  updated=1
fi
if [ "$updated" = 1 ]; then
  detect_boot | grep -F -e ' ${BOOT_HOOK_PATH}' -e ' ${BOOT_UNIT_PATH}'
  echo "status=updated"
  exit 0
fi
if has_boot '^boot=[^ ]+ 1 ok '; then echo "status=present"; exit 0; fi
if has_boot '^boot=[^ ]+ 0 '; then echo "status=conflict"; exit 0; fi
if has_boot '^boot=[^ ]+ 1 '; then echo "status=inactive"; exit 0; fi
if ! command -v ifup >/dev/null 2>&1 && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  write ${BOOT_UNIT_PATH} 644 unit_text
  # What \`systemctl enable\` does for WantedBy=, without needing the bus.
  { mkdir -p /etc/systemd/system/multi-user.target.wants && ln -sf ../fwgen-iptables.service /etc/systemd/system/multi-user.target.wants/fwgen-iptables.service; } || fail 1 "cannot enable ${BOOT_UNIT_PATH}"
  systemctl daemon-reload >/dev/null 2>&1
else
  mkdir -p /etc/network/if-pre-up.d || fail 1 "cannot create /etc/network/if-pre-up.d"
  write ${BOOT_HOOK_PATH} 755 hook_text
fi
detect_boot | grep -F -e ' ${BOOT_HOOK_PATH}' -e ' ${BOOT_UNIT_PATH}'
echo "status=installed"
`;
}

/** Reads what {@link bootHookScript} printed; undefined when it printed no status (the script failed). */
export function parseBootHookResult(stdout: string): BootHookResult | undefined {
  const status = /^status=(installed|updated|present|conflict|inactive)$/m.exec(stdout)?.[1] as
    BootHookResult['status'] | undefined;
  if (!status) return undefined;
  const found = parseBootMechanisms(stdout);
  const ours = (m: BootMechanism) => m.path === BOOT_HOOK_PATH || m.path === BOOT_UNIT_PATH;
  const pickers: Record<'present' | 'conflict' | 'inactive', (m: BootMechanism) => boolean> = {
    present: (m) => m.loadsRules && m.state === 'ok',
    conflict: (m) => !m.loadsRules,
    inactive: (m) => m.loadsRules,
  };
  // The installed or updated one is printed last, after the detection that ran before the script wrote.
  const mechanism =
    status === 'installed' || status === 'updated' ? found.filter(ours).at(-1) : found.find(pickers[status]);
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
    case 'updated':
      return m.state === 'ok'
        ? `boot hook updated: ${m.path} (it differed from what this fwgen writes)`
        : `boot hook updated: ${m.path} (it differed from what this fwgen writes), but ${whyInactive(m)}`;
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
