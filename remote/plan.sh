# shellcheck shell=sh
# fwgen remote library for the pull agent: the change from the live rules to a release, computed on
# the host, where ship computes it on the controller (src/model/transaction.ts: planChange, changeScript,
# undoScript). The same rules, in POSIX awk: per table of the wanted file (and each live table holding
# fwgen's parts), fwgen's chains whose rules differ are refilled, those no longer wanted are dropped;
# a built-in chain ends with exactly the wanted rules after every preserved tool's hook, and in one
# fwgen has no rules for only fwgen's own rules go. test/agent-plan.test.ts holds both to the same bytes.
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
  n = words(rest); target = ""; comment = ""; hasc = 0
  for (i = 1; i < n; i++) {
    if (target == "" && (W[i] == "-j" || W[i] == "--jump" || W[i] == "-g" || W[i] == "--goto")) target = W[i + 1]
    if (!hasc && W[i] == "--comment") { comment = W[i + 1]; hasc = 1 }
  }
  if (target != "" && isfwgen(target)) return "fwgen"
  if (target != "" && keep != "" && target ~ keep) return "preserved"
  if (hasc && comment ~ /^fwgen([^A-Za-z0-9_]|$)/) return "fwgen"
  return "leftover"
}
function samechain(t, c,   k) {
  if (nr[1, t, c] != nr[2, t, c]) return 0
  for (k = 1; k <= nr[1, t, c]; k++) if (r[1, t, c, k] != r[2, t, c, k]) return 0
  return 1
}
function hasparts(t,   i, nb, b, k, c) {
  for (i = 1; i <= nd[1, t]; i++) if (isfwgen(d[1, t, i])) return 1
  nb = split(builtins(t), b, " ")
  for (i = 1; i <= nb; i++) for (k = 1; k <= nr[1, t, b[i]]; k++) if (owner(r[1, t, b[i], k]) == "fwgen") return 1
  return 0
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
END {
  n = 0
  for (i = 1; i <= nt[2]; i++) { name[++n] = tab[2, i]; named[tab[2, i]] = 1 }
  for (i = 1; i <= nt[1]; i++) if (!(tab[1, i] in named) && hasparts(tab[1, i])) { name[++n] = tab[1, i]; named[tab[1, i]] = 1 }
  changed = 0; printf "" > changefile; printf "" > undofile
  for (ti = 1; ti <= n; ti++) {
    t = name[ti]; nref = 0; ndrop = 0; nbc = 0
    for (i = 1; i <= nd[2, t]; i++) {
      c = d[2, t, i]
      if (isfwgen(c) && !(dec[1, t, c] && samechain(t, c))) ref[++nref] = c
    }
    for (i = 1; i <= nd[1, t]; i++) {
      c = d[1, t, i]
      if (isfwgen(c) && !dec[2, t, c] && !(c in dropped)) { drop[++ndrop] = c; dropped[c] = 1 }
    }
    split("", dropped)
    nb = split(builtins(t), b, " ")
    for (i = 1; i <= nb; i++) {
      c = b[i]; nl = nr[1, t, c] + 0; nw = nr[2, t, c] + 0
      for (k = 1; k <= nl; k++) own[k] = owner(r[1, t, c, k])
      ndel = 0; app = 0
      if (nw == 0) {
        for (k = 1; k <= nl; k++) if (own[k] == "fwgen") del[i, ++ndel] = k
      } else {
        first = 0
        for (k = 1; k <= nl; k++) if (own[k] != "preserved") { first = k; break }
        clean = 1; same = 1
        if (first > 0) {
          for (k = first; k <= nl; k++) if (own[k] == "preserved") clean = 0
          if (nl - first + 1 != nw) same = 0
          else for (k = first; k <= nl; k++) if (r[1, t, c, k] != r[2, t, c, k - first + 1]) same = 0
        } else same = 0
        if (!(clean && same)) {
          for (k = 1; k <= nl; k++) if (own[k] != "preserved") del[i, ++ndel] = k
          app = 1
        }
      }
      if (ndel > 0 || app) { bc[++nbc] = i; ndels[i] = ndel; apps[i] = app }
    }
    if (nref + ndrop + nbc == 0) continue
    changed++
    print "*" t > changefile
    print "*" t > undofile
    for (i = 1; i <= nref; i++) print ":" ref[i] " - [0:0]" > changefile
    for (i = 1; i <= ndrop; i++) print ":" drop[i] " - [0:0]" > changefile
    for (j = 1; j <= nbc; j++) { i = bc[j]; for (k = 1; k <= ndels[i]; k++) print "-D " b[i] r[1, t, b[i], del[i, k]] > changefile }
    for (j = 1; j <= nbc; j++) { i = bc[j]; if (apps[i]) for (k = 1; k <= nr[2, t, b[i]]; k++) print "-A " b[i] r[2, t, b[i], k] > changefile }
    for (i = 1; i <= nref; i++) for (k = 1; k <= nr[2, t, ref[i]]; k++) print "-A " ref[i] r[2, t, ref[i], k] > changefile
    for (i = 1; i <= ndrop; i++) print "-X " drop[i] > changefile
    print "COMMIT" > changefile
    for (i = 1; i <= nref; i++) print ":" ref[i] " - [0:0]" > undofile
    for (i = 1; i <= ndrop; i++) print ":" drop[i] " - [0:0]" > undofile
    for (j = 1; j <= nbc; j++) { i = bc[j]; if (apps[i]) for (k = 1; k <= nr[2, t, b[i]]; k++) print "-D " b[i] r[2, t, b[i], k] > undofile }
    for (j = 1; j <= nbc; j++) { i = bc[j]; for (k = 1; k <= ndels[i]; k++) print "-I " b[i] " " del[i, k] r[1, t, b[i], del[i, k]] > undofile }
    for (i = 1; i <= nref; i++) if (dec[1, t, ref[i]]) for (k = 1; k <= nr[1, t, ref[i]]; k++) print "-A " ref[i] r[1, t, ref[i], k] > undofile
    for (i = 1; i <= ndrop; i++) for (k = 1; k <= nr[1, t, drop[i]]; k++) print "-A " drop[i] r[1, t, drop[i], k] > undofile
    for (i = 1; i <= nref; i++) if (!dec[1, t, ref[i]]) print "-X " ref[i] > undofile
    print "COMMIT" > undofile
  }
  close(changefile); close(undofile)
  print "tables=" changed
}' "$1" "$2"
}
