/**
 * Issue 16, finding 10: `status` was in-sync over a backdoor, a chain named like Docker's accepting
 * everything, hooked ahead of fwgen's in INPUT. Each fixture in test/fixtures/foreign-hooks/ is the
 * live filter table of a host running rendered/web/iptables.up.rules plus another tool's chains;
 * test/e2e/host-ssh.test.ts shows the same on a real host and through `status --strict`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatStatus } from '../src/cli/status-command.js';
import { DEFAULT_PRESERVE } from '../src/inventory/model.js';
import { preserveMatcher } from '../src/model/ownership.js';
import type { RemoteStatus } from '../src/remote/read.js';
import { bypassingHooks } from '../src/status/foreign-hooks.js';
import { assessHost, type StatusJob } from '../src/status/host-status.js';

const PRESERVE = preserveMatcher(DEFAULT_PRESERVE);
const RENDERED = readFileSync('rendered/web/iptables.up.rules', 'utf8');
const fixture = (name: string) => readFileSync(join('test/fixtures/foreign-hooks', `${name}.rules`), 'utf8');
const hooks = (name: string) => bypassingHooks(RENDERED, fixture(name), PRESERVE);
const AHEAD = "(ahead of fwgen's hook) can accept new connections that fwgen's rules reject";

describe("foreign hooks ahead of fwgen's in INPUT", () => {
  it('a chain accepting everything, hooked first, is reported with the ACCEPT it leads to', () => {
    expect(hooks('backdoor')).toEqual([`-A INPUT -j DOCKER-BACKDOOR ${AHEAD}: -A DOCKER-BACKDOOR -j ACCEPT`]);
  });

  it('a port fwgen does not open, or a source outside the one it allows, is reported', () => {
    expect(hooks('uncovered-port')).toEqual([
      `-A INPUT -j DOCKER-WEB ${AHEAD}: -A DOCKER-WEB -p tcp -m multiport --dports 80,5432 -j ACCEPT`,
    ]);
    expect(hooks('uncovered-source')).toEqual([
      `-A INPUT -p tcp -m tcp --dport 22 -j DOCKER-SSH ${AHEAD}: -A DOCKER-SSH -s 203.0.113.64/32 -j ACCEPT`,
    ]);
  });

  it('through nested chains and a loop, the ACCEPT at the end of the path is named; an option not understood narrows nothing', () => {
    expect(hooks('nested-loop')).toEqual([`-A INPUT -j DOCKER-A ${AHEAD}: -A DOCKER-B -m udp --dport 53 -j ACCEPT`]);
  });

  it("kube-proxy's health check node port is reported (fwgen's rules close it); KUBE-FIREWALL's DROP is not", () => {
    expect(hooks('kube-nodeports')).toEqual([
      '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS ' +
        `${AHEAD}: -A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:health health check node port" -m tcp --dport 30080 -j ACCEPT`,
    ]);
  });

  it("nothing to report: fail2ban's bans, established-only accepts, accepts fwgen's rules make too, a hook after fwgen's", () => {
    for (const name of ['fail2ban', 'established-only', 'covered', 'backdoor-after-fwgen'])
      expect(hooks(name), name).toEqual([]);
  });

  it('status: the host stays in-sync, with the warning under its line', () => {
    const job: StatusJob = {
      host: {
        name: 'web1',
        role: 'web',
        addresses: [],
        ssh: { host: '198.51.100.11', user: 'root', port: 22, knownHosts: '/dev/null', sudo: false },
      },
      paths: { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' },
      v4: Buffer.from(RENDERED),
      preserve: PRESERVE,
    };
    const remote: RemoteStatus = {
      file4: RENDERED,
      live4: fixture('backdoor'),
      backups: 0,
      armed: false,
      locked: false,
      fp4: '-',
      fp6: '-',
    };
    const s = assessHost(job, remote);
    expect(s.state).toBe('in-sync');
    expect(s.foreign).toEqual(['DOCKER-BACKDOOR']);
    expect(s.bypass).toEqual([`-A INPUT -j DOCKER-BACKDOOR ${AHEAD}: -A DOCKER-BACKDOOR -j ACCEPT`]);
    expect(formatStatus([s], false)).toContain(`\n    warning: -A INPUT -j DOCKER-BACKDOOR ${AHEAD}`);
    expect(assessHost(job, { ...remote, live4: fixture('fail2ban') }).bypass).toBeUndefined();
  });
});
