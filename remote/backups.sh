#!/bin/sh
# fwgen remote step "backups": lists backups newest first as `TS SIZE` (`-` when only the live
# snapshot exists: the host had no rules file then).
# Arguments: RULES
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
set_paths "$1" "$1"
refuse_unsafe_folder
# The glob lists them oldest first (its order is the timestamps'): walked backwards, with no sort
# (which may spill to a file in $TMPDIR).
set --
for f in "$RULES".bak.*.live; do [ -e "$f" ] && set -- "$f" "$@"; done
while [ "$#" -gt 0 ]; do
  t=${1%.live} t=${t#"$RULES.bak."}
  if [ -f "$RULES.bak.$t" ]; then s=$(wc -c < "$RULES.bak.$t" | tr -d ' '); else s=-; fi
  echo "$t $s"
  shift
done
exit 0
