#!/bin/sh
# fwgen remote step "boot-hook" (every ship, unless --no-persist): makes RULES (and RULES6 when it
# exists at boot) load at boot, unless something already loads iptables rules at boot; rewrites fwgen's
# own hook or unit when an older fwgen wrote it differently. What runs it is boot.sh's `boot_runner`:
# with ifupdown, $BOOT_HOOK; on a systemd host without ifupdown, $BOOT_UNIT, enabled, ordered before
# network-pre.target; with neither, nothing would run a hook: the step fails (status=unsupported, exit
# E_NOBOOT) and installs nothing, and fwgen's own hook, which would never run, is removed. Prints the
# `boot=` lines, then `status=installed|updated|present|conflict|inactive|unsupported`. Where the rules
# now load at boot, writes `MARKER PATH` to $RULES.fwgen-boot: the read step reports MARKER while PATH
# exists, and ship skips this step while it is this fwgen's.
# Arguments: RULES RULES6 MARKER
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source=boot.sh
command -v fwgen_boot >/dev/null 2>&1 || . "$(dirname "$0")/boot.sh"
set_paths "$1" "$2"
refuse_unsafe_folder
MARKER=${3:--}
# The paths are written into a file that runs as root at boot: only those that need no quoting there.
case "$RULES$RULES6" in *[!A-Za-z0-9._/@+-]*) fail 1 "rules paths with characters a boot hook cannot hold: $RULES $RULES6" ;; esac
umask 022
runner=$(boot_runner)
# fwgen's own hook where ifupdown does not run it (an older fwgen installed it there) never runs: it goes.
if [ "$runner" != ifupdown ] && [ -f "$BOOT_HOOK" ]; then
  rm -f "$BOOT_HOOK" || fail 1 "cannot remove $BOOT_HOOK"
  echo "removed=$BOOT_HOOK"
fi
found=$(detect_boot)
[ -n "$found" ] && printf '%s\n' "$found"
has_boot() { printf '%s\n' "$found" | grep -qE "$1"; }
write() { { "$3" > "$1.fwgen-tmp" && chmod "$2" "$1.fwgen-tmp" && mv -f "$1.fwgen-tmp" "$1"; } || fail 1 "cannot write $1"; }
# finish STATUS: prints the status; where the rules load at boot now (a `1 ok` line), records the marker.
finish() {
  loaded=$(detect_boot | grep -E '^boot=[^ ]+ 1 ok ' | head -n 1)
  if [ "$1" != present ]; then detect_boot | grep -F -e " $BOOT_HOOK" -e " $BOOT_UNIT"; fi
  if [ -n "$loaded" ] && [ "$MARKER" != - ]; then
    (umask 077 && printf '%s %s\n' "$MARKER" "${loaded#* * * }" > "$RULES.fwgen-boot") 2>/dev/null
  fi
  echo "status=$1"
  exit 0
}
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
if [ "$updated" = 1 ]; then finish updated; fi
if has_boot '^boot=[^ ]+ 1 ok '; then finish present; fi
if has_boot '^boot=[^ ]+ 0 '; then echo "status=conflict"; exit 0; fi
if has_boot '^boot=[^ ]+ 1 '; then echo "status=inactive"; exit 0; fi
case "$runner" in
  systemd)
    write "$BOOT_UNIT" 644 unit_text
    # What `systemctl enable` does for WantedBy=, without needing the bus.
    { mkdir -p /etc/systemd/system/multi-user.target.wants &&
      ln -sf ../fwgen-iptables.service /etc/systemd/system/multi-user.target.wants/fwgen-iptables.service; } ||
      fail 1 "cannot enable $BOOT_UNIT"
    systemctl daemon-reload >/dev/null 2>&1
    ;;
  ifupdown)
    mkdir -p /etc/network/if-pre-up.d || fail 1 "cannot create /etc/network/if-pre-up.d"
    write "$BOOT_HOOK" 755 hook_text
    ;;
  *)
    echo "status=unsupported"
    fail "$E_NOBOOT" "neither ifupdown nor systemd runs on this host: nothing would run a boot hook, so none was installed"
    ;;
esac
finish installed
