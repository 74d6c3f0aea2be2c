import { knownHostsName } from '../remote/known-hosts.js';
import { expandHome } from '../remote/ssh-transport.js';
import type { Reached, TransportError } from '../remote/transport.js';
import type { Host } from '../inventory/model.js';
import type { Check } from './checks.js';

/** The checks a successful connection proves: reachable, host key known and matching, authenticated. */
export function connectedChecks(h: Host, reached?: Reached): Check[] {
  const where = reached ? knownHostsName(reached.host, reached.port) : knownHostsName(h.ssh.host, h.ssh.port);
  const alias = reached?.alias ? ` (ssh_config alias ${reached.alias})` : '';
  const via = reached?.via.length ? ` via ${reached.via.join(' → ')}` : '';
  return [
    { host: h.name, name: 'ssh', level: 'ok', detail: `reachable at ${where}${alias}${via}` },
    { host: h.name, name: 'host key', level: 'ok', detail: `matches ${h.ssh.knownHosts}` },
    {
      host: h.name,
      name: 'authentication',
      level: 'ok',
      detail: `logged in as ${reached?.user ?? h.ssh.user}${reached ? ` with ${reached.key}` : ''}`,
    },
  ];
}

/**
 * The checks a failed connection (or a refused sudo) tells: which step passed, which failed and its
 * fix. A host key is checked before authentication, so a key error says nothing about the login.
 */
export function transportFailureChecks(h: Host, err: TransportError): Check[] {
  const [ssh, key, auth] = connectedChecks(h);
  const kh = expandHome(h.ssh.knownHosts);
  const name = knownHostsName(h.ssh.host, h.ssh.port);
  // Through a jump host, say which hop failed: the fix is on that hop.
  const fail = (c: Check, fix: string): Check => ({
    ...c,
    level: 'fail',
    detail: err.message,
    fix: err.hop?.startsWith('jump host') ? `on ${err.hop}: ${fix}` : fix,
  });
  switch (err.kind) {
    case 'unreachable':
    case 'timeout':
      return [
        fail(
          ssh,
          `check that ${h.ssh.host} is up, that sshd runs on port ${h.ssh.port} and that this machine may reach it (ssh.host, ssh.port)`,
        ),
      ];
    case 'host-key-unknown':
      return [
        ssh,
        fail(
          key,
          `check the fingerprint on the host's console (\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`), then \`ssh-keyscan -p ${h.ssh.port} ${h.ssh.host} >> ${kh}\``,
        ),
      ];
    case 'host-key-changed':
      return [
        ssh,
        fail(
          key,
          `if ${h.name} was reinstalled: \`ssh-keygen -R '${name}' -f ${kh}\`, then verify and add its new key; otherwise suspect a man in the middle`,
        ),
      ];
    case 'auth-failed':
      return [
        ssh,
        key,
        fail(
          auth,
          `check ssh.user (${h.ssh.user}), ssh.identity or the agent, and ~${h.ssh.user}/.ssh/authorized_keys on the host`,
        ),
      ];
    case 'step-timeout':
    case 'output-limit':
      return [
        ssh,
        key,
        auth,
        {
          host: h.name,
          name: 'facts',
          level: 'fail',
          detail: err.message,
          fix: 'run the checks by hand on the host (`sh -x`): a command that hangs or never stops printing',
        },
      ];
    case 'sudo-password':
      return [
        ssh,
        key,
        auth,
        {
          host: h.name,
          name: 'sudo',
          level: 'fail',
          detail: err.message,
          fix: `allow it without a password: \`${h.ssh.user} ALL=(root) NOPASSWD: ALL\` in /etc/sudoers.d/fwgen, or connect as root with ssh.sudo: false`,
        },
      ];
  }
}
