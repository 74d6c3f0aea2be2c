# shellcheck shell=sh
# fwgen remote library for transactions: sent after lib.sh to the steps that change live rules (apply,
# commit) and inside the dead-man switch. A transaction is `iptables-restore --noflush` text in which
# each delete and insert by position is led by a comment naming its rule or its neighbour:
#   #@del OCC LINE            the next `-D CHAIN N` deletes the OCC-th rule whose saved line is LINE
#   #@ins after OCC LINE      the next `-I CHAIN N ...` goes right after the OCC-th rule LINE
#   #@ins before OCC LINE     ... right before it
#   #@ins end                 ... at the end of the chain
# iptables-restore skips comments, so the text applies as it is when the chains are as they were read.
# txn_apply finds every rule again in the live chains at the moment it applies, and fixes the positions:
# deleting by position is exact for any rule (also one whose saved text does not parse back to the same
# rule, which a delete by text cannot find), and other tools' rules added since the read are neither
# deleted nor displaced. A rule to delete that is gone already is skipped.
# Race-safe: with the legacy backend the positions are read and applied inside one hold of the xtables
# lock, which every iptables command takes; with nf_tables (no shared lock) each delete goes by the
# rule's handle (nft), which names one rule for good, and the handles are read between two identical
# iptables-save; an insert with nothing after it but rules about to go is an append (fwgen's hooks,
# rules put back after the last hook), which rules inserted at the top meanwhile do not move; other
# inserts, and every position without nft, are read a few milliseconds before they apply.
fwgen_txn() { :; }

