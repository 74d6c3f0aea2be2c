# shellcheck shell=sh disable=SC2034
# (SC2034: the variables set here are used by the step scripts that include this file.)
# fwgen remote library: sent ahead of every step script (and sourced by it when run from a file).
# Every value reaches these scripts as an argument, never pasted into code.
fwgen_lib() { :; }
set -u
umask 077
# Bytes, not characters: ${#var} counts the bytes of what read.sh frames (bash and busybox count
# characters in a UTF-8 locale), and sed and grep match bytes.
LC_ALL=C
export LC_ALL

E_LOCKED=10 E_TEST=11 E_APPLY=13 E_ROLLEDBACK=14 E_TOOL=15 E_NOBACKUP=16 E_NEVERARMED=17 E_STAGE=18 E_CHANGED=19 E_FILE=20 E_UNSAFE=21 E_NOBOOT=22

fail() { code=$1; shift; printf 'fwgen: %s\n' "$*" >&2; exit "$code"; }

need() {
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || fail "$E_TOOL" "$t not found on the host"; done
}

# set_paths RULES RULES6 [RUN_ID]: where the rules files and fwgen's bookkeeping live on this host.
set_paths() {
  RULES=$1 RULES6=$2
  LOCK="$RULES.fwgen-lock" STATE="$RULES.fwgen-state.json" LOG="$RULES.fwgen-rollbacks"
  ID=${3:-none}
  ARMED="$RULES.fwgen-armed.$ID" DM="$RULES.fwgen-deadman.$ID"
  STAGE="$RULES.fwgen-stage.$ID" APPLYING="$RULES.fwgen-applying.$ID"
}

# refuse_unsafe_folder: stops the step before it runs or stages anything beside the rules, unless
# their folder can be changed by root alone (unsafe_folder).
refuse_unsafe_folder() {
  uf_why=$(unsafe_folder "${RULES%/*}")
  [ -z "$uf_why" ] || fail "$E_UNSAFE" "refusing the folder of $RULES: $uf_why. fwgen runs and stages files there as" \
    "root, so that folder and every folder above it must be owned by root and writable by root only (as sshd's" \
    "StrictModes wants; chown root, chmod go-w); nothing was changed"
}

