#!/bin/sh
# fwgen pull agent: one poll. Fetches this host's role manifest and its signature from the origins
# (curl or GNU wget, with timeouts, into a fresh folder: the cache is never written in place), verifies
# the signature (ssh-keygen -Y verify, namespace fwgen, against the installed allowed_signers), checks
# role, expiry and serial, fetches the blobs by hash (size and SHA-256 checked), merges the pinned
# rules of its config (management SSH, monitoring: always applied), and applies with ship's own
# transaction (apply.sh then commit.sh: lock, staged parts checked by SHA-256, --test, backup,
# --noflush, sets, dead-man switch). With nothing new (or no usable answer) it checks fwgen's live
# rules against the cached last-good release and re-applies it when they drifted. Any failure keeps the
# live rules. Records the outcome in its state file (and a node_exporter textfile), then prints
# `detail=...` and `status=polled serial=N poll=T success=T outcome=...`.
# Usage: agent.sh poll RULES [now|delay]   (delay: first sleep this host's fixed share of the period)
# Installed with its libraries and steps (lib.sh sets.sh plan.sh agent-lib.sh apply.sh commit.sh deadman.sh)
# in RULES.fwgen-agent/.
# (${0%/*}, not $(dirname "$0"): four forks fewer on every poll; the agent always runs by its path.)
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "${0%/*}/lib.sh"
# shellcheck source=sets.sh
command -v fwgen_sets >/dev/null 2>&1 || . "${0%/*}/sets.sh"
# shellcheck source=plan.sh
command -v fwgen_plan >/dev/null 2>&1 || . "${0%/*}/plan.sh"
# shellcheck source=agent-lib.sh
command -v fwgen_agent_lib >/dev/null 2>&1 || . "${0%/*}/agent-lib.sh"
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
if [ "${1:-}" != poll ] || [ -z "${2:-}" ]; then fail 2 "usage: agent.sh poll RULES [now|delay]"; fi
A="$2.fwgen-agent"
CFG="$A/config" C="$A/cache" F="$A/fetch" ST="$A/state"
[ -f "$CFG" ] || fail 1 "no agent config $CFG (install it with fwgen agent install)"
HOST='' ROLE='' RULES6='' ORIGINS='' EVERY=60 TIMEOUT=30 KEEP=10 TEXTFILE='' VERSION=- WAVE=''
while read -r k v; do
  case $k in
    host) HOST=$v ;; role) ROLE=$v ;; rules6) RULES6=$v ;; origin) ORIGINS="$ORIGINS $v" ;;
    every) EVERY=$v ;; timeout) TIMEOUT=$v ;; keep) KEEP=$v ;; textfile) TEXTFILE=$v ;; version) VERSION=$v ;;
    wave) WAVE=$v ;;
  esac
done < "$CFG"
if [ -z "$ROLE" ] || [ -z "$ORIGINS" ] || [ -z "$RULES6" ]; then fail 1 "$CFG lacks role, origin or rules6"; fi
case $WAVE in *[!0-9]*) fail 1 "$CFG: wave $WAVE is not a number" ;; esac
# A host in a wave of a staged release reads its wave's copy of the manifest (publish --advance opens them).
MANIFEST="roles/$ROLE/manifest"
[ -z "$WAVE" ] || MANIFEST="roles/$ROLE/waves/$WAVE/manifest"
NOW=$(date +%s)
set_paths "$2" "$RULES6" "agent-$NOW-$$"
refuse_unsafe_folder
trap '' HUP PIPE

# One poll at a time: a timer's poll and `fwgen agent poll` never share the fetch folder.
# (The pid file is made with noclobber, an exclusive create by the shell itself: no fork.)
set -C
if ! { echo "$$" > "$A/polling"; } 2> /dev/null; then
  pid=; read -r pid 2>/dev/null < "$A/polling"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "status=busy pid=$pid"; exit 0; fi
  rm -rf "$A/polling"
  { echo "$$" > "$A/polling"; } 2> /dev/null || fail 1 "cannot create $A/polling"
