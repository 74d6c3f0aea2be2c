#!/bin/sh
# fwgen remote step "read": what the host holds, changing nothing. Used by ship (before it acts),
# status and rollback. Prints sections (byte count, bytes): state file, IPv4 rules file, live IPv4
# filter table, [IPv6 file, live IPv6 table], [the backup FROM's files], fwgen's live ipsets (`ipset
# save` of the sets named fwgen-*; -1 without the ipset command), the sets file, [the backup FROM's
# sets], then a status line (with the boot-hook step's marker, remote/boot-hook.sh).
# Arguments: RULES RULES6 HAS6 [FROM]
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source=sets.sh
command -v fwgen_sets >/dev/null 2>&1 || . "$(dirname "$0")/sets.sh"
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
if command -v ipset >/dev/null 2>&1; then
  has_ipset=1
  save_fwgen_sets > "$T"
  section "$T"
else
  has_ipset=0
  echo -1
fi
section "$(sets_file)"
if [ -n "$FROM" ]; then section "$RULES.bak.$FROM.sets"; fi
count() { n=0; for f in "$@"; do [ -e "$f" ] && n=$((n + 1)); done; echo "$n"; }
backups=$(count "$RULES".bak.*.live)
armed=$(count "$RULES".fwgen-armed.*)
if [ -d "$LOCK" ]; then locked=1; else locked=0; fi
# The boot-hook step's marker, while the mechanism it found loading the rules at boot is still there.
boot=-; if read -r bm bp 2>/dev/null < "$RULES.fwgen-boot" && [ -e "$bp" ]; then boot=$bm; fi
echo "status=read backups=$backups armed=$armed locked=$locked fp4=$fp4 fp6=$fp6 ipset=$has_ipset boot=$boot"
