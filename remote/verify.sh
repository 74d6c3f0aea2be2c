#!/bin/sh
# fwgen remote step "verify", after a failed confirmation: has the dead-man switch fired?
# Arguments: RULES ID
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
set_paths "$1" "$1" "$2"
refuse_unsafe_folder
if [ -e "$ARMED" ] || [ -e "$ARMED.fired" ]; then echo "status=still-armed"; exit 0; fi
if grep -q "ROLLBACK FAILED ship $ID:" "$LOG" 2>/dev/null; then echo "status=rollback-failed"; exit 0; fi
if grep -q "rolled back ship $ID:" "$LOG" 2>/dev/null; then echo "status=rolled-back"; exit 0; fi
if [ -e "$ARMED.commit" ] || [ ! -d "$STAGE" ]; then echo "status=committed-or-gone"; exit 0; fi
echo "status=unknown"
