#!/usr/bin/env bash
# Re-records test/fixtures/iptables-save/{docker,docker-full,fail2ban}.txt: the iptables-save output of a real
# dockerd (container published on 8080, after a daemon restart) and of a real fail2ban-server (one source
# banned), each in a lab host. Needs root and the packages of scripts/install-test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
FWGEN_CAPTURE_FIXTURES=1 npx vitest run test/e2e/daemons.test.ts
git status --short test/fixtures/iptables-save