fi
set +C
trap 'rm -rf "$A/polling" "$F"' EXIT
trap 'exit 1' INT TERM

# A fixed share of the period per host (cron has no randomized delay): the fleet spreads its requests.
if [ "${3:-}" = delay ]; then
  sum=$(printf '%s' "$HOST" | cksum) span=$EVERY
  [ "$span" -le 60 ] || span=60
  sleep $((${sum%% *} % span))
fi

# An interrupted cache swap (see keep_release) is finished first.
if [ ! -d "$C" ] && [ -d "$C.old" ]; then mv "$C.old" "$C"; fi
# (Each fork counts: a poll with nothing new should cost the host a few tens of ms of CPU.)
if [ -e "$C.new" ] || [ -e "$C.old" ] || [ -e "$F" ]; then rm -rf "$C.new" "$C.old" "$F"; fi
mkdir -p "$F/blobs" || fail 1 "cannot create $F"

S_SERIAL=0 S_SUCCESS=0
if [ -f "$ST" ]; then
  while IFS='=' read -r k v; do
    case $k in serial) S_SERIAL=$v ;; success) S_SUCCESS=$v ;; esac
  done < "$ST"
fi
case $S_SERIAL in '' | *[!0-9]*) S_SERIAL=0 ;; esac
case $S_SUCCESS in '' | *[!0-9]*) S_SUCCESS=0 ;; esac

FETCH=
if command -v curl >/dev/null 2>&1; then FETCH=curl
elif command -v wget >/dev/null 2>&1; then FETCH=wget; fi

# http_get URL OUT [ETAG]: sets CODE to the HTTP status (000: no answer in time). Headers in $F/headers.
http_get() {
  : > "$F/headers"
  if [ "$FETCH" = curl ]; then
    if [ -n "${3:-}" ]; then
      CODE=$(curl -sS -o "$2" -D "$F/headers" -w '%{http_code}' --connect-timeout 5 --max-time 30 \
        -H "If-None-Match: $3" -- "$1" 2>> "$F/http.err") || CODE=000
    else
      CODE=$(curl -sS -o "$2" -D "$F/headers" -w '%{http_code}' --connect-timeout 5 --max-time 30 \
        -- "$1" 2>> "$F/http.err") || CODE=000
    fi
  elif [ "$FETCH" = wget ]; then
    if [ -n "${3:-}" ]; then
      wget -q -S -T 10 -t 1 -O "$2" --header "If-None-Match: $3" -- "$1" 2> "$F/headers"
    else
      wget -q -S -T 10 -t 1 -O "$2" -- "$1" 2> "$F/headers"
    fi
    CODE=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$F/headers" | tail -n 1)
  else
    CODE=000
    echo "neither curl nor wget found" >> "$F/http.err"
  fi
  case $CODE in [0-9][0-9][0-9]) ;; *) CODE=000 ;; esac
}

