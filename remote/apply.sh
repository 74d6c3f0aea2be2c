#!/bin/sh
# fwgen remote step "apply": lock, stage the upload and verify every part (size, SHA-256), check that
# fwgen's live rules are still those the change was computed from, test, back up, arm the dead-man
# switch, and apply the change with `iptables-restore --noflush` (one transaction per family, its
# positions found again in the live rules by txn.sh's txn_apply; the undo goes the same way).
# Arguments: RULES RULES6 ID HAS6 OWNER TIMEOUT KEEP BREAK_LOCK FP4 FP6, then NAME SIZE SHA256 for each
# part of stdin in order: file4 change4 undo4 [file6 change6 undo6] [sets] deadman. With `sets` (ipset
# mode) the sets are loaded under staging names before the rules' test, and swapped in before the rules.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=sets.sh
command -v fwgen_sets >/dev/null 2>&1 || . "$(dirname "$0")/sets.sh"
# shellcheck source-path=SCRIPTDIR source=txn.sh
command -v fwgen_txn >/dev/null 2>&1 || . "$(dirname "$0")/txn.sh"
set_paths "$1" "$2" "$3"
refuse_unsafe_folder
HAS6=$4 OWNER=$5 TIMEOUT=$6 KEEP=$7 BREAK=$8 FP4=$9
shift 9
FP6=$1
shift
need iptables-restore iptables-save sha256sum
if [ "$HAS6" = 1 ]; then need ip6tables-restore ip6tables-save; fi
# A dropped connection must not stop this script half-way: the dead-man switch covers what follows.
trap '' HUP PIPE
[ -d "${RULES%/*}" ] || mkdir -p "${RULES%/*}" || fail 1 "cannot create the folder of $RULES"
take_lock "$OWNER" "$TIMEOUT" "$BREAK"
abort() { code=$1; shift; if [ -n "${SETS_LOADED:-}" ]; then sets_drop "$STAGE"; fi; rm -rf "$STAGE"; release_lock; fail "$code" "$@"; }
err() { head -c 400 "$STAGE/err" 2>/dev/null | tr '\n' ' '; }

mkdir "$STAGE" || abort 1 "cannot create $STAGE (read-only file system?)"
# Each part straight from stdin (head -c reads no further than its count; one that did would only
# make the next part fail its check), then all parts checked by one sha256sum -c. On a mismatch,
# the first bad part in order is named: its size, else its SHA-256. (A part whose SHA-256 matches
# has its size.)
printf '%s\n' "$@" > "$STAGE/manifest" || abort "$E_STAGE" "cannot stage the upload (disk full?); nothing changed"
while [ "$#" -ge 3 ]; do
  { head -c "$2" > "$STAGE/$1" && printf '%s  %s\n' "$3" "$STAGE/$1" >> "$STAGE/sums"; } ||
    abort "$E_STAGE" "cannot stage $1 (disk full?); nothing changed"
  shift 3
done
if ! sha256sum -c "$STAGE/sums" > /dev/null 2>&1; then
  while read -r name && read -r size && read -r sum; do
    got=$(wc -c < "$STAGE/$name" | tr -d ' ')
    [ "$got" = "$size" ] || abort "$E_STAGE" "staged $name has $got bytes, expected $size (disk full?); nothing changed"
    [ "$(sha256sum < "$STAGE/$name" | cut -d' ' -f1)" = "$sum" ] ||
      abort "$E_STAGE" "staged $name does not match its SHA-256; nothing changed"
  done < "$STAGE/manifest"
  abort "$E_STAGE" "the staged parts do not match their SHA-256; nothing changed"
fi

# One iptables-save per family, under the lock: the guard below reads it, and it becomes the backup.
iptables-save > "$STAGE/live4" 2> "$STAGE/err" || abort 1 "iptables-save failed: $(err)"
[ "$(fingerprint < "$STAGE/live4")" = "$FP4" ] ||
  abort "$E_CHANGED" "fwgen's live IPv4 rules changed since they were read (another run?); nothing changed, ship again"
