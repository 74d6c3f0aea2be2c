# shellcheck shell=sh
# fwgen remote library for ipsets (`sets: ipset`): sent after lib.sh to the steps that handle sets.
# A set NAME (always fwgen-*) is loaded under its staging name fwgen~... (same length), then swapped
# into place with `ipset swap`, so a live set is never half-filled; after the swap the staging name
# holds the old members, which is what an undo swaps back. The undo file lists, one a line,
# `new NAME` (created by this ship: destroyed by an undo) and `swap NAME` (swapped: swapped back).
fwgen_sets() { :; }

# The file beside the rules that holds the sets, in `ipset restore` format (loaded at boot before the rules).
sets_file() { printf '%s.ipset\n' "$RULES"; }

staging_name() { printf 'fwgen~%s\n' "${1#fwgen-}"; }

# The `ipset save` text of fwgen's live sets (fwgen-*), on stdout.
save_fwgen_sets() { ipset save 2>/dev/null | sed -n -e '/^create fwgen-/p' -e '/^add fwgen-/p'; }

# sets_load DIR: loads DIR/sets under staging names (the test: the kernel accepts every set), and
# creates the sets that do not exist yet under their own names, so the rules' --test can see them.
# Writes DIR/setnames and DIR/created; on failure leaves nothing behind and returns 1 (DIR/err says
# why), or 2 without the ipset command. Sets with no create line (sets: none) load nothing: the
# commit then drops every fwgen set.
sets_load() {
  sed -n 's/^create \(fwgen-[^ ]*\) .*/\1/p' "$1/sets" > "$1/setnames"
  : > "$1/created"
  [ -s "$1/setnames" ] || return 0
  command -v ipset >/dev/null 2>&1 || return 2
  while read -r n; do ipset destroy "$(staging_name "$n")" 2>/dev/null; done < "$1/setnames"
  sed -e 's/^create fwgen-/create fwgen~/' -e 's/^add fwgen-/add fwgen~/' "$1/sets" | ipset restore 2> "$1/err" ||
    { sets_drop "$1"; return 1; }
  while read -r n; do
    ipset list -n "$n" >/dev/null 2>&1 && continue
    ipset rename "$(staging_name "$n")" "$n" 2> "$1/err" || { sets_drop "$1"; return 1; }
    echo "$n" >> "$1/created"
  done < "$1/setnames"
}

# sets_drop DIR: undoes sets_load before anything referenced the sets.
sets_drop() {
  while read -r n; do ipset destroy "$(staging_name "$n")" 2>/dev/null; done < "$1/setnames"
  while read -r n; do ipset destroy "$n" 2>/dev/null; done < "$1/created"
}

# sets_swap DIR UNDO: puts the loaded sets in place; each step is recorded in UNDO as it happens.
sets_swap() {
  sed 's/^/new /' "$1/created" > "$2" || return 1
  while read -r n; do
    grep -qx "$n" "$1/created" && continue
    ipset swap "$(staging_name "$n")" "$n" 2> "$1/err" || return 1
    echo "swap $n" >> "$2"
  done < "$1/setnames"
}

# sets_undo UNDO: after the rules' undo (nothing matches a new set any more), restores the old sets.
sets_undo() {
  [ -f "$1" ] || return 0
  while read -r w n; do
    case $w in
      swap) ipset swap "$(staging_name "$n")" "$n" 2>/dev/null && ipset destroy "$(staging_name "$n")" 2>/dev/null ;;
      new) ipset destroy "$n" 2>/dev/null ;;
    esac
  done < "$1"
  rm -f "$1"
}

# sets_commit DIR UNDO: drops the old members (staging names) and fwgen's sets that no rule matches any more.
sets_commit() {
  while read -r w n; do [ "$w" = swap ] && ipset destroy "$(staging_name "$n")" 2>/dev/null; done < "$2"
  ipset list -n 2>/dev/null | grep '^fwgen-' | while read -r n; do
    grep -qx "$n" "$1/setnames" || ipset destroy "$n" 2>/dev/null
  done
  rm -f "$2"
  return 0
}
