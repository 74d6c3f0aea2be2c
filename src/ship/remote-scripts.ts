import { shq } from './ssh-transport.js';

/** Where a host keeps its rules and fwgen's bookkeeping: everything sits beside the rules file. */
export interface RemotePaths {
  readonly rules: string;
  readonly rules6: string;
}

/** Settings of one ship run that every phase's script needs. */
export interface ScriptVars {
  readonly paths: RemotePaths;
  readonly id: string;
  readonly ipv6: boolean;
}

/** The IPv6 rules file beside the IPv4 one: `iptables` becomes `ip6tables`, `rules.v4` becomes `rules.v6`, else `.v6` is appended. */
export function rules6PathFor(rules: string): string {
  const slash = rules.lastIndexOf('/');
  const base = rules.slice(slash + 1);
  const v6 = base.includes('iptables') ? base.replace('iptables', 'ip6tables') : base.endsWith('.v4') ? `${base.slice(0, -3)}.v6` : `${base}.v6`;
  return `${rules.slice(0, slash + 1)}${v6}`;
}

/** Shared prologue of every remote script: variables (all quoted) and helpers. Every value here passed a strict pattern first. */
export function prologue(v: ScriptVars, extra: Record<string, string | number> = {}): string {
  const vars: Record<string, string | number> = {
    RULES: v.paths.rules,
    RULES6: v.paths.rules6,
    ID: v.id,
    HAS6: v.ipv6 ? 1 : 0,
    ...extra,
  };
  return `set -u
umask 077
${Object.entries(vars).map(([k, val]) => `${k}=${shq(String(val))}`).join('\n')}
NEW4="$RULES.fwgen-new.$ID"
NEW6="$RULES6.fwgen-new.$ID"
LOCK="$RULES.fwgen-lock"
ARMED="$RULES.fwgen-armed.$ID"
DM="$RULES.fwgen-deadman.$ID"
STATE="$RULES.fwgen-state.json"
fail() { code=$1; shift; printf 'fwgen: %s\\n' "$*" >&2; exit "$code"; }
norm() { sed -e '/^#/d' -e 's/\\[[0-9]*:[0-9]*\\]$/[0:0]/'; }
live_matches() { "$1" -t filter | norm > "$2.live-now" && norm < "$2" | cmp -s - "$2.live-now"; rc=$?; rm -f "$2.live-now"; return $rc; }
release() { rm -f "$NEW4" "$NEW6" "$NEW4.all" "$NEW4.err" "$NEW4.applied" "$NEW6.applied"; rm -rf "$LOCK"; }
ours() { [ "$(cat "$LOCK/run" 2>/dev/null)" = "$ID" ]; }
`;
}

/** Exit codes the scripts use, besides 0. */
export const EXIT = { locked: 10, testFailed: 11, applyFailed: 13, alreadyRolledBack: 14, missingTool: 15, noBackup: 16, neverArmed: 17 } as const;

/** A lock older than this, with no dead-man switch armed, was left by an interrupted run. */
const STALE_LOCK_MINUTES = 10;

/** What a host with no filter rules runs: restoring it can never lock anyone out. */
const ACCEPT_ALL = '*filter\\n:INPUT ACCEPT [0:0]\\n:FORWARD ACCEPT [0:0]\\n:OUTPUT ACCEPT [0:0]\\nCOMMIT\\n';

/**
 * Phase 1: lock, stage the new files (from stdin, or from a backup for a rollback), `--test` them,
 * and report whether anything would change. Prints `status=unchanged` or `status=ready`.
 */
