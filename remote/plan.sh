# shellcheck shell=sh
# fwgen remote library for the pull agent: the change from the live rules to a release, computed on
# the host, where ship computes it on the controller (src/model/transaction.ts: planChange, changeScript,
# undoOf, undoScript). The same rules, in POSIX awk: per table of the wanted file (and each live table
# holding fwgen's parts), fwgen's chains whose rules differ are refilled, those no longer wanted are
# dropped; a built-in chain the file has rules for ends with exactly those rules after every preserved
# tool's hook, and in one it has none for only fwgen's own rules go. The built-in chains change by
# position: between two preserved hooks, what the live and wanted rules share at the start and at the
# end stays, the rest is deleted (`#@del OCCURRENCE LINE` then `-D CHAIN POS`, last first) and inserted
# (`#@ins after|before OCCURRENCE LINE` then `-I CHAIN POS ...`, or appended); remote/txn.sh finds the
# positions again on the host. The undo is the plan from the result back to the live rules, fwgen's
# part put back among the preserved hooks as they are (mergeChain). test/agent-plan.test.ts holds both
# to the same bytes.
fwgen_plan() { :; }

# plan_change LIVE WANT PRESERVE CHANGE UNDO: writes the `iptables-restore --noflush` change and its undo;
# prints `tables=N` (0: fwgen's part of the live rules already is the wanted one). PRESERVE: the chain
# patterns (`*`, `?`) of other tools, space-separated.
plan_change() {
  awk -v livefile="$1" -v preserve="$3" -v changefile="$4" -v undofile="$5" '
function builtins(t) {
  if (t == "filter" || t == "security") return "INPUT FORWARD OUTPUT"
  if (t == "nat") return "PREROUTING INPUT OUTPUT POSTROUTING"
  if (t == "mangle") return "PREROUTING INPUT FORWARD OUTPUT POSTROUTING"
  if (t == "raw") return "PREROUTING OUTPUT"
  return ""
}
function isfwgen(c) { return substr(c, 1, 6) == "FWGEN-" }
# The words of a rule as iptables-save quotes them ("..." with backslash escapes), into W; returns the count.
function words(s,   n, i, ch, w, inw, q) {
  n = 0; w = ""; inw = 0; q = 0
  for (i = 1; i <= length(s); i++) {
    ch = substr(s, i, 1)
    if (!q && (ch == " " || ch == "\t")) { if (inw) W[++n] = w; w = ""; inw = 0 }
    else if (ch == "\"") { q = !q; inw = 1 }
    else if (q && ch == "\\" && i < length(s)) { w = w substr(s, ++i, 1); inw = 1 }
    else { w = w ch; inw = 1 }
  }
  if (inw) W[++n] = w
  return n
}
# Whose a rule in a built-in chain is (src/model/ownership.ts ownerOf): fwgen, preserved or leftover.
function owner(rest,   n, i, target, comment, hasc) {
  if (rest in OWN) return OWN[rest]
  n = words(rest); target = ""; comment = ""; hasc = 0
  for (i = 1; i < n; i++) {
    if (target == "" && (W[i] == "-j" || W[i] == "--jump" || W[i] == "-g" || W[i] == "--goto")) target = W[i + 1]
    if (!hasc && W[i] == "--comment") { comment = W[i + 1]; hasc = 1 }
  }
  if (target != "" && isfwgen(target)) return OWN[rest] = "fwgen"
  if (target != "" && keep != "" && target ~ keep) return OWN[rest] = "preserved"
  if (hasc && comment ~ /^fwgen([^A-Za-z0-9_]|$)/) return OWN[rest] = "fwgen"
  return OWN[rest] = "leftover"
}
# Lists of rules (the text after the chain name), by id: L[id, k], k = 1..LN[id].
function lcopy(from, to,   k) { LN[to] = 0; for (k = 1; k <= LN[from]; k++) L[to, ++LN[to]] = L[from, k] }
function lfrom(f, t, c, to,   k) { LN[to] = 0; for (k = 1; k <= nr[f, t, c]; k++) L[to, ++LN[to]] = r[f, t, c, k] }
function lsame(a, b,   k) {
  if (LN[a] != LN[b]) return 0
  for (k = 1; k <= LN[a]; k++) if (L[a, k] != L[b, k]) return 0
  return 1
}
function lown(a,   k) { for (k = 1; k <= LN[a]; k++) if (owner(L[a, k]) == "fwgen") return 1; return 0 }
# Which occurrence of its text the k-th rule of list a is.
function occ(a, k,   j, n) { n = 0; for (j = 1; j <= k; j++) if (L[a, j] == L[a, k]) n++; return n }
# The target of a built-in chain for planChange: the live preserved hooks then the wanted rules; with
# no wanted rule, the live rules but fwgen'"'"'s.
function target_change(lid, wid, out,   k) {
  LN[out] = 0
  if (LN[wid] == 0) { for (k = 1; k <= LN[lid]; k++) if (owner(L[lid, k]) != "fwgen") L[out, ++LN[out]] = L[lid, k]; return }
  for (k = 1; k <= LN[lid]; k++) if (owner(L[lid, k]) == "preserved") L[out, ++LN[out]] = L[lid, k]
  for (k = 1; k <= LN[wid]; k++) L[out, ++LN[out]] = L[wid, k]
}
# mergeChain: the live preserved hooks in their live order, with the target'"'"'s other rules placed among them.
function merge_chain(lid, tid, out,   k, i, j, np, nt, marker, firstown, lo, hi, s, n, m, cnt) {
  np = 0; firstown = 0
  for (k = 1; k <= LN[lid]; k++) {
    if (owner(L[lid, k]) == "preserved") LP[++np] = L[lid, k]
    else if (owner(L[lid, k]) == "fwgen" && firstown == 0) firstown = k
  }
  marker = -1
  if (firstown > 0) { cnt = 0; for (k = 1; k < firstown; k++) if (owner(L[lid, k]) == "preserved") cnt++; marker = cnt }
  nt = 0
  for (k = 1; k <= LN[tid]; k++) if (owner(L[tid, k]) == "preserved") { TP[++nt] = L[tid, k]; TPI[nt] = k }
  # A longest common subsequence of the hooks (0-based positions as in TypeScript): LEN[i, j].
  for (i = nt; i >= 0; i--) for (j = np; j >= 0; j--) {
    if (i == nt || j == np) LEN[i, j] = 0
    else if (TP[i + 1] == LP[j + 1]) LEN[i, j] = LEN[i + 1, j + 1] + 1
    else LEN[i, j] = (LEN[i + 1, j] > LEN[i, j + 1]) ? LEN[i + 1, j] : LEN[i, j + 1]
  }
  split("", MATCHED)
  i = 0; j = 0
  while (i < nt && j < np) {
    if (TP[i + 1] == LP[j + 1]) { MATCHED[TPI[i + 1]] = j; i++; j++ }
    else if (LEN[i + 1, j] >= LEN[i, j + 1]) i++
    else j++
  }
  # NEXT[k]: the live position of the next matched hook at or after target rule k (np when none).
  NEXT[LN[tid] + 1] = np
  for (k = LN[tid]; k >= 1; k--) NEXT[k] = (k in MATCHED) ? MATCHED[k] : NEXT[k + 1]
  for (s = 0; s <= np; s++) SN[s] = 0
  lo = 0
  for (k = 1; k <= LN[tid]; k++) {
    if (owner(L[tid, k]) == "preserved") { if (k in MATCHED) lo = MATCHED[k] + 1; continue }
    hi = NEXT[k]
    s = (marker >= 0 && lo <= marker && marker <= hi) ? marker : hi
    SL[s, ++SN[s]] = L[tid, k]
  }
  LN[out] = 0
  for (s = 0; s <= np; s++) {
    for (m = 1; m <= SN[s]; m++) L[out, ++LN[out]] = SL[s, m]
    if (s < np) L[out, ++LN[out]] = LP[s + 1]
  }
}
# The deletes and inserts that turn list a (live) into list b (wanted) in chain c, as restore lines
# appended to DL and IL; returns 1 when the chain changes.
function diff_chain(c, a, b,   k, s, na, nb, p, q, i, j, m, line, pos, anchor) {
  if (lsame(a, b)) return 0
  split("", KA); split("", KB)
  na = 0; SAN[0] = 0
  for (k = 1; k <= LN[a]; k++) { if (owner(L[a, k]) == "preserved") { KA[k] = 1; SAN[++na] = 0 } else SA[na, ++SAN[na]] = k }
  nb = 0; SBN[0] = 0
  for (k = 1; k <= LN[b]; k++) { if (owner(L[b, k]) == "preserved") { KB[k] = 1; SBN[++nb] = 0 } else SB[nb, ++SBN[nb]] = k }
  for (s = 0; s <= na; s++) {
    i = SAN[s]; j = (s <= nb) ? SBN[s] : 0
    p = 0
    while (p < i && p < j && L[a, SA[s, p + 1]] == L[b, SB[s, p + 1]]) p++
    q = 0
    while (q < i - p && q < j - p && L[a, SA[s, i - q]] == L[b, SB[s, j - q]]) q++
    for (m = 1; m <= p; m++) { KA[SA[s, m]] = 1; KB[SB[s, m]] = 1 }
    for (m = 0; m < q; m++) { KA[SA[s, i - m]] = 1; KB[SB[s, j - m]] = 1 }
  }
  for (k = LN[a]; k >= 1; k--) if (!(k in KA)) DL = DL "#@del " occ(a, k) " -A " c L[a, k] "\n-D " c " " k "\n"
  for (k = 1; k <= LN[b]; k++) {
    if (k in KB) continue
    line = "-A " c L[b, k]
    if (k > 1) { IL = IL "#@ins after " occ(b, k - 1) " -A " c L[b, k - 1] "\n-I " c " " k L[b, k] "\n"; continue }
    anchor = 0
    for (m = k + 1; m <= LN[b]; m++) if (m in KB) { anchor = m; break }
    if (anchor) IL = IL "#@ins before 1 -A " c L[b, anchor] "\n-I " c " " k L[b, k] "\n"
    else IL = IL line "\n"
  }
  return 1
}
BEGIN {
  np = split(preserve, pp, " "); keep = ""
  for (i = 1; i <= np; i++) {
    p = pp[i]; gsub(/\./, "\\.", p); gsub(/\*/, ".*", p); gsub(/\?/, ".", p)
    keep = keep (keep == "" ? "" : "|") "^(" p ")$"
  }
}
{ f = (FILENAME == livefile) ? 1 : 2; line = $0; sub(/\r$/, "", line) }
line == "" || substr(line, 1, 1) == "#" { next }
substr(line, 1, 1) == "*" {
  t = substr(line, 2); sub(/[ \t]+$/, "", t)
  if (!((f, t) in seen)) { seen[f, t] = 1; tab[f, ++nt[f]] = t }
  next
}
line == "COMMIT" { next }
substr(line, 1, 1) == ":" { split(substr(line, 2), a, " "); d[f, t, ++nd[f, t]] = a[1]; dec[f, t, a[1]] = 1; next }
{
  sub(/^\[[0-9]+:[0-9]+\] /, "", line)
  if (substr(line, 1, 3) != "-A ") next
  c = substr(line, 4); sub(/ .*/, "", c)
  r[f, t, c, ++nr[f, t, c]] = substr(line, 4 + length(c))
}
function hasparts(f, t,   i, nb, b, k) {
  for (i = 1; i <= nd[f, t]; i++) if (isfwgen(d[f, t, i])) return 1
  nb = split(builtins(t), b, " ")
  for (i = 1; i <= nb; i++) for (k = 1; k <= nr[f, t, b[i]]; k++) if (owner(r[f, t, b[i], k]) == "fwgen") return 1
  return 0
}
function samechain(t, c,   k) {
  if (nr[1, t, c] != nr[2, t, c]) return 0
  for (k = 1; k <= nr[1, t, c]; k++) if (r[1, t, c, k] != r[2, t, c, k]) return 0
  return 1
}
END {
  n = 0
  for (i = 1; i <= nt[2]; i++) { name[++n] = tab[2, i]; named[tab[2, i]] = 1 }
  for (i = 1; i <= nt[1]; i++) if (!(tab[1, i] in named) && hasparts(1, tab[1, i])) { name[++n] = tab[1, i]; named[tab[1, i]] = 1 }
  changed = 0; printf "" > changefile; printf "" > undofile
  for (ti = 1; ti <= n; ti++) {
    t = name[ti]; nref = 0; ndrop = 0; split("", isref); split("", isdrop)
    for (i = 1; i <= nd[2, t]; i++) {
      c = d[2, t, i]
      if (isfwgen(c) && !(dec[1, t, c] && samechain(t, c))) { ref[++nref] = c; isref[c] = 1 }
    }
    for (i = 1; i <= nd[1, t]; i++) {
      c = d[1, t, i]
      if (isfwgen(c) && !dec[2, t, c] && !(c in isdrop)) { drop[++ndrop] = c; isdrop[c] = 1 }
    }
    # The change of the built-in chains, and what each is after it (the result, "R" c).
    nb = split(builtins(t), b, " ")
    DL = ""; IL = ""; nbc = 0
    for (i = 1; i <= nb; i++) {
      c = b[i]
      lfrom(1, t, c, "L" c); lfrom(2, t, c, "W" c)
      target_change("L" c, "W" c, "T" c)
      if (diff_chain(c, "L" c, "T" c)) { nbc++; lcopy("T" c, "R" c) } else lcopy("L" c, "R" c)
    }
    if (nref + ndrop + nbc == 0) continue
    changed++
    out = "*" t "\n"
    for (i = 1; i <= nref; i++) out = out ":" ref[i] " - [0:0]\n"
    for (i = 1; i <= ndrop; i++) out = out ":" drop[i] " - [0:0]\n"
    out = out DL IL
    for (i = 1; i <= nref; i++) for (k = 1; k <= nr[2, t, ref[i]]; k++) out = out "-A " ref[i] r[2, t, ref[i], k] "\n"
    for (i = 1; i <= ndrop; i++) out = out "-X " drop[i] "\n"
    printf "%sCOMMIT\n", out > changefile
    # The undo: from the result back to the live rules. fwgen chains the change refilled or dropped
    # get their live rules back; those it created go. Built-in chains: mergeChain of the result
    # with the live rules, where either holds fwgen'"'"'s rules.
    nru = 0; ndu = 0
    for (i = 1; i <= nd[1, t]; i++) { c = d[1, t, i]; if (isfwgen(c) && ((c in isref) || (c in isdrop))) refu[++nru] = c }
    for (i = 1; i <= nref; i++) if (!dec[1, t, ref[i]]) dropu[++ndu] = ref[i]
    DL = ""; IL = ""; nbu = 0
    for (i = 1; i <= nb; i++) {
      c = b[i]
      if (!lown("R" c) && !lown("L" c)) lcopy("R" c, "U" c)
      else merge_chain("R" c, "L" c, "U" c)
      if (diff_chain(c, "R" c, "U" c)) nbu++
    }
    if (nru + ndu + nbu == 0) continue
    out = "*" t "\n"
    for (i = 1; i <= nru; i++) out = out ":" refu[i] " - [0:0]\n"
    for (i = 1; i <= ndu; i++) out = out ":" dropu[i] " - [0:0]\n"
    out = out DL IL
    for (i = 1; i <= nru; i++) for (k = 1; k <= nr[1, t, refu[i]]; k++) out = out "-A " refu[i] r[1, t, refu[i], k] "\n"
    for (i = 1; i <= ndu; i++) out = out "-X " dropu[i] "\n"
    printf "%sCOMMIT\n", out > undofile
  }
  close(changefile); close(undofile)
  print "tables=" changed
}' "$1" "$2"
}
