#!/bin/sh
# fwgen remote step "read": what the host holds, changing nothing. Used by ship (before it acts),
# status and rollback. Prints sections (byte count, bytes): state file, IPv4 rules file, live IPv4
# filter table, [IPv6 file, live IPv6 table], [the backup FROM's files], then a status line.
# Arguments: RULES RULES6 HAS6 [FROM]
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
set_paths "$1" "$2"
HAS6=$3 FROM=${4:-}
T=$(mktemp) || fail 1 "mktemp failed"
trap 'rm -f "$T" "$T.err"' EXIT
live() {
  need "$1"
  "$1" -t filter > "$T" 2> "$T.err" || fail 1 "$1 failed: $(head -c 400 "$T.err" | tr '\n' ' ')"
  section "$T"
  fp=$(fingerprint < "$T")
}
section "$STATE"
section "$RULES"
live iptables-save
fp4=$fp fp6=-
if [ "$HAS6" = 1 ]; then section "$RULES6"; live ip6tables-save; fp6=$fp; fi
if [ -n "$FROM" ]; then
  [ -f "$RULES.bak.$FROM.live" ] || fail "$E_NOBACKUP" "no backup $FROM of $RULES on this host"
  section "$RULES.bak.$FROM"
  if [ "$HAS6" = 1 ]; then section "$RULES6.bak.$FROM"; fi
fi
count() { n=0; for f in "$@"; do [ -e "$f" ] && n=$((n + 1)); done; echo "$n"; }
backups=$(count "$RULES".bak.*.live)
armed=$(count "$RULES".fwgen-armed.*)
if [ -d "$LOCK" ]; then locked=1; else locked=0; fi
echo "status=read backups=$backups armed=$armed locked=$locked fp4=$fp4 fp6=$fp6"
