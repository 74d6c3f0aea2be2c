# shellcheck shell=sh
# fwgen remote library for boot-time loading: sent after lib.sh to doctor's facts step and to ship's
# boot-hook step. Needs RULES and RULES6 (set_paths).
fwgen_boot() { :; }

# Where fwgen's own boot hook goes: the Debian ifupdown hook, or a systemd unit where ifupdown is absent
# (src/doctor/boot-hook.ts BOOT_HOOK_PATH, BOOT_UNIT_PATH).
BOOT_HOOK=/etc/network/if-pre-up.d/fwgen-iptables
BOOT_UNIT=/etc/systemd/system/fwgen-iptables.service

# What runs fwgen's boot hook on this host: `ifupdown` (the if-pre-up.d hook; ifup present), else
# `systemd` (the unit; systemd is PID 1), else `none`: fwgen knows nothing there that runs at boot.
boot_runner() {
  if command -v ifup >/dev/null 2>&1; then echo ifupdown
  elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd
  else echo none; fi
}

# Prints one `boot=KIND LOADS STATE PATH` line per mechanism that loads iptables rules at boot. LOADS:
# it restores $RULES; STATE: ok, or why it will not run (run-parts skips hooks that are not executable
# or whose name has a dot; an if-pre-up.d hook never runs without ifupdown).
detect_boot() {
  has_ifup=0; command -v ifup >/dev/null 2>&1 && has_ifup=1
  for f in /etc/network/if-pre-up.d/*; do
    { [ -f "$f" ] && grep -q 'iptables-restore' "$f" 2>/dev/null; } || continue
    loads=0; grep -qF -- "$RULES" "$f" && loads=1
    st=ok
    case "${f##*/}" in *[!A-Za-z0-9_-]*) st=bad-name ;; esac
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
    st=disabled; ls /etc/systemd/system/*.wants/"${f##*/}" >/dev/null 2>&1 && st=ok
    echo "boot=systemd $loads $st $f"
  done
}

# The hook and the unit this version writes, byte for byte: hosts keep what an older fwgen wrote, and
# both doctor and the installer compare with this text. The paths go in unquoted: rules_path matched
# ^/[A-Za-z0-9._/@+-]*$, so they need no quoting (nor inside the unit's single quotes).

# ipset mode: the sets (sets.sh `sets_file`) go in first, or the rules that match them fail to load.
# -exist: the hook runs once per interface.
sets_line() {
  cat <<FWGEN_LINE
if [ -r $RULES.ipset ] && command -v ipset >/dev/null 2>&1; then ipset restore -exist < $RULES.ipset || logger -t fwgen "ipset restore < $RULES.ipset failed at boot"; fi
FWGEN_LINE
}

# restore_line iptables|ip6tables FILE. A failed restore is logged, not fatal: a failing hook would keep
# the interface down and the host unreachable. --noflush, and only while fwgen's chain is absent: the
# hook runs once per interface, and tools that started earlier (Docker, fail2ban) keep their chains.
restore_line() {
  cat <<FWGEN_LINE
if [ -r $2 ] && ! $1 -n -L FWGEN-INPUT >/dev/null 2>&1; then $1-restore --noflush < $2 || logger -t fwgen "$1-restore < $2 failed at boot"; fi
FWGEN_LINE
}

hook_text() {
  cat <<FWGEN_HOOK
#!/bin/sh
# Installed by fwgen ship --persist: loads the firewall before the network comes up.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
$(sets_line)
$(restore_line iptables "$RULES")
$(restore_line ip6tables "$RULES6")
exit 0
FWGEN_HOOK
}

unit_text() {
  cat <<FWGEN_UNIT
[Unit]
Description=fwgen firewall rules ($RULES)
DefaultDependencies=no
Wants=network-pre.target systemd-modules-load.service local-fs.target
Before=network-pre.target shutdown.target
After=systemd-modules-load.service local-fs.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '$(sets_line)'
ExecStart=/bin/sh -c '$(restore_line iptables "$RULES")'
ExecStart=/bin/sh -c '$(restore_line ip6tables "$RULES6")'

[Install]
WantedBy=multi-user.target
FWGEN_UNIT
}

# differs FILE TEXT_FN: FILE exists with other content than TEXT_FN prints.
differs() { [ -f "$1" ] && ! "$2" | cmp -s - "$1"; }

outdated_one() {
  differs "$1" "$2" || return 0
  st=differs
  if grep -q -e '--match-set' "$RULES" 2>/dev/null && ! grep -q 'ipset restore' "$1"; then st=no-sets; fi
  echo "boot_outdated=$st $1"
}

# Prints `boot_outdated=no-sets|differs PATH` for fwgen's own hook or unit when it differs from what this
# version writes (no-sets: the rules match ipsets and it does not restore them, so they fail to load at boot).
detect_outdated() { outdated_one "$BOOT_HOOK" hook_text; outdated_one "$BOOT_UNIT" unit_text; }