# unsafe_folder DIR: prints why someone other than root could change DIR or a folder above it (nothing
# when only root can). Each must be a folder owned by root and not writable by group or others; one
# above DIR may be if sticky, as /tmp (others cannot move what root made there). Symlinks are followed
# one hop at a time, each checked the same way. A part that does not exist yet is made by root (0700).
unsafe_folder() {
  uf_path=${1:-/} uf_n=0
  case $uf_path in /*) ;; *) echo "$uf_path is not an absolute path"; return ;; esac
  while [ "$uf_n" -lt 40 ]; do
    uf_n=$((uf_n + 1))
    # Every folder on the way, top down, up to a `..` (resolved below once what precedes it is known).
    set -- /
    uf_rest=$uf_path uf_pre='' uf_up=''
    while [ -n "$uf_rest" ]; do
      uf_rest=${uf_rest#/} uf_part=${uf_rest%%/*}
      uf_rest=${uf_rest#"$uf_part"}
      case $uf_part in
        '' | .) ;;
        ..) uf_up=1; break ;;
        *) uf_pre=$uf_pre/$uf_part; set -- "$@" "$uf_pre" ;;
      esac
    done
    uf_path=$uf_pre${uf_up:+/..}$uf_rest
    # stat without -L: a symlink shows as one. Parts that do not exist print nothing.
    uf_out=$(stat -c '%u %f %n' -- "$@" 2>/dev/null | judge_folders "$uf_up")
    case $uf_out in
      '') ;;
      link:*)
        uf_link=${uf_out#link:}
        uf_to=$(readlink -- "$uf_link") || { echo "cannot read the symlink $uf_link"; return; }
        case $uf_to in /*) ;; *) uf_to=${uf_link%/*}/$uf_to ;; esac
        uf_path=$uf_to${uf_path#"$uf_link"}
        continue ;;
      *) echo "$uf_out"; return ;;
    esac
    [ -n "$uf_up" ] || return 0
    # No symlink before the `..`: it is the parent of the folders read so far.
    uf_path=${uf_pre%/*}$uf_rest
    uf_path=${uf_path:-/}
  done
  echo "$1 has too many symlinks"
}

# Reads `stat -c '%u %f %n'` lines (uid, raw mode in hex, path), top down: prints `link:PATH` for the
# first symlink (to follow), else the first problem, else nothing. $1 is 1 when the lines stop short of
# the folder (at a `..`): the last one read is then not the folder itself.
judge_folders() {
  j_sticky=''
  while read -r j_uid j_mode j_name; do
    j_sticky='' j_mode=$((0x$j_mode))
    case $((j_mode & 61440)) in
      16384) ;;
      40960)
        [ "$j_uid" = 0 ] || { echo "$j_name is a symlink owned by uid $j_uid, not root"; return; }
        echo "link:$j_name"
        return ;;
      *) echo "$j_name is not a folder"; return ;;
    esac
    [ "$j_uid" = 0 ] || { echo "$j_name is owned by uid $j_uid, not root"; return; }
    [ $((j_mode & 18)) = 0 ] && continue
    j_why="$j_name is writable by group or others (mode $(printf %o $((j_mode & 4095))))"
    [ $((j_mode & 512)) = 0 ] && { echo "$j_why"; return; }
    j_sticky=$j_why
  done
  # A sticky folder open to all is fine above the folder, not as the folder (or its nearest existing part).
  [ -n "$1" ] || [ -z "$j_sticky" ] || echo "$j_sticky"
}

# A byte count line, then the bytes; -1 when the file does not exist.
section() { if [ -f "$1" ]; then stat -L -c %s "$1" && cat "$1"; else echo -1; fi; }

# What fwgen owns of a live filter table, as one digest: its chains and its hooks. Other tools'
# chains and rules (fail2ban's bans, Docker's hooks) do not count. Reads iptables-save text on stdin:
# the filter table alone (`-t filter`) or every table (only the filter table's lines count).
# (One sed and one sha256sum: the same digest as sed | grep -E | sha256sum | cut, two forks fewer.)
fingerprint() {
  fp_sum=$(sed -n -E '/^\*filter$/,/^COMMIT$/{s/ \[[0-9]*:[0-9]*\]$//; /^(:FWGEN-|-A FWGEN-|-A (INPUT|FORWARD|OUTPUT) (.* )?(-[jg] FWGEN-|--comment "?fwgen([^A-Za-z0-9_]|$)))/p;}' | sha256sum) &&
    printf '%s\n' "${fp_sum%% *}"
}

# Lock state for messages: since, until (epoch seconds), run, owner (last: it may hold spaces).
lock_info() {
  printf 'since=%s until=%s run=%s owner=%s\n' "$(cat "$LOCK/since" 2>/dev/null || stat -c %Y "$LOCK" 2>/dev/null || echo 0)" \
    "${until:-$(cat "$LOCK/until" 2>/dev/null || echo 0)}" "$(cat "$LOCK/run" 2>/dev/null || echo -)" \
    "$(head -c 200 "$LOCK/owner" 2>/dev/null | tr '\n' ' ' || echo unknown)"
}

# (read, not $(cat ...): no fork. stderr first, so that a missing file says nothing.)
lock_is_ours() { lock_run=; read -r lock_run 2>/dev/null < "$LOCK/run"; [ "$lock_run" = "$ID" ]; }

release_lock() { if lock_is_ours; then rm -rf "$LOCK"; fi; }

# take_lock OWNER CLEAR_AFTER_S BREAK: a lock whose run is gone clears after its dead-man timeout.
take_lock() {
  if ! mkdir "$LOCK" 2>/dev/null; then
    # Not there, yet not creatable: not another run's lock, a folder that cannot be written.
    [ -d "$LOCK" ] || fail 1 "cannot create the lock $LOCK (read-only file system or disk full?); nothing changed"
    now=$(date +%s) run=$(cat "$LOCK/run" 2>/dev/null)
    # A lock without its expiry (an older fwgen, or a run killed while writing it) clears 10 minutes after it was made.
    until=$(cat "$LOCK/until" 2>/dev/null || echo $(($(stat -c %Y "$LOCK" 2>/dev/null || echo "$now") + 600)))
    if [ "$3" = 1 ] || { [ "$now" -ge "$until" ] && [ ! -e "$RULES.fwgen-armed.$run" ]; }; then
      printf 'fwgen: broke the lock of a run that is gone: %s' "$(lock_info)" >&2
      # Its change was never confirmed: undo it now, as its switch would, before this run goes on.
      fire_switch "$run"
      rm -rf "$LOCK"
      mkdir "$LOCK" 2>/dev/null || fail "$E_LOCKED" "another fwgen run took the lock $LOCK"
    else
      printf 'lock=held now=%s %s' "$now" "$(lock_info)"
      fail "$E_LOCKED" "another fwgen run holds the lock $LOCK"
    fi
  fi
  now=$(date +%s)
  { printf '%s\n' "$1" > "$LOCK/owner" && printf '%s\n' "$ID" > "$LOCK/run" && echo "$now" > "$LOCK/since" &&
    echo "$((now + $2))" > "$LOCK/until"; } || { rm -rf "$LOCK"; fail 1 "cannot write the lock $LOCK"; }
}

# Stops the dead-man switch of run $1 (default: this run), its timer or its sleeping process.
stop_switch() {
  sid=${1:-$ID}
  pid=; read -r pid 2>/dev/null < "$RULES.fwgen-deadman.$sid.pid"
  case "$pid" in
    systemd) systemctl stop "fwgen-deadman-$sid.timer" "fwgen-deadman-$sid.service" >/dev/null 2>&1 ;;
    [0-9]*) kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null ;;
  esac
  rm -f "$RULES.fwgen-deadman.$sid.pid"
}

# fire_switch RUN: the armed switch of RUN (a run that is gone) fires now instead of at its time.
# The armed file holds the switch's arguments; the switch claims it atomically, so a timer that wakes
# meanwhile does nothing.
fire_switch() {
  [ -n "$1" ] && [ -e "$RULES.fwgen-armed.$1" ] && [ -f "$RULES.fwgen-deadman.$1" ] || return 0
  read -r f_bts f_fp4 f_fp6 f_timeout < "$RULES.fwgen-armed.$1" || return 0
  stop_switch "$1"
  printf 'fwgen: fired the dead-man switch of run %s (never confirmed): its change is undone\n' "$1" >&2
  /bin/sh "$RULES.fwgen-deadman.$1" "$RULES" "$RULES6" "$1" "$f_bts" "$f_fp4" "$f_fp6" 0 "$f_timeout" >/dev/null 2>&1
}

# After the switch of this run was claimed by its timer: waits until it has undone the change (it
# removes the .fired mark last), then prints `ok` or `failed` from its log line.
await_switch() {
  n=0
  while [ -e "$ARMED.fired" ] && [ "$n" -lt 1200 ]; do sleep 0.1 2>/dev/null || sleep 1; n=$((n + 1)); done
  if grep -q "ROLLBACK FAILED ship $ID:" "$LOG" 2>/dev/null; then echo failed
  elif grep -q "rolled back ship $ID:" "$LOG" 2>/dev/null; then echo ok
  else echo unknown; fi
}