if [ "$HAS6" = 1 ]; then
  ip6tables-save > "$STAGE/live6" 2> "$STAGE/err" || abort 1 "ip6tables-save failed: $(err)"
  [ "$(fingerprint < "$STAGE/live6")" = "$FP6" ] ||
    abort "$E_CHANGED" "fwgen's live IPv6 rules changed since they were read (another run?); nothing changed, ship again"
fi

if [ -f "$STAGE/sets" ]; then
  sets_load "$STAGE"
  case $? in
    0) SETS_LOADED=1 ;;
    2) abort "$E_TOOL" "ipset not found on the host (the inventory says sets: ipset); install it (apt-get install ipset)" ;;
    *) abort "$E_TEST" "ipset restore rejected the sets: $(err)" ;;
  esac
fi
# A rules file byte for byte the one in place was tested when it was shipped: not again (a ship that
# changes one family leaves the other's file as it is).
cmp -s "$STAGE/file4" "$RULES" ||
  iptables-restore --test < "$STAGE/file4" 2> "$STAGE/err" || abort "$E_TEST" "iptables-restore --test rejected the new rules: $(err)"
txn_apply 4 "$STAGE/change4" "$STAGE" test 2> "$STAGE/err" || abort "$E_TEST" "iptables-restore --test rejected the change: $(err)"
if [ "$HAS6" = 1 ]; then
  cmp -s "$STAGE/file6" "$RULES6" ||
    ip6tables-restore --test < "$STAGE/file6" 2> "$STAGE/err" || abort "$E_TEST" "ip6tables-restore --test rejected the new rules: $(err)"
  txn_apply 6 "$STAGE/change6" "$STAGE" test 2> "$STAGE/err" || abort "$E_TEST" "ip6tables-restore --test rejected the change: $(err)"
fi

# Backup names are UTC seconds, and their order is the glob's: a second ship within the same second
# waits for the next one rather than add a suffix ("Z-1" sorts before "Z."), so the newest stays last.
BTS=$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$RULES.bak.$BTS.live" ]; do sleep 1; BTS=$(date -u +%Y%m%dT%H%M%SZ); done
BAK="$RULES.bak.$BTS"
if [ -e "$RULES" ]; then cp -p "$RULES" "$BAK" || abort 1 "cannot back up $RULES"; fi
# The state file says what ran before this run (status shows it after a rollback to this backup).
if [ -e "$STATE" ]; then cp -p "$STATE" "$BAK.state" || abort 1 "cannot back up $STATE"; fi
{ cp "$STAGE/live4" "$BAK.live" && cp "$STAGE/undo4" "$BAK.undo4"; } || abort 1 "cannot back up the live IPv4 rules"
if [ "$HAS6" = 1 ]; then
  if [ -e "$RULES6" ]; then cp -p "$RULES6" "$RULES6.bak.$BTS" || abort 1 "cannot back up $RULES6"; fi
  { cp "$STAGE/live6" "$BAK.live6" && cp "$STAGE/undo6" "$BAK.undo6"; } || abort 1 "cannot back up the live IPv6 rules"
