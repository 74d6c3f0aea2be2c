#!/bin/sh
# fwgen dead-man switch: unless the commit step claims it first, undoes a ship after DELAY seconds.
# It runs detached from the SSH session (systemd-run, or setsid). It claims the switch atomically
# (the commit step does the same), waits for an apply still running, then applies the undo
# transaction of each family; a family counts as restored when fwgen's part of it is as before.
# Arguments: RULES RULES6 ID BACKUP_TS FP4 FP6 DELAY TIMEOUT (the ship's --timeout, for the log)
set -u
RULES=$1 ID=$3 BTS=$4 FP4=$5 FP6=$6
# $2 (RULES6) is passed for symmetry with the other steps; the IPv6 undo lives beside the IPv4 backup.
sleep "$7"
ARMED="$RULES.fwgen-armed.$ID" APPLYING="$RULES.fwgen-applying.$ID" BAK="$RULES.bak.$BTS" LOCK="$RULES.fwgen-lock"
mv "$ARMED" "$ARMED.fired" 2>/dev/null || exit 0
n=0
while [ -d "$APPLYING" ] && [ "$n" -lt 600 ]; do sleep 0.1 2>/dev/null || sleep 1; n=$((n + 1)); done
# As fingerprint() in lib.sh (this script runs alone, without it).
fp() {
  fp_sum=$("$1" -t filter 2>/dev/null | sed -n -E '/^\*filter$/,/^COMMIT$/{s/ \[[0-9]*:[0-9]*\]$//; /^(:FWGEN-|-A FWGEN-|-A (INPUT|FORWARD|OUTPUT) (.* )?(-[jg] FWGEN-|--comment "?fwgen([^A-Za-z0-9_]|$)))/p;}' | sha256sum) &&
    printf '%s\n' "${fp_sum%% *}"
}
ok=1
iptables-restore -w --noflush < "$BAK.undo4" 2>/dev/null
[ "$(fp iptables-save)" = "$FP4" ] || ok=0
if [ -f "$BAK.undo6" ]; then
  ip6tables-restore -w --noflush < "$BAK.undo6" 2>/dev/null
  [ "$(fp ip6tables-save)" = "$FP6" ] || ok=0
fi
# ipset mode: after the rules' undo nothing matches a set this ship created; swap the old members back.
if [ -f "$BAK.setundo" ]; then
  while read -r w n; do
    t="fwgen~${n#fwgen-}"
    case $w in
      swap) { ipset swap "$t" "$n" && ipset destroy "$t"; } 2>/dev/null || ok=0 ;;
      new) ipset destroy "$n" 2>/dev/null || ok=0 ;;
    esac
  done < "$BAK.setundo"
  rm -f "$BAK.setundo"
fi
if [ "$ok" = 1 ]; then what="rolled back"; else what="ROLLBACK FAILED"; fi
printf '%s %s ship %s: not confirmed within %ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$what" "$ID" "$8" >> "$RULES.fwgen-rollbacks"
rm -rf "$RULES.fwgen-stage.$ID"
rm -f "$ARMED.fired" "$RULES.fwgen-deadman.$ID.pid" "$RULES.fwgen-deadman.$ID"
if [ "$(cat "$LOCK/run" 2>/dev/null)" = "$ID" ]; then rm -rf "$LOCK"; fi