# txn_resolve MODE [FAMILY]: reads, on stdin, [`nft -a list table` text, a `#@@` line,] iptables-save text
# of the live tables, a `#@@` line, and a transaction; prints the transaction with its positions found
# in the live rules. MODE nft (with the handles first): deletes are printed as `#@nft delete rule FAMILY
# TABLE CHAIN handle H` and chain removals (-X) as `#@x` lines after their table, since the restore runs
# first (the rules to delete still in place for its positions), then the deletes, then the removals.
txn_resolve() {
  awk -v mode="$1" -v fam="${2:-ip}" '
function rest(s, k,   i) { while (--k > 0) { i = index(s, " "); if (!i) return ""; s = substr(s, i + 1) } return s }
# The occ-th rule with this text. A text the chain holds once is looked for from the planned position
# outwards (it is there, or near, unless others changed the chain much): a long chain stays fast.
function find(t, c, text, occ, hint,   i, n, d) {
  if (occ == 1 && cnt[t, c, text] == 1) {
    for (d = 0; hint - d >= 1 || hint + d <= len[t, c]; d++) {
      i = hint - d; if (i >= 1 && i <= len[t, c] && !gh[t, c, i] && line[t, c, i] == text) return i
      i = hint + d; if (i >= 1 && i <= len[t, c] && !gh[t, c, i] && line[t, c, i] == text) return i
    }
    return 0
  }
  n = 0
  for (i = 1; i <= len[t, c]; i++) if (!gh[t, c, i] && line[t, c, i] == text && ++n == occ) return i
  return 0
}
function put(t, c, p, text,   i) {
  for (i = ++len[t, c]; i > p; i--) { line[t, c, i] = line[t, c, i - 1]; org[t, c, i] = org[t, c, i - 1]; gh[t, c, i] = gh[t, c, i - 1] }
  line[t, c, p] = text; org[t, c, p] = 0; gh[t, c, p] = 0; cnt[t, c, text]++
}
function flush(t, c,   i) {
  for (i = 1; i <= len[t, c]; i++) if (!gh[t, c, i]) cnt[t, c, line[t, c, i]]--
  len[t, c] = 0
}
function cut(t, c, p,   i) {
  if (!gh[t, c, p]) cnt[t, c, line[t, c, p]]--
  for (i = p; i < len[t, c]; i++) { line[t, c, i] = line[t, c, i + 1]; org[t, c, i] = org[t, c, i + 1]; gh[t, c, i] = gh[t, c, i + 1] }
  len[t, c]--
}
$0 == "#@@" { part++; next }
part == 0 && mode == "nft" {
  if ($0 ~ /\{ # handle [0-9]+$/) {
    if ($1 == "table") ht = ($2 == fam ? $3 : "")
    hc = ($1 == "chain" ? $2 : "")
  } else if (ht != "" && hc != "" && $0 ~ /# handle [0-9]+$/) {
    h = $0; sub(/.*# handle /, "", h); hnd[ht, hc, ++hl[ht, hc]] = h
  }
  next
}
part == (mode == "nft" ? 1 : 0) {
  if (substr($0, 1, 1) == "*") tb = substr($0, 2)
  else if (substr($0, 1, 3) == "-A ") { n = ++len[tb, $2]; olen[tb, $2] = n; line[tb, $2, n] = $0; org[tb, $2, n] = n; gh[tb, $2, n] = 0; cnt[tb, $2, $0]++ }
  next
}
substr($0, 1, 1) == "*" { tb = substr($0, 2); print; next }
substr($0, 1, 6) == "#@del " { pk = "del"; po = $2; pt = rest($0, 3); next }
substr($0, 1, 6) == "#@ins " { pk = $2; po = $3; pt = rest($0, 4); next }
substr($0, 1, 1) == ":" {
  c = substr($1, 2)
  if (c !~ /^(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING)$/) flush(tb, c)
  pk = ""; print; next
}
substr($0, 1, 3) == "-D " {
  c = $2
  p = (pk == "del") ? find(tb, c, pt, po, $3 + 0) : find(tb, c, "-A " rest($0, 3), 1, 1)
  pk = ""
  if (!p) next
  o = org[tb, c, p]
  if (mode == "nft" && o > 0 && hl[tb, c] == olen[tb, c] && hnd[tb, c, o] != "") {
    gh[tb, c, p] = 1; cnt[tb, c, line[tb, c, p]]--
    print "#@nft delete rule " fam " " tb " " c " handle " hnd[tb, c, o]
    next
  }
  print "-D " c " " p; cut(tb, c, p); next
}
substr($0, 1, 3) == "-I " {
  c = $2; r = rest($0, 4); p = $3 + 0
  if (pk == "after") { a = find(tb, c, pt, po, p - 1); if (a) p = a + 1 }
  else if (pk == "before") { a = find(tb, c, pt, po, p); if (a) p = a }
  else if (pk == "end") p = len[tb, c] + 1
  if (p < 1) p = 1
  if (p > len[tb, c] + 1) p = len[tb, c] + 1
  pk = ""
  # Nothing but rules about to go after it: appended, so that hooks others insert at the top meanwhile
  # do not move it (so the hook of fwgen goes last).
  for (i = p; i <= len[tb, c] && gh[tb, c, i]; i++) ;
  if (i > len[tb, c]) {
    put(tb, c, len[tb, c] + 1, "-A " c (r == "" ? "" : " " r))
    print "-A " c (r == "" ? "" : " " r); next
  }
  put(tb, c, p, "-A " c (r == "" ? "" : " " r))
  print "-I " c " " p (r == "" ? "" : " " r); next
}
substr($0, 1, 3) == "-A " { put(tb, $2, len[tb, $2] + 1, $0); print; next }
substr($0, 1, 3) == "-X " {
  flush(tb, $2)
  if (mode == "nft") xs = xs "#@x " $0 "\n"; else print
  next
}
$0 == "COMMIT" {
  print
  if (xs != "") printf "#@x *%s\n%s#@x COMMIT\n", tb, xs
  xs = ""; next
}
{ print }
'
}

# txn_apply FAMILY TXN DIR: applies TXN (4 or 6: iptables or ip6tables) with its positions found in the
# live rules at that moment. Returns the restore's status (its errors on stderr). With `test` as a
# fourth argument, only `--test`s the resolved transaction. Nothing is written but, with the legacy
# backend, DIR/xtables.lock (the lock file the restore takes while fwgen holds the xtables lock).
txn_apply() {
  case $1 in
    6) tx_save=ip6tables-save tx_restore=ip6tables-restore tx_fam=ip6 ;;
    *) tx_save=iptables-save tx_restore=iptables-restore tx_fam=ip ;;
  esac
  tx_t=$2 tx_d=$3
  # Only the tables the transaction names are read (filter, in practice).
  tx_tables=$(sed -n 's/^\*\([a-z]*\)$/\1/p' "$tx_t" | tr '\n' ' ')
  # No table: this family has nothing to change.
  [ -n "$tx_tables" ] || return 0
  # No delete and no insert by position (fwgen's chains refilled, hooks appended): nothing to find in the
  # live chains, nothing another tool's change could shift, so the text applies as it is; no read.
  if ! grep -q '^-[DI] ' "$tx_t"; then
    if [ "${4:-}" = test ]; then "$tx_restore" --test --noflush < "$tx_t"; else "$tx_restore" -w --noflush < "$tx_t"; fi
    return
  fi
  tx_live=$(txn_save) || return 1
  if [ "${4:-}" = test ]; then
    txn_pos | "$tx_restore" --test --noflush
    return
  fi
  case $tx_live in
    *"(nf_tables)"*) ;;
    *)
      txn_locked
      tx_rc=$?
      [ "$tx_rc" = 3 ] || return "$tx_rc"
      # No flock, or an iptables that cannot be pointed at another lock file: positions read just before.
      txn_pos | "$tx_restore" -w --noflush
      return
      ;;
  esac
  if ! command -v nft >/dev/null 2>&1 || ! txn_handles; then
    txn_pos | "$tx_restore" -w --noflush
    return
  fi
  tx_out=$(printf '%s\n#@@\n%s\n#@@\n' "$tx_handles" "$tx_live" | cat - "$tx_t" | txn_resolve nft "$tx_fam") || return 1
  printf '%s\n' "$tx_out" | grep -v '^#@' | "$tx_restore" -w --noflush || return 1
  # One transaction for every delete; a handle gone meanwhile (its rule deleted by someone else)
  # fails it, then each goes alone and a missing one is skipped.
  tx_nft=$(printf '%s\n' "$tx_out" | sed -n 's/^#@nft //p')
  if [ -n "$tx_nft" ] && ! printf '%s\n' "$tx_nft" | nft -f - 2>/dev/null; then
    printf '%s\n' "$tx_nft" | while read -r tx_l; do printf '%s\n' "$tx_l" | nft -f - 2>/dev/null; done
  fi
  tx_x=$(printf '%s\n' "$tx_out" | sed -n 's/^#@x //p')
  [ -z "$tx_x" ] || printf '%s\n' "$tx_x" | "$tx_restore" -w --noflush
}