fi
if [ -f "$STAGE/sets" ]; then save_fwgen_sets > "$BAK.sets" || abort 1 "cannot back up the live sets"; fi
# Keep KEEP backups, this one included: the oldest others go. The glob lists them oldest first (its
# order is the timestamps'), so no sort | tail.
n=0
for f in "$RULES".bak.*.live; do [ -e "$f" ] && [ "$f" != "$BAK.live" ] && n=$((n + 1)); done
for f in "$RULES".bak.*.live; do
  [ "$n" -ge "$KEEP" ] || break
  { [ -e "$f" ] && [ "$f" != "$BAK.live" ]; } || continue
  t=${f%.live} t=${t#"$RULES.bak."}
  rm -f "$RULES.bak.$t" "$RULES.bak.$t.live" "$RULES.bak.$t.live6" "$RULES.bak.$t.undo4" "$RULES.bak.$t.undo6" "$RULES6.bak.$t" "$RULES.bak.$t.sets" "$RULES.bak.$t.setundo" "$RULES.bak.$t.state"
  n=$((n - 1))
done

# Arm: the switch undoes this change unless the commit step, over a new connection, claims it first.
# The armed file holds the switch's arguments, for a later run that breaks this run's lock.
{ cp "$STAGE/deadman" "$DM" && printf '%s %s %s %s\n' "$BTS" "$FP4" "$FP6" "$TIMEOUT" > "$ARMED" && mkdir "$APPLYING"; } ||
  { rm -rf "$ARMED" "$DM" "$APPLYING"; abort 1 "cannot arm the dead-man switch (disk full?); nothing changed"; }
# The lock clears (if this run is gone) once the switch has had its time.
echo "$(($(date +%s) + TIMEOUT + 2))" > "$LOCK/until" 2>/dev/null || :
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
  systemd-run --quiet --unit "fwgen-deadman-$ID" --on-active="$TIMEOUT" --timer-property=AccuracySec=1s \
    /bin/sh "$DM" "$RULES" "$RULES6" "$ID" "$BTS" "$FP4" "$FP6" 0 "$TIMEOUT" >/dev/null 2>&1 ||
    { rm -rf "$ARMED" "$APPLYING" "$DM"; abort 1 "systemd-run could not arm the dead-man switch"; }
  echo systemd > "$DM.pid"
else
  setsid /bin/sh "$DM" "$RULES" "$RULES6" "$ID" "$BTS" "$FP4" "$FP6" "$TIMEOUT" "$TIMEOUT" < /dev/null > /dev/null 2>&1 &
  echo "$!" > "$DM.pid"
fi

ok=1 what=
SETS_LOADED=
if [ -f "$STAGE/sets" ]; then sets_swap "$STAGE" "$BAK.setundo" || { ok=0 what="ipset swap failed: $(err)"; }; fi
if [ "$ok" = 1 ]; then
  txn_apply 4 "$STAGE/change4" "$STAGE" 2> "$STAGE/err" || { ok=0 what="iptables-restore failed: $(err)"; }
fi
if [ "$ok" = 1 ] && [ "$HAS6" = 1 ] && [ -e "$ARMED" ]; then
  txn_apply 6 "$STAGE/change6" "$STAGE" 2> "$STAGE/err" || { ok=0 what="ip6tables-restore failed: $(err)"; }
fi
rmdir "$APPLYING"
# The switch fired while the apply ran: it undoes the change now that the apply is done. Report
# only once it has, so that what the controller says is what the host runs.
if [ ! -e "$ARMED" ]; then echo "status=fired backup=$BTS rollback=$(await_switch)"; exit "$E_ROLLEDBACK"; fi
if [ "$ok" = 0 ]; then
  mv "$ARMED" "$ARMED.fired" 2>/dev/null || { echo "status=fired backup=$BTS rollback=$(await_switch)"; exit "$E_ROLLEDBACK"; }
  stop_switch
  txn_apply 4 "$BAK.undo4" "$STAGE" 2>/dev/null
  back=1
  [ "$(iptables-save -t filter | fingerprint)" = "$FP4" ] || back=0
  if [ "$HAS6" = 1 ]; then
    txn_apply 6 "$BAK.undo6" "$STAGE" 2>/dev/null
    [ "$(ip6tables-save -t filter | fingerprint)" = "$FP6" ] || back=0
  fi
  sets_undo "$BAK.setundo"
  if [ -f "$STAGE/sets" ]; then sets_drop "$STAGE"; fi
  rm -f "$ARMED.fired" "$DM"
  [ "$back" = 1 ] || abort 1 "$what; the previous rules could NOT be restored (undo in $BAK.undo4)"
  abort "$E_APPLY" "$what; previous rules restored"
fi
echo "status=applied backup=$BTS"
