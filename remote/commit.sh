#!/bin/sh
# fwgen remote step "commit", over a NEW connection (the old one survives through conntrack and proves
# nothing): claim the dead-man switch, move the new rules files into place, record the state, unlock.
# A file that cannot be replaced undoes the change at once: kernel and disk stay in step.
# Arguments: RULES RULES6 ID HAS6 BACKUP_TS STATE_JSON
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source=sets.sh
command -v fwgen_sets >/dev/null 2>&1 || . "$(dirname "$0")/sets.sh"
set_paths "$1" "$2" "$3"
refuse_unsafe_folder
HAS6=$4 STATE_JSON=$6 BAK="$RULES.bak.$5"
trap '' HUP PIPE
if ! mv "$ARMED" "$ARMED.commit" 2>/dev/null; then
  if [ -e "$ARMED.fired" ] || grep -q "ship $ID:" "$LOG" 2>/dev/null; then
    # The switch fired: report once it has undone the change (and released the lock).
    if [ "$(await_switch)" = failed ]; then echo "status=rollback-failed"; else echo "status=rolled-back"; fi
    exit "$E_ROLLEDBACK"
  fi
  # Never armed: the apply step did not get that far, so nothing was applied.
  release_lock
  echo "status=never-armed"
  exit "$E_NEVERARMED"
fi
stop_switch
put_back() { if [ -e "$2" ]; then cp -p "$2" "$1"; else rm -f "$1"; fi; }
moved=0
# mv onto a folder would move the file into it and succeed: a folder is not a rules file to replace.
if [ -d "$RULES" ] || { [ "$HAS6" = 1 ] && [ -d "$RULES6" ]; }; then
  echo "$RULES or $RULES6 is a folder" > "$STAGE/err"
elif mv -f "$STAGE/file4" "$RULES" 2>"$STAGE/err"; then
  moved=1
  if [ "$HAS6" = 1 ] && ! mv -f "$STAGE/file6" "$RULES6" 2>"$STAGE/err"; then moved=0; put_back "$RULES" "$BAK"; fi
fi
if [ "$moved" = 0 ]; then
  why=$(head -c 300 "$STAGE/err" | tr '\n' ' ')
  iptables-restore -w --noflush < "$BAK.undo4" 2>/dev/null
  if [ "$HAS6" = 1 ]; then ip6tables-restore -w --noflush < "$BAK.undo6" 2>/dev/null; fi
  sets_undo "$BAK.setundo"
  printf '%s rolled back ship %s: the rules file could not be replaced\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ID" >> "$LOG"
  rm -rf "$STAGE" "$ARMED.commit" "$DM"
  release_lock
  fail "$E_FILE" "cannot replace $RULES ($why); previous rules restored"
fi
warning=
# ipset mode: the sets file goes beside the rules (loaded at boot first); the old members are dropped.
# No sets (sets: none after ipset mode): the sets file goes and so do fwgen's sets.
if [ -f "$STAGE/sets" ]; then
  if [ -s "$STAGE/setnames" ]; then
    mv -f "$STAGE/sets" "$(sets_file)" 2>/dev/null || warning=" warning=no-sets-file"
  else
    rm -f "$(sets_file)" 2>/dev/null || warning=" warning=no-sets-file"
  fi
  sets_commit "$STAGE" "$BAK.setundo"
fi
{ printf '%s\n' "$STATE_JSON" > "$STATE.tmp" && mv -f "$STATE.tmp" "$STATE"; } 2>/dev/null || warning="$warning warning=no-state"
rm -rf "$STAGE" "$ARMED.commit" "$DM"
release_lock
echo "status=committed$warning"
