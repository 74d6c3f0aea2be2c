#!/bin/sh
# fwgen remote step "read": what the host holds, changing nothing. Used by ship (before it acts),
# status and rollback. Prints sections (byte count, bytes): state file, IPv4 rules file, live IPv4
# filter table, [IPv6 file, live IPv6 table], [the backup FROM's files], fwgen's live ipsets (`ipset
# save` of the sets named fwgen-*; -1 without the ipset command), the sets file, [the backup FROM's
# sets], the pull agent's state file, then a status line (with the boot-hook step's marker,
# remote/boot-hook.sh).
# Arguments: RULES RULES6 HAS6 [FROM]
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source=sets.sh
command -v fwgen_sets >/dev/null 2>&1 || . "$(dirname "$0")/sets.sh"
set_paths "$1" "$2"
refuse_unsafe_folder
HAS6=$3 FROM=${4:-}
# What is read stays in shell variables: this step writes no file, and none in /tmp or $TMPDIR, where
# others could plant a symlink or a FIFO at the name. ($(cmd && echo .): the dot keeps the trailing
# newlines that command substitution drops, then goes.)
# (${#1} is its length in bytes: lib.sh sets LC_ALL=C. No fork.)
text() { printf '%s\n%s' "${#1}" "$1"; }
live() {
  need "$1"
  out=$("$1" -t filter 2>/dev/null && echo .) ||
    fail 1 "$1 failed: $("$1" -t filter 2>&1 >/dev/null | head -c 400 | tr '\n' ' ')"
  out=${out%.}
  text "$out"
}
section "$STATE"
section "$RULES"
# (What fwgen owns of each table, the fingerprint the apply step checks, is computed by the controller
# from these same bytes: src/model/ownership.ts, held to lib.sh's by test/ownership.test.ts.)
live iptables-save
if [ "$HAS6" = 1 ]; then section "$RULES6"; live ip6tables-save; fi
if [ -n "$FROM" ]; then
  [ -f "$RULES.bak.$FROM.live" ] || fail "$E_NOBACKUP" "no backup $FROM of $RULES on this host"
  section "$RULES.bak.$FROM"
  if [ "$HAS6" = 1 ]; then section "$RULES6.bak.$FROM"; fi
fi
if command -v ipset >/dev/null 2>&1; then
  has_ipset=1
  out=$(save_fwgen_sets && echo .)
  text "${out%.}"
else
  has_ipset=0
  echo -1
fi
section "$RULES.ipset" # sets.sh sets_file, without a subshell
if [ -n "$FROM" ]; then section "$RULES.bak.$FROM.sets"; fi
# Pull mode: the agent's state (what it applied, its last poll), and whether an agent is installed.
section "$RULES.fwgen-agent/state"
if [ -f "$RULES.fwgen-agent/config" ]; then agent=1; else agent=0; fi
# count GLOB...: how many of the files exist, into $c_n (no subshell).
count() { c_n=0; for f in "$@"; do [ -e "$f" ] && c_n=$((c_n + 1)); done; }
count "$RULES".bak.*.live
backups=$c_n
count "$RULES".fwgen-armed.*
armed=$c_n
if [ -d "$LOCK" ]; then locked=1; else locked=0; fi
# The boot-hook step's marker, while the mechanism it found loading the rules at boot is still there.
boot=-; if read -r bm bp 2>/dev/null < "$RULES.fwgen-boot" && [ -e "$bp" ]; then boot=$bm; fi
echo "status=read backups=$backups armed=$armed locked=$locked ipset=$has_ipset boot=$boot agent=$agent"
