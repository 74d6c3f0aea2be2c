#!/bin/sh
# fwgen remote step "boot-remove" (`fwgen remove`, after its run took fwgen's rules off the host): takes
# off what fwgen left for boot and for status: its own boot hook or unit (other tools' are left alone),
# the boot-hook step's marker and the state file. Prints `removed=PATH` for each, then `status=removed`.
# Arguments: RULES RULES6
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source=boot.sh
command -v fwgen_boot >/dev/null 2>&1 || . "$(dirname "$0")/boot.sh"
set_paths "$1" "$2"
WANTS=/etc/systemd/system/multi-user.target.wants/fwgen-iptables.service
unit=0
for f in "$BOOT_HOOK" "$WANTS" "$BOOT_UNIT" "$RULES.fwgen-boot" "$STATE"; do
  if [ -e "$f" ] || [ -L "$f" ]; then
    rm -f "$f" || fail 1 "cannot remove $f"
    echo "removed=$f"
    [ "$f" = "$BOOT_UNIT" ] && unit=1
  fi
done
if [ "$unit" = 1 ] && [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1; fi
echo "status=removed"
