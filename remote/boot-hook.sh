#!/bin/sh
# fwgen remote step "boot-hook" (`ship --persist`): installs a boot hook restoring RULES (and RULES6
# when it exists at boot), unless something already loads iptables rules at boot; rewrites fwgen's own
# hook or unit when an older fwgen wrote it differently. Prints the `boot=` lines, then
# `status=installed|updated|present|conflict|inactive`. With ifupdown (or without systemd running) it
# installs $BOOT_HOOK; on a systemd host without ifupdown, $BOOT_UNIT, enabled, ordered before
# network-pre.target.
# Arguments: RULES RULES6
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source=boot.sh
command -v fwgen_boot >/dev/null 2>&1 || . "$(dirname "$0")/boot.sh"
set_paths "$1" "$2"
refuse_unsafe_folder
# The paths are written into a file that runs as root at boot: only those that need no quoting there.
case "$RULES$RULES6" in *[!A-Za-z0-9._/@+-]*) fail 1 "rules paths with characters a boot hook cannot hold: $RULES $RULES6" ;; esac
umask 022
found=$(detect_boot)
[ -n "$found" ] && printf '%s\n' "$found"
has_boot() { printf '%s\n' "$found" | grep -qE "$1"; }
write() { { "$3" > "$1.fwgen-tmp" && chmod "$2" "$1.fwgen-tmp" && mv -f "$1.fwgen-tmp" "$1"; } || fail 1 "cannot write $1"; }
# fwgen's own hook or unit as another version wrote it (before ipset mode it did not restore the sets):
# rewritten in place. Only its content: a hook someone made non-executable, or a unit someone disabled, stays so.
updated=0
if differs "$BOOT_HOOK" hook_text; then
  mode=644; [ -x "$BOOT_HOOK" ] && mode=755
  write "$BOOT_HOOK" "$mode" hook_text
  updated=1
fi
if differs "$BOOT_UNIT" unit_text; then
  write "$BOOT_UNIT" 644 unit_text
  [ -d /run/systemd/system ] && systemctl daemon-reload >/dev/null 2>&1
  updated=1
fi
if [ "$updated" = 1 ]; then
  detect_boot | grep -F -e " $BOOT_HOOK" -e " $BOOT_UNIT"
  echo "status=updated"
  exit 0
fi
if has_boot '^boot=[^ ]+ 1 ok '; then echo "status=present"; exit 0; fi
if has_boot '^boot=[^ ]+ 0 '; then echo "status=conflict"; exit 0; fi
if has_boot '^boot=[^ ]+ 1 '; then echo "status=inactive"; exit 0; fi
if ! command -v ifup >/dev/null 2>&1 && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  write "$BOOT_UNIT" 644 unit_text
  # What `systemctl enable` does for WantedBy=, without needing the bus.
  { mkdir -p /etc/systemd/system/multi-user.target.wants &&
    ln -sf ../fwgen-iptables.service /etc/systemd/system/multi-user.target.wants/fwgen-iptables.service; } ||
    fail 1 "cannot enable $BOOT_UNIT"
  systemctl daemon-reload >/dev/null 2>&1
else
  mkdir -p /etc/network/if-pre-up.d || fail 1 "cannot create /etc/network/if-pre-up.d"
  write "$BOOT_HOOK" 755 hook_text
fi
detect_boot | grep -F -e " $BOOT_HOOK" -e " $BOOT_UNIT"
echo "status=installed"