# The ETag of the last answer, when it holds only characters safe in a header.
etag_of() {
  ETAG=$(sed -n 's/^ *[Ee][Tt][Aa][Gg]: *//p' "$F/headers" | tr -d '\r' | head -n 1)
  case $ETAG in *[!A-Za-z0-9\"/:._=+-]*) ETAG= ;; esac
  [ "${#ETAG}" -le 200 ] || ETAG=
}

# verify FILE: the signature FILE.sig is from a trusted key, in namespace fwgen.
verify() {
  ssh-keygen -Y verify -f "$A/allowed_signers" -I fwgen-release -n fwgen -s "$1.sig" < "$1" > /dev/null 2> "$F/verify.err"
}

# read_manifest DIR: M_* from DIR/parsed.
read_manifest() {
  { read -r M_ROLE M_SERIAL _ M_EXPIRES M_COMMIT M_INV && read -r _ M_PRESERVE; } < "$1/parsed"
}

# fetch_release: the manifest of this role from the first origin that answers. Sets GOT=new (a verified
# manifest in $F, signature and parsed form beside it), GOT=same (the origin still serves the cached one)
# or GOT= with WHY (unreachable, http-NNN, bad-signature, bad-manifest).
fetch_release() {
  GOT='' WHY='' ORIGIN='' ETAG_C=''
  if [ -f "$C/manifest" ] && [ -f "$C/etag" ]; then read -r ETAG_C < "$C/etag" || ETAG_C=; fi
  for o in $ORIGINS; do
    # The signature goes live before its manifest: a pair fetched in between fails; fetched again, it holds.
    for _ in 1 2; do
      http_get "$o$MANIFEST" "$F/manifest" "$ETAG_C"
      case $CODE in
        304) GOT=same ORIGIN=$o; return 0 ;;
        200) ;;
        000) [ -n "$WHY" ] || WHY=unreachable; continue 2 ;;
        *) WHY=http-$CODE; continue 2 ;;
      esac
      etag_of
      http_get "$o$MANIFEST.sig" "$F/manifest.sig"
      case $CODE in
        200) ;;
        000) [ -n "$WHY" ] || WHY=unreachable; continue 2 ;;
        *) WHY=http-$CODE; continue 2 ;;
      esac
      if verify "$F/manifest"; then
        parse_manifest "$F/manifest" "$F/parsed" || { WHY=bad-manifest; continue 2; }
        printf '%s\n' "$ETAG" > "$F/etag"
        GOT=new ORIGIN=$o
        return 0
      fi
      WHY=bad-signature ETAG_C=
    done
  done
  return 0
}

# fetch_blobs: each file of the manifest in $F, by hash: from the cache, else from the origins;
# size and SHA-256 checked. Sets WHY (hash-mismatch, http-NNN, unreachable) on failure.
fetch_blobs() {
  mkdir -p "$F/blobs"
  while read -r kind name sha size; do
    [ "$kind" = file ] || continue
    b="$F/blobs/$sha"
    if [ -f "$C/blobs/$sha" ]; then ln "$C/blobs/$sha" "$b" 2> /dev/null || cp "$C/blobs/$sha" "$b"; fi
    if [ ! -f "$b" ]; then
      for o in $ORIGIN $ORIGINS; do
        http_get "${o}blobs/$sha" "$b.part"
        case $CODE in
          200) mv "$b.part" "$b"; break ;;
          000) WHY=unreachable ;;
          *) WHY=http-$CODE ;;
        esac
      done
      [ -f "$b" ] || return 1
      WHY=
    fi
    got=$(wc -c < "$b" | tr -d ' ')
    if [ "$got" != "$size" ] || [ "$(sha256sum < "$b" | cut -d' ' -f1)" != "$sha" ]; then
      WHY=hash-mismatch
      printf '%s: %s bytes, expected %s with SHA-256 %s\n' "$name" "$got" "$size" "$sha" > "$F/blob.err"
      return 1
    fi
  done < "$F/parsed"
}

NO_SETS='# fwgen: no sets (sets: none); fwgen-* sets and the sets file are dropped'

# release_files DIR: the wanted files of the release in DIR (its parsed manifest and blobs): W4, W6
# (the rules with the pinned part merged in, kept in the cache beside the release once applied) and WS
# (the sets, or none). Sets HAS6.
release_files() {
  HAS6=0 W4='' W6='' WS=''
  while read -r kind name sha _; do
    [ "$kind" = file ] || continue
    case $name in
      iptables.up.rules) W4=$1/want4; [ -f "$W4" ] || { W4=$F/want4; merge_pinned "$1/blobs/$sha" "$A/pinned4" "$W4"; } || return 1 ;;
      ip6tables.up.rules) HAS6=1 W6=$1/want6; [ -f "$W6" ] || { W6=$F/want6; merge_pinned "$1/blobs/$sha" "$A/pinned6" "$W6"; } || return 1 ;;
      ipset.rules) WS=$1/blobs/$sha ;;
    esac
  done < "$1/parsed"
  [ -n "$W4" ] && [ -f "$W4" ]
}

