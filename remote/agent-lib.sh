# shellcheck shell=sh
# fwgen remote library of the pull agent (remote/agent.sh): what it reads and writes of a release, as
# pure functions of files, tested on their own (test/agent-lib.test.ts).
fwgen_agent_lib() { :; }

# parse_manifest FILE OUT: every line checked against the patterns of src/publish/manifest.ts
# (parseManifest); writes `role serial created expires commit inventory`, `preserve P...`, then one
# `file NAME SHA256 SIZE` line per file. Fails on anything else.
parse_manifest() {
  awk '
function num(x) { return x ~ /^[0-9]+$/ && length(x) <= 12 }
# A number without its leading zeros, as text (Number() in TypeScript).
function n0(x) { sub(/^0+/, "", x); return x == "" ? "0" : x }
function one(k, n) { return (k in cnt) && cnt[k] == n }
{
  n = split($0, w, / /)
  if ($0 == "") next
  if (w[1] == "file") {
    if (!(w[2] == "iptables.up.rules" || w[2] == "ip6tables.up.rules" || w[2] == "ipset.rules") ||
        !(length(w[3]) == 64 && w[3] ~ /^[0-9a-f]+$/)) bad = 1
    else if (!num(w[4])) bad = 1
    else if (w[2] in seen) bad = 1
    else { seen[w[2]] = 1; files = files "file " w[2] " " w[3] " " n0(w[4]) "\n" }
    next
  }
  cnt[w[1]] = n - 1; val[w[1]] = w[2]; line[w[1]] = $0
}
END {
  if (bad || val["fwgen-release"] != "1" || cnt["fwgen-release"] < 1) exit 1
  if (!one("role", 1) || val["role"] !~ /^[A-Za-z0-9][A-Za-z0-9_.-]*$/ || length(val["role"]) > 63) exit 1
  if (!(one("serial", 1) && num(val["serial"]) && one("created", 2) && num(val["created"]) &&
        one("expires", 2) && num(val["expires"]))) exit 1
  if (!one("commit", 1) || val["commit"] !~ /^([0-9a-f]+(\+dirty)?|-)$/) exit 1
  c = val["commit"]; sub(/\+dirty$/, "", c)
  if (c != "-" && (length(c) < 7 || length(c) > 64)) exit 1
  if (!one("inventory", 1) || val["inventory"] !~ /^[A-Za-z0-9._\/@+~-]+$/ || length(val["inventory"]) > 200) exit 1
  p = ""
  if ("preserve" in cnt) {
    np = split(line["preserve"], pw, / /)
    for (i = 2; i <= np; i++) {
      if (!(pw[i] ~ /^[A-Za-z0-9_.*?-]+$/ && length(pw[i]) <= 28)) exit 1
      p = p " " pw[i]
    }
  }
  printf "%s %s %s %s %s %s\npreserve%s\n%s", val["role"], n0(val["serial"]), n0(val["created"]), n0(val["expires"]), val["commit"], val["inventory"], p, files
}' "$1" > "$2"
}

# merge_pinned RELEASE PINNED OUT: the release's rules with the pinned part of the config (a filter
# table fragment: chains it declares, rules of built-in chains first in their chain, of its own chains
# after), printed as iptables-save prints a table: built-in chains, then the others by name, each
# chain's rules together, in the order of its declaration.
merge_pinned() {
  awk -v pinned="$2" '
BEGIN {
  while ((getline l < pinned) > 0) {
    if (substr(l, 1, 1) == ":") { split(substr(l, 2), a, " "); pdecl[++npd] = a[1]; pdl[a[1]] = l }
    else if (substr(l, 1, 3) == "-A ") { c = substr(l, 4); sub(/ .*/, "", c); prule[c, ++npr[c]] = l }
  }
  close(pinned)
}
function builtin(c) { return c ~ /^(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING)$/ }
function flush(   i, j, k, c, t, n, names) {
  for (i = 1; i <= npd; i++) if (!(pdecl[i] in dl)) { order[++nd] = pdecl[i]; dl[pdecl[i]] = pdl[pdecl[i]] }
  n = 0
  for (i = 1; i <= nd; i++) if (builtin(order[i])) names[++n] = order[i]
  nb = n
  for (i = 1; i <= nd; i++) if (!builtin(order[i])) {
    c = order[i]
    for (j = n; j > nb && names[j] > c; j--) names[j + 1] = names[j]
    names[j + 1] = c; n++
  }
  for (i = 1; i <= n; i++) print dl[names[i]]
  for (i = 1; i <= n; i++) {
    c = names[i]
    if (builtin(c)) for (k = 1; k <= npr[c]; k++) print prule[c, k]
    for (k = 1; k <= nr[c]; k++) print r[c, k]
    if (!builtin(c)) for (k = 1; k <= npr[c]; k++) print prule[c, k]
  }
}
/^\*/ { intab = ($0 == "*filter"); print; next }
intab && /^:/ { split(substr($0, 2), a, " "); if (!(a[1] in dl)) order[++nd] = a[1]; dl[a[1]] = $0; next }
intab && /^-A / { c = substr($0, 4); sub(/ .*/, "", c); r[c, ++nr[c]] = $0; next }
intab && $0 == "COMMIT" { flush(); intab = 0; print; next }
{ print }
' "$1" > "$3"
}

# sets_canon FILE: fwgen sets as comparable lines (the create line without the options the kernel adds,
# members without /32 and /128), sorted.
sets_canon() {
  awk '$1 == "create" && $2 ~ /^fwgen-/ { print $1, $2, $3, $4, $5 }
    $1 == "add" && $2 ~ /^fwgen-/ { m = $3; sub(/\/32$/, "", m); sub(/\/128$/, "", m); print $1, $2, m }' "$1" | sort
}
