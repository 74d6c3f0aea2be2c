#!/bin/sh
# fwgen remote step "agent-poll": one poll of the installed agent now (`fwgen agent poll`), without the
# per-host delay of its schedule. Prints what the agent prints (its `status=polled ...` line last), or
# `status=not-installed`.
# Arguments: RULES
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
if [ ! -f "$1.fwgen-agent/agent.sh" ]; then echo "status=not-installed"; exit 0; fi
exec /bin/sh "$1.fwgen-agent/agent.sh" poll "$1" now
