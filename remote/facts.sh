#!/bin/sh
# fwgen remote step "doctor-facts": what doctor needs to know about a host, changing nothing. Prints
# `key=value` lines: uid, the tools present (of those named), iptables' version and rule counts per
# backend, rules files vs live rules, boot mechanisms, other firewall managers, addresses and links,
# leftovers of ships (armed switches, a lock, staged files), what the pull agent needs; then a status line.
# Arguments: RULES RULES6 TOOL...
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v fwgen_lib >/dev/null 2>&1 || . "$(dirname "$0")/lib.sh"
# shellcheck source=boot.sh
command -v fwgen_boot >/dev/null 2>&1 || . "$(dirname "$0")/boot.sh"
set_paths "$1" "$2"
shift 2
say() { printf '%s=%s\n' "$1" "$2"; }
now=$(date +%s)
age() { echo $((now - $(stat -c %Y "$1" 2>/dev/null || echo "$now"))); }
has() { command -v "$1" >/dev/null 2>&1; }
say uid "$(id -u)"
# A rules folder others can change (lib.sh unsafe_folder): said, and its files are not read.
unsafe=$(unsafe_folder "${RULES%/*}")
[ -z "$unsafe" ] || say unsafe_folder "$unsafe"
for t in "$@"; do has "$t" && say tool "$t"; done
# Pull mode: what the agent needs besides the tools (ssh-keygen -Y arrived in OpenSSH 8.1; the agent's
# timeouts need GNU wget's options when curl is missing), and whether it is installed.
if has ssh-keygen; then
  if ssh-keygen -Y fwgen-probe < /dev/null 2>&1 | grep -q 'Y verify'; then say sshsig 1; else say sshsig 0; fi
fi
if has wget; then
  if wget --version 2>/dev/null | grep -q 'GNU Wget'; then say wget gnu; else say wget other; fi
fi
[ -f "$RULES.fwgen-agent/config" ] && say agent 1
say version "$(iptables -V 2>/dev/null | head -n 1)"
for b in legacy nft; do
  for f in 4 6; do
    cmd=iptables; [ "$f" = 6 ] && cmd=ip6tables
    has "$cmd-$b-save" && say "count.$b$f" "$("$cmd-$b-save" 2>/dev/null | grep -c '^-A ')"
  done
done
# Only what fwgen owns is compared (lib.sh's fingerprint): other tools' chains never differ.
live_state() {
  if [ ! -f "$2" ]; then echo no-file; elif ! has "$1"; then echo no-tool;
  elif [ "$("$1" -t filter 2>/dev/null | fingerprint)" = "$(fingerprint < "$2")" ]; then echo match; else echo differ; fi
}
say live4 "$(live_state iptables-save "$RULES")"
say live6 "$(live_state ip6tables-save "$RULES6")"
say boot_runner "$(boot_runner)"
detect_boot
detect_outdated
grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf && say ufw enabled
all=$(iptables-save 2>/dev/null)
say ufw_chains "$(printf '%s\n' "$all" | grep -c '^:ufw-')"
say docker_chains "$(printf '%s\n' "$all" | grep -c '^:DOCKER')"
if [ "$(systemctl is-active firewalld 2>/dev/null)" = active ] || pidof firewalld >/dev/null 2>&1; then say firewalld active; fi
ls /etc/systemd/system/*.wants/nftables.service >/dev/null 2>&1 && say nftables enabled
ip -o addr show 2>/dev/null | while read -r _ ifname _ addr _; do say addr "$ifname ${addr%/*}"; done
ip -o link show 2>/dev/null | while read -r _ ifname _; do ifname=${ifname%:}; say link "${ifname%%@*}"; done
if [ -z "$unsafe" ]; then
  for f in "$RULES".fwgen-armed.*; do
    [ -e "$f" ] || continue
    id=${f#"$RULES.fwgen-armed."}; id=${id%.fired}; id=${id%.done}
    alive=0; pid=$(cat "$RULES.fwgen-deadman.$id.pid" 2>/dev/null)
    case "$pid" in
      systemd) systemctl is-active --quiet "fwgen-deadman-$id.timer" 2>/dev/null && alive=1 ;;
      [0-9]*) kill -0 "$pid" 2>/dev/null && alive=1 ;;
    esac
    say armed "$(age "$f") $alive $id $f"
  done
  [ -d "$LOCK" ] && say lock "$(age "$LOCK") $LOCK $(head -c 300 "$LOCK/owner" 2>/dev/null | tr '\n' ' ')"
  for f in "$RULES".fwgen-new.* "$RULES6".fwgen-new.*; do [ -e "$f" ] && say staged "$(age "$f") $f"; done
fi
echo "status=facts"