export function prepareScript(v: ScriptVars, o: { size4: number; force: boolean; from?: string; owner: string }): string {
  return `${prologue(v, { SIZE4: o.size4, FORCE: o.force ? 1 : 0, FROM: o.from ?? '', OWNER: o.owner })}
for t in iptables-restore iptables-save; do command -v "$t" >/dev/null 2>&1 || fail ${EXIT.missingTool} "$t not found on the host (install iptables)"; done
if [ "$HAS6" = 1 ]; then for t in ip6tables-restore ip6tables-save; do command -v "$t" >/dev/null 2>&1 || fail ${EXIT.missingTool} "$t not found on the host"; done; fi
mkdir -p "$(dirname "$RULES")" || fail 1 "cannot create the folder of $RULES"
if ! mkdir "$LOCK" 2>/dev/null; then
  stale=$(find "$LOCK" -maxdepth 0 -mmin +${STALE_LOCK_MINUTES} 2>/dev/null)
  if [ -n "$stale" ] && ! ls "$RULES".fwgen-armed.* >/dev/null 2>&1; then
    echo "fwgen: broke a stale lock ($(cat "$LOCK/owner" 2>/dev/null || echo unknown owner))" >&2
    rm -rf "$LOCK"; mkdir "$LOCK" 2>/dev/null || fail ${EXIT.locked} "another fwgen run holds the lock $LOCK"
  else
    fail ${EXIT.locked} "another fwgen run holds the lock $LOCK ($(cat "$LOCK/owner" 2>/dev/null || echo unknown owner))"
  fi
fi
printf '%s\\n' "$OWNER" > "$LOCK/owner" && printf '%s\\n' "$ID" > "$LOCK/run" || { release; fail 1 "cannot write the lock $LOCK"; }
if [ -n "$FROM" ]; then
  if [ -f "$RULES.bak.$FROM" ]; then cp "$RULES.bak.$FROM" "$NEW4"; elif [ -f "$RULES.bak.$FROM.live" ]; then cp "$RULES.bak.$FROM.live" "$NEW4"; else release; fail ${EXIT.noBackup} "no backup $FROM of $RULES on this host"; fi
  if [ "$HAS6" = 1 ]; then
    if [ -f "$RULES6.bak.$FROM" ]; then cp "$RULES6.bak.$FROM" "$NEW6"; elif [ -f "$RULES.bak.$FROM.live6" ]; then cp "$RULES.bak.$FROM.live6" "$NEW6"; else HAS6=0; fi
  fi
else
  cat > "$NEW4.all" || { release; fail 1 "upload failed"; }
  head -c "$SIZE4" "$NEW4.all" > "$NEW4"
  if [ "$HAS6" = 1 ]; then tail -c +"$((SIZE4 + 1))" "$NEW4.all" > "$NEW6"; fi
  rm -f "$NEW4.all"
fi
# Unchanged first: a host that already runs these rules needs no test.
if [ "$FORCE" = 0 ] && cmp -s "$NEW4" "$RULES" && live_matches iptables-save "$NEW4"; then
  if [ "$HAS6" = 0 ] || { cmp -s "$NEW6" "$RULES6" && live_matches ip6tables-save "$NEW6"; }; then
    release; echo "status=unchanged"; exit 0
  fi
fi
if ! iptables-restore --test < "$NEW4" 2> "$NEW4.err"; then
  msg=$(head -c 400 "$NEW4.err" | tr '\\n' ' '); release; fail ${EXIT.testFailed} "iptables-restore --test rejected the new rules: $msg"
fi
if [ "$HAS6" = 1 ] && ! ip6tables-restore --test < "$NEW6" 2> "$NEW4.err"; then
  msg=$(head -c 400 "$NEW4.err" | tr '\\n' ' '); release; fail ${EXIT.testFailed} "ip6tables-restore --test rejected the new rules: $msg"
fi
rm -f "$NEW4.err"
echo "status=ready"
`;
}

/**
 * Phase 2 (same connection): back up the file and the live ruleset, arm the dead-man switch, apply.
 * The switch restores the live backup after TIMEOUT seconds unless phase 3 disarms it; it runs
 * detached (systemd-run when systemd runs, else setsid) so it survives this SSH session. A live
 * backup the kernel would not take back (a host with no tables yet, an incompatible table) is
 * replaced by an accept-all filter table: the switch must always be able to restore something.
 */
