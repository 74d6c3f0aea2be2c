#!/bin/sh
# fwgen remote step "agent-install": installs the pull agent beside the rules, in RULES.fwgen-agent/
# (agent.sh with the steps it runs, its config, the trusted keys, the pinned rules), and its schedule: a
# systemd timer (fwgen-agent.timer: every EVERY seconds at a fixed random offset per host) where systemd
# runs, else /etc/cron.d/fwgen-agent (every minute, or every EVERY/60 minutes; the agent then sleeps its
# host's fixed share of the minute). Each file is replaced by a rename, and only when it differs; the
# agent's cache and state stay. With ACTION `uninstall`, removes the schedule and the folder (the rules
# in place stay). Prints `changed=N schedule=systemd|cron`, then
# `status=installed|updated|unchanged|uninstalled|absent`.
# Arguments: RULES ACTION EVERY, then NAME SIZE SHA256 for each file of stdin in order (install).
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
set_paths "$1" "$1"
refuse_unsafe_folder
ACTION=$2 EVERY=$3
shift 3
A="$RULES.fwgen-agent"
UNIT=/etc/systemd/system/fwgen-agent.service TIMER=/etc/systemd/system/fwgen-agent.timer
WANTS=/etc/systemd/system/timers.target.wants/fwgen-agent.timer CRON=/etc/cron.d/fwgen-agent
# The paths go into unit and cron files that run as root: only those that need no quoting there.
case "$RULES" in *[!A-Za-z0-9._/@+-]*) fail 1 "a rules path with characters a schedule cannot hold: $RULES" ;; esac
case "$EVERY" in '' | *[!0-9]*) fail 1 "EVERY must be a number of seconds" ;; esac
trap '' HUP PIPE

has_systemd() { [ -d /run/systemd/system ] && command -v systemctl > /dev/null 2>&1; }

service_text() {
  cat << FWGEN_UNIT
[Unit]
Description=fwgen agent: pull and apply this host's signed firewall release
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=/bin/sh $A/agent.sh poll $RULES
FWGEN_UNIT
}

# A calendar event every EVERY seconds, then a fixed random delay (per host) within the period.
calendar() {
  if [ "$EVERY" -lt 60 ]; then echo "*-*-* *:*:00/$EVERY"
  elif [ "$EVERY" -lt 3600 ]; then echo "*-*-* *:00/$((EVERY / 60)):00"
  else echo "*-*-* 00/$((EVERY / 3600)):00:00"; fi
}

timer_text() {
  cat << FWGEN_UNIT
[Unit]
Description=fwgen agent: poll every ${EVERY}s

[Timer]
OnCalendar=$(calendar)
RandomizedDelaySec=$EVERY
FixedRandomDelay=true
AccuracySec=1s

[Install]
WantedBy=timers.target
FWGEN_UNIT
}

cron_text() {
  when='* * * * *'
  if [ "$EVERY" -ge 3600 ]; then when="0 */$((EVERY / 3600)) * * *"
  elif [ "$EVERY" -ge 120 ]; then when="*/$((EVERY / 60)) * * * *"; fi
  cat << FWGEN_CRON
# Installed by fwgen agent install: polls this host's signed firewall release.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$when root /bin/sh $A/agent.sh poll $RULES delay > /dev/null 2>&1
FWGEN_CRON
}

# put FILE MODE TEXT_FN: writes FILE when its content differs; returns 1 when it did.
put() {
  if [ -f "$1" ] && "$3" | cmp -s - "$1"; then return 0; fi
  { "$3" > "$1.fwgen-tmp" && chmod "$2" "$1.fwgen-tmp" && mv -f "$1.fwgen-tmp" "$1"; } || fail 1 "cannot write $1"
  return 1
}

if [ "$ACTION" = uninstall ]; then
  found=0
  if [ -f "$TIMER" ] || [ -f "$UNIT" ]; then
    found=1
    if has_systemd; then systemctl stop fwgen-agent.timer fwgen-agent.service > /dev/null 2>&1; fi
    rm -f "$WANTS" "$TIMER" "$UNIT"
    if has_systemd; then systemctl daemon-reload > /dev/null 2>&1; fi
  fi
  if [ -f "$CRON" ]; then found=1; rm -f "$CRON"; fi
  if [ -d "$A" ]; then found=1; rm -rf "$A"; fi
  if [ "$found" = 1 ]; then echo "status=uninstalled"; else echo "status=absent"; fi
  exit 0
fi

fresh=1
[ -d "$A" ] && fresh=0
mkdir -p "$A" || fail 1 "cannot create $A"
STAGE="$A/.install.$$"
rm -rf "$STAGE"
mkdir "$STAGE" || fail 1 "cannot create $STAGE"
trap 'rm -rf "$STAGE"' EXIT
printf '%s\n' "$@" > "$STAGE/.manifest" || fail "$E_STAGE" "cannot stage the agent (disk full?)"
while [ "$#" -ge 3 ]; do
  { head -c "$2" > "$STAGE/$1" && printf '%s  %s\n' "$3" "$STAGE/$1" >> "$STAGE/.sums"; } ||
    fail "$E_STAGE" "cannot stage $1 (disk full?)"
  shift 3
done
sha256sum -c "$STAGE/.sums" > /dev/null 2>&1 || fail "$E_STAGE" "the staged agent files do not match their SHA-256"
changed=0
while read -r name && read -r _ && read -r _; do
  cmp -s "$STAGE/$name" "$A/$name" && continue
  mv -f "$STAGE/$name" "$A/$name" || fail 1 "cannot write $A/$name"
  changed=$((changed + 1))
  # The cache keeps the applied rules with the pinned part merged in: new pinned rules make them stale,
  # and the next poll applies the release with the new ones.
  case $name in pinned4) rm -f "$A/cache/want4" ;; pinned6) rm -f "$A/cache/want6" ;; esac
done < "$STAGE/.manifest"

if has_systemd; then
  schedule=systemd
  new=0
  put "$UNIT" 644 service_text || new=1
  put "$TIMER" 644 timer_text || new=1
  # What `systemctl enable` does for WantedBy=, without needing the bus.
  if [ ! -L "$WANTS" ]; then
    { mkdir -p "${WANTS%/*}" && ln -sf ../fwgen-agent.timer "$WANTS"; } || fail 1 "cannot enable $TIMER"
    new=1
  fi
  if [ -f "$CRON" ]; then rm -f "$CRON"; new=1; fi
  if [ "$new" = 1 ]; then
    systemctl daemon-reload > /dev/null 2>&1
    systemctl restart fwgen-agent.timer > /dev/null 2>&1 || fail 1 "systemctl could not start fwgen-agent.timer"
    changed=$((changed + 1))
  elif ! systemctl is-active --quiet fwgen-agent.timer 2> /dev/null; then
    systemctl start fwgen-agent.timer > /dev/null 2>&1 || fail 1 "systemctl could not start fwgen-agent.timer"
    changed=$((changed + 1))
  fi
else
  schedule=cron
  umask 022
  mkdir -p "${CRON%/*}" || fail 1 "cannot create ${CRON%/*}"
  put "$CRON" 644 cron_text || changed=$((changed + 1))
fi
echo "changed=$changed schedule=$schedule"
if [ "$fresh" = 1 ]; then echo "status=installed"
elif [ "$changed" -gt 0 ]; then echo "status=updated"
else echo "status=unchanged"; fi