# The transaction resolved against $tx_live, by position.
txn_pos() {
  printf '%s\n#@@\n' "$tx_live" | cat - "$tx_t" | txn_resolve pos
}

# The legacy backend: hold the xtables lock (every iptables command takes it) from reading the rules to
# the end of the restore, which meanwhile takes a lock file of its own. 3: could not do it that way.
txn_locked() {
  command -v flock >/dev/null 2>&1 || return 3
  tx_lock=${XTABLES_LOCKFILE:-/run/xtables.lock}
  # (A redirection that fails on exec ends the shell: try it on a command first.)
  true 2>/dev/null >> "$tx_lock" || return 3
  exec 9>> "$tx_lock"
  if ! flock -w 10 9; then exec 9>&-; return 3; fi
  tx_rc=0
  if tx_live=$(txn_save) && tx_in=$(txn_pos); then
    tx_err=$(printf '%s\n' "$tx_in" | XTABLES_LOCKFILE="$tx_d/xtables.lock" "$tx_restore" -w 5 --noflush 2>&1) || tx_rc=1
    case $tx_rc$tx_err in
      1*"xtables lock"*) tx_rc=3 ;;
      1*) printf '%s\n' "$tx_err" >&2 ;;
    esac
  else
    tx_rc=1
  fi
  exec 9>&-
  return "$tx_rc"
}

# nf_tables: the rule handles (`nft -a list table`) read between two iptables-save that agree, so that
# the n-th rule of a chain in one is the n-th in the other ($tx_live, $tx_handles). Fails after 5 tries.
txn_handles() {
  tx_n=0
  while [ "$tx_n" -lt 5 ]; do
    tx_a=$(printf '%s\n' "$tx_live" | grep -v '^#')
    tx_handles=$(for tx_tb in $tx_tables; do nft -a list table "$tx_fam" "$tx_tb" || exit 1; done 2>/dev/null) || return 1
    tx_live=$(txn_save 2>/dev/null) || return 1
    [ "$(printf '%s\n' "$tx_live" | grep -v '^#')" = "$tx_a" ] && return 0
    tx_n=$((tx_n + 1))
  done
  return 1
}

# The live rules of the tables the transaction names, as iptables-save prints them.
txn_save() {
  for tx_tb in $tx_tables; do "$tx_save" -t "$tx_tb" || return 1; done
}