export function applyScript(v: ScriptVars, o: { timeoutS: number; keep: number }): string {
  return `${prologue(v, { TIMEOUT: o.timeoutS, KEEP: o.keep })}
ours || fail 1 "the lock $LOCK is not held by this run; not applying"
abort() { release; fail 1 "$*"; }
TS=$(date -u +%Y%m%dT%H%M%SZ); BTS=$TS; n=1
while [ -e "$RULES.bak.$BTS.live" ]; do BTS="$TS-$n"; n=$((n + 1)); done
BAK="$RULES.bak.$BTS"
if [ -e "$RULES" ]; then cp -p "$RULES" "$BAK" || abort "cannot back up $RULES"; fi
iptables-save > "$BAK.live" || abort "iptables-save failed"
restorable() { grep -q '^\\*filter' "$2" && "$1" --test < "$2" >/dev/null 2>&1; }
restorable iptables-restore "$BAK.live" || printf '${ACCEPT_ALL}' > "$BAK.live" || abort "cannot write $BAK.live"
if [ "$HAS6" = 1 ]; then
  if [ -e "$RULES6" ]; then cp -p "$RULES6" "$RULES6.bak.$BTS" || abort "cannot back up $RULES6"; fi
  ip6tables-save > "$BAK.live6" || abort "ip6tables-save failed"
  restorable ip6tables-restore "$BAK.live6" || printf '${ACCEPT_ALL}' > "$BAK.live6" || abort "cannot write $BAK.live6"
fi
ls -1 "$RULES".bak.*.live 2>/dev/null | grep -v -x -F "$BAK.live" | sort -r | tail -n +"$KEEP" | while read -r f; do
  t=\${f%.live}; t=\${t#"$RULES.bak."}
  rm -f "$RULES.bak.$t" "$RULES.bak.$t.live" "$RULES.bak.$t.live6" "$RULES6.bak.$t"
done
cat > "$DM" <<FWGEN_DEADMAN || abort "cannot write the dead-man switch $DM"
#!/bin/sh
sleep "\\$1"
mv "$ARMED" "$ARMED.fired" 2>/dev/null || exit 0
ok=1
iptables-restore -w < "$BAK.live" || ok=0
if [ -f "$BAK.live6" ]; then ip6tables-restore -w < "$BAK.live6" || ok=0; fi
if [ "\\$ok" = 1 ]; then what="rolled back"; else what="ROLLBACK FAILED"; fi
printf '%s %s ship %s: not confirmed within %ss\\\\n' "\\$(date -u +%Y-%m-%dT%H:%M:%SZ)" "\\$what" "$ID" "$TIMEOUT" >> "$RULES.fwgen-rollbacks"
rm -f "$NEW4" "$NEW6" "$NEW4.applied" "$NEW6.applied" "$ARMED.fired" "$DM.pid" "$DM"
rm -rf "$LOCK"
FWGEN_DEADMAN
: > "$ARMED" || abort "cannot arm the dead-man switch"
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
  systemd-run --quiet --unit "fwgen-deadman-$ID" --on-active="$TIMEOUT" --timer-property=AccuracySec=1s /bin/sh "$DM" 0 >/dev/null 2>&1 || { rm -f "$ARMED" "$DM"; abort "systemd-run could not arm the dead-man switch"; }
  echo "systemd" > "$DM.pid"
elif command -v setsid >/dev/null 2>&1; then
  setsid /bin/sh "$DM" "$TIMEOUT" </dev/null >/dev/null 2>&1 &
  echo "$!" > "$DM.pid"
else
  nohup /bin/sh "$DM" "$TIMEOUT" </dev/null >/dev/null 2>&1 &
  echo "$!" > "$DM.pid"
fi
rollback_now() {
  if mv "$ARMED" "$ARMED.fired" 2>/dev/null; then
    iptables-restore -w < "$BAK.live"; if [ -f "$BAK.live6" ]; then ip6tables-restore -w < "$BAK.live6"; fi
    rm -f "$ARMED.fired"
  fi
  pid=$(cat "$DM.pid" 2>/dev/null); case "$pid" in systemd) systemctl stop "fwgen-deadman-$ID.timer" 2>/dev/null ;; [0-9]*) kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null ;; esac
  rm -f "$DM" "$DM.pid"; release
}
if ! iptables-restore -w < "$NEW4" 2> "$NEW4.err"; then
  msg=$(head -c 400 "$NEW4.err" | tr '\\n' ' '); rollback_now; fail ${EXIT.applyFailed} "iptables-restore failed, previous rules restored: $msg"
fi
if [ -f "$NEW6" ] && ! ip6tables-restore -w < "$NEW6" 2> "$NEW4.err"; then
  msg=$(head -c 400 "$NEW4.err" | tr '\\n' ' '); rollback_now; fail ${EXIT.applyFailed} "ip6tables-restore failed, previous rules restored: $msg"
fi
rm -f "$NEW4.err"
# What the kernel shows for what was applied: the commit step compares with this, not with the file.
iptables-save -t filter | norm > "$NEW4.applied"
if [ -f "$NEW6" ]; then ip6tables-save -t filter | norm > "$NEW6.applied"; fi
echo "status=applied backup=$BTS"
`;
}