# live FAMILY-SAVE OUT: fwgen's part of the live filter table is read from OUT.
live() { "$1" -t filter > "$2" 2> "$F/err" || { WHY=error DETAIL="$1 failed: $(head -c 300 "$F/err")"; return 1; }; }

# same_sets: the sets (or no sets) wanted are those on the host: sets file and live members.
same_sets() {
  [ -n "$WS" ] || return 0
  cmp -s "$WS" "$RULES.ipset" || return 1
  command -v ipset > /dev/null 2>&1 || return 0
  save_fwgen_sets > "$F/sets.live"
  sets_canon "$F/sets.live" > "$F/sets.a"
  sets_canon "$WS" > "$F/sets.b"
  cmp -s "$F/sets.a" "$F/sets.b"
}

# transact DIR SERIAL: applies the release in DIR as ship does, unless fwgen's live rules, the rules
# files and the sets already are that release. Sets DID (unchanged, applied, kept), and for kept WHY
# (test-failed, locked, error) and DETAIL.
transact() {
  serial=$2 DID=kept
  release_files "$1" || { WHY=error DETAIL="the release has no readable IPv4 rules file"; return 0; }
  for t in iptables-save iptables-restore sha256sum; do
    command -v "$t" > /dev/null 2>&1 || { WHY=error DETAIL="$t not found on the host"; return 0; }
  done
  live iptables-save "$F/live4" || return 0
  t4=$(plan_change "$F/live4" "$W4" "$M_PRESERVE" "$F/change4" "$F/undo4") || { WHY=error DETAIL="plan failed"; return 0; }
  t6=tables=0
  if [ "$HAS6" = 1 ]; then
    live ip6tables-save "$F/live6" || return 0
    t6=$(plan_change "$F/live6" "$W6" "$M_PRESERVE" "$F/change6" "$F/undo6") || { WHY=error DETAIL="plan failed"; return 0; }
  fi
  # Not in ipset mode: the sets file left from it (and fwgen's sets) goes, as ship drops them. (Unlike
  # ship, fwgen sets live without a sets file are not looked for: an `ipset save` on every poll.)
  if [ -z "$WS" ] && [ -f "$RULES.ipset" ]; then WS=$F/nosets; printf '%s\n' "$NO_SETS" > "$WS"; fi
  if [ "$t4" = tables=0 ] && [ "$t6" = tables=0 ] && cmp -s "$W4" "$RULES" &&
    { [ "$HAS6" = 0 ] || cmp -s "$W6" "$RULES6"; } && same_sets; then
    DID=unchanged
    return 0
  fi
  FP4=$(fingerprint < "$F/live4") FP6=-
  [ "$HAS6" = 0 ] || FP6=$(fingerprint < "$F/live6")
  set -- file4 "$W4" change4 "$F/change4" undo4 "$F/undo4"
  [ "$HAS6" = 0 ] || set -- "$@" file6 "$W6" change6 "$F/change6" undo6 "$F/undo6"
  [ -z "$WS" ] || set -- "$@" sets "$WS"
  set -- "$@" deadman "$A/deadman.sh"
  parts='' names=''
  while [ "$#" -ge 2 ]; do
    names="$names $1 $(wc -c < "$2" | tr -d ' ') $(sha256sum < "$2" | cut -d' ' -f1)"
    parts="$parts $2"
    shift 2
  done
  owner="fwgen agent on ${HOST:-this host}: role $M_ROLE, release serial $serial"
  # shellcheck disable=SC2086 # words without spaces: part names, sizes, hashes and paths of the agent's folder
  cat $parts | /bin/sh "$A/apply.sh" "$RULES" "$RULES6" "$ID" "$HAS6" "$owner" "$TIMEOUT" "$KEEP" 0 "$FP4" "$FP6" $names \
    > "$F/apply.out" 2> "$F/apply.err"
  rc=$?
  DETAIL=$(tail -n 1 "$F/apply.err" | sed 's/^fwgen: //' | head -c 400)
  case $rc in
    0) ;;
    "$E_LOCKED" | "$E_CHANGED") WHY=locked; return 0 ;;
    "$E_TEST" | "$E_APPLY") WHY=test-failed; return 0 ;;
    *) WHY=error DETAIL="apply step exited with $rc: $DETAIL"; return 0 ;;
  esac
  bts=$(sed -n 's/^status=applied backup=//p' "$F/apply.out")
  json=$(printf '{"fwgen":"%s","run":"%s","role":"%s","host":"%s","inventory":"%s","commit":"%s","shippedAt":"%s","shippedBy":"fwgen agent (release serial %s)","backup":"%s","restoredFrom":null,"serial":%s}' \
    "$VERSION" "$ID" "$M_ROLE" "$HOST" "$M_INV" "$M_COMMIT" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$serial" "$bts" "$serial")
  /bin/sh "$A/commit.sh" "$RULES" "$RULES6" "$ID" "$HAS6" "$bts" "$json" > "$F/commit.out" 2> "$F/commit.err"
  rc=$?
  if [ "$rc" != 0 ]; then
    WHY=error DETAIL="commit step exited with $rc: $(tail -n 1 "$F/commit.err" | sed 's/^fwgen: //' | head -c 300)"
    return 0
  fi
  DID=applied DETAIL="previous rules backed up as $bts"
}

