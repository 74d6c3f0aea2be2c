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

# txn_resolve MODE SAVE TXN [HANDLES FAMILY NFT_OUT X_OUT]: prints TXN with its positions found in
# SAVE (iptables-save text). MODE nft: deletes go to NFT_OUT as `delete rule FAMILY TABLE CHAIN handle
# H`, their handles from HANDLES (`nft -a list ruleset`), and chain removals (-X) to X_OUT: the restore
# runs first (the rules to delete still in place for its positions), then the deletes, then X_OUT.
txn_resolve() {
  awk -v mode="$1" -v savef="$2" -v handf="${4:-}" -v fam="${5:-ip}" -v nftout="${6:-/dev/null}" -v xout="${7:-/dev/null}" '
function rest(s, k,   i) { while (--k > 0) { i = index(s, " "); if (!i) return ""; s = substr(s, i + 1) } return s }
function find(t, c, text, occ,   i, n) {
  n = 0
  for (i = 1; i <= len[t, c]; i++) if (!gh[t, c, i] && line[t, c, i] == text && ++n == occ) return i
  return 0
}
function put(t, c, p, text,   i) {
  for (i = ++len[t, c]; i > p; i--) { line[t, c, i] = line[t, c, i - 1]; org[t, c, i] = org[t, c, i - 1]; gh[t, c, i] = gh[t, c, i - 1] }
  line[t, c, p] = text; org[t, c, p] = 0; gh[t, c, p] = 0
}
function cut(t, c, p,   i) {
  for (i = p; i < len[t, c]; i++) { line[t, c, i] = line[t, c, i + 1]; org[t, c, i] = org[t, c, i + 1]; gh[t, c, i] = gh[t, c, i + 1] }
  len[t, c]--
}
FILENAME == savef {
  if (substr($0, 1, 1) == "*") tb = substr($0, 2)
  else if (substr($0, 1, 3) == "-A ") { n = ++len[tb, $2]; olen[tb, $2] = n; line[tb, $2, n] = $0; org[tb, $2, n] = n; gh[tb, $2, n] = 0 }
  next
}
FILENAME == handf {
  if ($0 ~ /\{ # handle [0-9]+$/) {
    if ($1 == "table") ht = ($2 == fam ? $3 : "")
    hc = ($1 == "chain" ? $2 : "")
  } else if (ht != "" && hc != "" && $0 ~ /# handle [0-9]+$/) {
    h = $0; sub(/.*# handle /, "", h); hnd[ht, hc, ++hl[ht, hc]] = h
  }
  next
}
substr($0, 1, 1) == "*" { tb = substr($0, 2); print; next }
substr($0, 1, 6) == "#@del " { pk = "del"; po = $2; pt = rest($0, 3); next }
substr($0, 1, 6) == "#@ins " { pk = $2; po = $3; pt = rest($0, 4); next }
substr($0, 1, 1) == ":" {
  c = substr($1, 2)
  if (c !~ /^(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING)$/) len[tb, c] = 0
  pk = ""; print; next
}
substr($0, 1, 3) == "-D " {
  c = $2
  p = (pk == "del") ? find(tb, c, pt, po) : find(tb, c, "-A " rest($0, 3), 1)
  pk = ""
  if (!p) next
  o = org[tb, c, p]
  if (mode == "nft" && o > 0 && hl[tb, c] == olen[tb, c] && hnd[tb, c, o] != "") {
    gh[tb, c, p] = 1
    print "delete rule " fam " " tb " " c " handle " hnd[tb, c, o] > nftout
    next
  }
  print "-D " c " " p; cut(tb, c, p); next
}
substr($0, 1, 3) == "-I " {
  c = $2; r = rest($0, 4); p = $3 + 0
  if (pk == "after") { a = find(tb, c, pt, po); if (a) p = a + 1 }
  else if (pk == "before") { a = find(tb, c, pt, po); if (a) p = a }
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
  len[tb, $2] = 0
  if (mode == "nft") xs = xs $0 "\n"; else print
  next
}
$0 == "COMMIT" {
  if (xs != "") printf "*%s\n%sCOMMIT\n", tb, xs > xout
  xs = ""; print; next
}
{ print }
' "$2" ${4:+"$4"} "$3"
}

# txn_apply FAMILY TXN DIR: applies TXN (4 or 6: iptables or ip6tables) with its positions found in the
# live rules at that moment; DIR holds the working files. Returns the restore's status (its errors on
# stderr). With `test` as a fourth argument, only `--test`s the resolved transaction.
txn_apply() {
  case $1 in
    6) tx_save=ip6tables-save tx_restore=ip6tables-restore tx_fam=ip6 ;;
    *) tx_save=iptables-save tx_restore=iptables-restore tx_fam=ip ;;
  esac
  tx_t=$2 tx_d=$3
  rm -f "$tx_d/txn.nft" "$tx_d/txn.x"
  "$tx_save" > "$tx_d/txn.save" 2> "$tx_d/txn.err" || { cat "$tx_d/txn.err" >&2; return 1; }
  if [ "${4:-}" = test ]; then
    txn_resolve pos "$tx_d/txn.save" "$tx_t" > "$tx_d/txn.in" && "$tx_restore" --test --noflush < "$tx_d/txn.in"
    return
  fi
  if grep -q '^# Generated by .*(nf_tables)' "$tx_d/txn.save"; then
    if command -v nft >/dev/null 2>&1 && txn_handles; then
      txn_resolve nft "$tx_d/txn.save" "$tx_t" "$tx_d/txn.handles" "$tx_fam" "$tx_d/txn.nft" "$tx_d/txn.x" \
        > "$tx_d/txn.in" || return 1
    else
      txn_resolve pos "$tx_d/txn.save" "$tx_t" > "$tx_d/txn.in" || return 1
    fi
    "$tx_restore" -w --noflush < "$tx_d/txn.in" || return 1
    # One transaction for every delete; a handle gone meanwhile (its rule deleted by someone else)
    # fails it, then each goes alone and a missing one is skipped.
    if [ -s "$tx_d/txn.nft" ] && ! nft -f "$tx_d/txn.nft" 2>/dev/null; then
      while read -r tx_l; do printf '%s\n' "$tx_l" | nft -f - 2>/dev/null; done < "$tx_d/txn.nft"
    fi
    [ ! -s "$tx_d/txn.x" ] || "$tx_restore" -w --noflush < "$tx_d/txn.x"
    return
  fi
  txn_locked
  tx_rc=$?
  [ "$tx_rc" = 3 ] || return "$tx_rc"
  # No flock, or an iptables that cannot be pointed at another lock file: positions read just before.
  txn_resolve pos "$tx_d/txn.save" "$tx_t" > "$tx_d/txn.in" && "$tx_restore" -w --noflush < "$tx_d/txn.in"
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
  { "$tx_save" > "$tx_d/txn.save" && txn_resolve pos "$tx_d/txn.save" "$tx_t" > "$tx_d/txn.in"; } || tx_rc=1
  if [ "$tx_rc" = 0 ]; then
    XTABLES_LOCKFILE="$tx_d/xtables.lock" "$tx_restore" -w 5 --noflush < "$tx_d/txn.in" 2> "$tx_d/txn.err" || tx_rc=1
    if [ "$tx_rc" = 1 ] && grep -q 'xtables lock' "$tx_d/txn.err"; then tx_rc=3; else cat "$tx_d/txn.err" >&2; fi
  fi
  exec 9>&-
  return "$tx_rc"
}

# nf_tables: the rule handles (`nft -a list ruleset`) read between two iptables-save that agree, so
# that the n-th rule of a chain in one is the n-th in the other. Fails after 5 tries, or without nft.
txn_handles() {
  tx_n=0
  while [ "$tx_n" -lt 5 ]; do
    tx_a=$("$tx_save" 2>/dev/null | grep -v '^#' | sha256sum)
    nft -a list ruleset > "$tx_d/txn.handles" 2>/dev/null || return 1
    "$tx_save" > "$tx_d/txn.save" 2>/dev/null || return 1
    [ "$(grep -v '^#' "$tx_d/txn.save" | sha256sum)" = "$tx_a" ] && return 0
    tx_n=$((tx_n + 1))
  done
  return 1
}
