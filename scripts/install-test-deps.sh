#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests use (real iptables, namespaces, sshd, Docker,
# fail2ban, nginx as the origin of pull mode with curl and wget on its hosts), when missing.
# Needs root (the tests themselves need root too: they create network namespaces).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
declare -A pkg_for=(
  [iptables-restore]=iptables [ip6tables-restore]=iptables [ip]=iproute2 [sshd]=openssh-server
  [ssh]=openssh-client [ssh-keygen]=openssh-client [socat]=socat [unshare]=util-linux
  [nsenter]=util-linux [setsid]=util-linux [systemd-nspawn]=systemd-container [sudo]=sudo [perl]=perl-base [git]=git [ps]=procps [time]=time
  [dockerd]=docker.io [docker]=docker.io [fail2ban-server]=fail2ban [fail2ban-client]=fail2ban
  [busybox]=busybox-static [ipset]=ipset [shellcheck]=shellcheck [dash]=dash [chattr]=e2fsprogs
  [nginx]=nginx [curl]=curl [wget]=wget
)
missing=()
for cmd in "${!pkg_for[@]}"; do
  case "$cmd" in
    time) [ -x /usr/bin/time ] && continue ;;
    # the Docker test image is /bin/busybox alone, so it must be the static build (ldd fails on it)
    busybox) [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 && continue ;;
    *) command -v "$cmd" >/dev/null 2>&1 && continue ;;
  esac
  missing+=("${pkg_for[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing: ${pkgs[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