# keep_release: the fetched release becomes the cache, by one rename of a folder built beside it.
keep_release() {
  mkdir -p "$C.new/blobs" || return 1
  for f in manifest manifest.sig parsed etag; do cp "$F/$f" "$C.new/$f" || return 1; done
  # The rules as applied (pinned part merged in): a poll with nothing new compares with them directly.
  for f in want4 want6; do if [ -f "$F/$f" ]; then cp "$F/$f" "$C.new/$f" || return 1; fi; done
  for b in "$F"/blobs/*; do [ -f "$b" ] && { ln "$b" "$C.new/blobs/" 2> /dev/null || cp "$b" "$C.new/blobs/"; }; done
  { [ ! -d "$C" ] || mv "$C" "$C.old"; } && mv "$C.new" "$C" && rm -rf "$C.old"
}

# record OUTCOME SERIAL DETAIL: the state file, the node_exporter textfile, and the lines for fwgen.
record() {
  now=$NOW
  case $1 in applied* | unchanged | drift-repaired) S_SUCCESS=$now ;; esac
  # One line (its first), at most 400 characters; only a long one costs a fork.
  detail=${3%%"$NL"*}
  [ "${#detail}" -le 400 ] || detail=$(printf '%.400s' "$detail")
  { printf 'serial=%s\noutcome=%s\ndetail=%s\npoll=%s\nsuccess=%s\nrelease=%s\nwave=%s\n' "$2" "$1" "$detail" "$now" \
    "$S_SUCCESS" "${M_SERIAL:-0}" "${WAVE:-0}" > "$ST.tmp" &&
    mv -f "$ST.tmp" "$ST"; } 2> /dev/null || detail="$detail (cannot write $ST)"
  if [ -n "$TEXTFILE" ] && [ -d "$TEXTFILE" ]; then
    label=${1%% [0-9]*}
    { printf '# HELP fwgen_agent_serial Serial of the release the fwgen agent applied.\n# TYPE fwgen_agent_serial gauge\n'
      printf 'fwgen_agent_serial %s\n' "$2"
      printf '# HELP fwgen_agent_last_success_timestamp_seconds Last poll that left the host on its release.\n'
      printf '# TYPE fwgen_agent_last_success_timestamp_seconds gauge\n'
      printf 'fwgen_agent_last_success_timestamp_seconds %s\n' "$S_SUCCESS"
      printf '# HELP fwgen_agent_outcome Outcome of the last poll.\n# TYPE fwgen_agent_outcome gauge\n'
      printf 'fwgen_agent_outcome{outcome="%s"} 1\n' "$label"
    } > "$TEXTFILE/fwgen_agent.prom.$$" 2> /dev/null && mv -f "$TEXTFILE/fwgen_agent.prom.$$" "$TEXTFILE/fwgen_agent.prom"
  fi
  printf 'detail=%s\n' "$detail"
  echo "status=polled serial=$2 poll=$now success=$S_SUCCESS outcome=$1"
}

now=$NOW
NL='
'
fetch_release
NEW=0
if [ "$GOT" = new ]; then
  read_manifest "$F"
  if [ "$M_ROLE" != "$ROLE" ]; then WHY=wrong-role
  elif [ "$M_EXPIRES" -le "$now" ]; then WHY=expired
  elif [ "$M_SERIAL" -lt "$S_SERIAL" ]; then WHY=replay
  elif [ "$M_SERIAL" -gt "$S_SERIAL" ] || [ ! -f "$C/parsed" ]; then NEW=1
  elif cmp -s "$F/manifest" "$C/manifest"; then
    # The cached manifest, served without an ETag (or with another one): keep the new ETag.
    { cp "$F/etag" "$C/etag.new" && mv -f "$C/etag.new" "$C/etag"; } 2> /dev/null
  elif [ "$(sed 1d "$F/parsed")" = "$(sed 1d "$C/parsed")" ]; then
    # The same release signed again (a later expiry) replaces the cached one.
    for b in "$C"/blobs/*; do [ -f "$b" ] && ln "$b" "$F/blobs/" 2> /dev/null; done
    keep_release || :
  fi
elif [ "$GOT" = same ] && [ -f "$C/parsed" ]; then
  read_manifest "$C"
  [ "$M_EXPIRES" -gt "$now" ] || WHY=expired
fi
DETAIL=
case $WHY in
  http-*) DETAIL="the origin answered HTTP ${WHY#http-}" ;;
  unreachable) DETAIL="no origin answered: $(tail -n 1 "$F/http.err" 2> /dev/null | head -c 200)" ;;
  bad-signature) DETAIL="the signature does not verify against the trusted keys: $(head -c 200 "$F/verify.err")" ;;
  bad-manifest) DETAIL="a signed manifest this agent cannot read (another format?)" ;;
  wrong-role) DETAIL="the manifest is of role $M_ROLE, this host is $ROLE" ;;
  expired) DETAIL="the release expired at $M_EXPIRES (now $now); is publish running?" ;;
  replay) DETAIL="serial $M_SERIAL is older than the applied $S_SERIAL" ;;
esac

if [ "$NEW" = 1 ]; then
  if ! fetch_blobs; then
    [ "$WHY" = hash-mismatch ] && DETAIL="a blob does not match the manifest: $(cat "$F/blob.err")"
    [ "$WHY" = hash-mismatch ] || DETAIL="cannot fetch a blob of serial $M_SERIAL"
    NEW=0
  else
    transact "$F" "$M_SERIAL"
    case $DID in
      applied | unchanged)
        keep_release || DETAIL="$DETAIL; the cache could not be updated"
        record "applied $M_SERIAL" "$M_SERIAL" "$DETAIL"
        exit 0 ;;
      *) record "kept: $WHY" "$S_SERIAL" "$DETAIL"; exit 0 ;;
    esac
  fi
fi

# Nothing new to apply: fwgen's live rules against the cached last-good release.
if [ "$S_SERIAL" -gt 0 ] && [ -f "$C/parsed" ]; then
  why=$WHY detail=$DETAIL
  WHY=
  read_manifest "$C"
  transact "$C" "$S_SERIAL"
  case $DID in
    applied) record drift-repaired "$S_SERIAL" "fwgen's live rules differed from serial $S_SERIAL: re-applied from the cache${why:+ (origin: $why)}" ;;
    unchanged)
      if [ -n "$why" ]; then record "kept: $why" "$S_SERIAL" "$detail"; else record unchanged "$S_SERIAL" "serial $S_SERIAL"; fi ;;
    *) record "kept: $WHY" "$S_SERIAL" "$DETAIL${why:+ (origin: $why)}" ;;
  esac
  exit 0
fi
record "kept: ${WHY:-unreachable}" "$S_SERIAL" "${DETAIL:-no release applied yet}"