/**
 * Phase 3, over a NEW connection (the old one survives through conntrack and proves nothing):
 * disarm, move the new files into place, record state, unlock. This connection working is the proof
 * that SSH still gets in, so the step completes even when the live rules changed since phase 2
 * (another tool adding its chains); it then says so (`warning=live-changed`).
 */
export function commitScript(v: ScriptVars, o: { stateJson: string }): string {
  return `${prologue(v, { STATE_JSON: o.stateJson })}
if ! mv "$ARMED" "$ARMED.done" 2>/dev/null; then
  if grep -q "ship $ID:" "$RULES.fwgen-rollbacks" 2>/dev/null || [ -e "$ARMED.fired" ]; then echo "status=rolled-back"; exit ${EXIT.alreadyRolledBack}; fi
  # Never armed: the apply step did not get that far, so nothing was applied.
  if ours; then release; fi
  echo "status=never-armed"; exit ${EXIT.neverArmed}
fi
pid=$(cat "$DM.pid" 2>/dev/null); case "$pid" in systemd) systemctl stop "fwgen-deadman-$ID.timer" 2>/dev/null ;; [0-9]*) kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null ;; esac
warning=""
iptables-save -t filter | norm | cmp -s - "$NEW4.applied" || warning=" warning=live-changed"
if [ -f "$NEW6" ]; then ip6tables-save -t filter | norm | cmp -s - "$NEW6.applied" || warning=" warning=live-changed"; fi
mv -f "$NEW4" "$RULES" || fail 1 "cannot move the new rules into $RULES"
if [ -f "$NEW6" ]; then mv -f "$NEW6" "$RULES6" || fail 1 "cannot move the new rules into $RULES6"; fi
printf '%s\\n' "$STATE_JSON" > "$STATE.tmp" && mv -f "$STATE.tmp" "$STATE"
rm -f "$ARMED.done" "$DM" "$DM.pid"
release
echo "status=committed$warning"
`;
}

/** After a failed confirmation: has the dead-man switch fired (and cleaned up)? */
export function verifyRollbackScript(v: ScriptVars): string {
  return `${prologue(v)}
if [ -e "$ARMED" ] || [ -e "$ARMED.fired" ]; then echo "status=still-armed"; exit 0; fi
if grep -q "rolled back ship $ID:" "$RULES.fwgen-rollbacks" 2>/dev/null; then echo "status=rolled-back"; exit 0; fi
if grep -q "ROLLBACK FAILED ship $ID:" "$RULES.fwgen-rollbacks" 2>/dev/null; then echo "status=rollback-failed"; exit 0; fi
echo "status=unknown"
`;
}

/** Lists backups (newest first) as `TS size-of-file-backup` lines; `-` when only the live snapshot exists. */
export function listBackupsScript(v: ScriptVars): string {
  return `${prologue(v)}
ls -1 "$RULES".bak.*.live 2>/dev/null | sort -r | while read -r f; do
  t=\${f%.live}; t=\${t#"$RULES.bak."}
  if [ -f "$RULES.bak.$t" ]; then s=$(wc -c < "$RULES.bak.$t"); else s=-; fi
  echo "$t $s"
done
exit 0
`;
}

/** Prints the current rules file(s) for a dry-run diff: a byte count line, then the bytes, per family. */
export function readRulesScript(v: ScriptVars): string {
  return `${prologue(v)}
for f in "$RULES" "$RULES6"; do
  if [ "$f" = "$RULES6" ] && [ "$HAS6" = 0 ]; then continue; fi
  if [ -f "$f" ]; then echo "$(wc -c < "$f")"; cat "$f"; else echo "-1"; fi
done
`;
}

/** Parses the `status=...` line and `key=value` pairs a script printed last. */
export function parseStatus(stdout: string): Record<string, string> {
  const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('status=')) ?? '';
  return Object.fromEntries(line.split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}
