import type { Family, Host, Inventory } from '../inventory/model.js';
import { emitRule } from '../model/emit.js';
import { PINNED_CHAIN, PINNED_HOOK } from '../model/ownership.js';
import type { Rule } from '../model/ruleset.js';
import { resolvePolicies } from '../resolve/resolve-policy.js';

export { PINNED_CHAIN, PINNED_HOOK } from '../model/ownership.js';

const accept = (args: string[], why: string): Rule => ({
  chain: PINNED_CHAIN,
  args: [...args, '-m', 'comment', '--comment', `fwgen agent ${why}`, '-j', 'ACCEPT'],
});

/**
 * The pinned part of a host's rules, per family, as a filter table fragment the agent merges into every
 * release (remote/agent.sh `merge_pinned`): SSH from the management networks to the host's SSH port
 * (and its replies), and the monitoring rules of its role. A release cannot take them away: a host that
 * pulls its rules stays reachable by its operators and its monitoring, with no operator connected.
 */
export function pinnedFragments(inv: Inventory, hosts: readonly Host[]): Map<string, Record<Family, string>> {
  // Monitoring sources resolved as ship's rules resolve them, one CIDR per rule (not as ipsets: the
  // pinned rules must load before any set exists).
  const roles = new Set(hosts.map((h) => h.role));
  const policies = resolvePolicies({ ...inv, sets: 'none' }, () => 'pinned', roles);
  const out = new Map<string, Record<Family, string>>();
  for (const host of hosts) {
    const text = (family: Family): string => {
      const policy = policies.find((p) => p.role === host.role && p.family === family);
      const port = String(host.ssh.port);
      const ssh = ['-p', 'tcp', '-m', 'tcp'];
      const rules = [
        ...(policy?.management ?? []).flatMap((net) => [
          accept(['-s', net, ...ssh, '--dport', port], 'management ssh'),
          accept(['-d', net, ...ssh, '--sport', port], 'management ssh replies'),
        ]),
        ...(policy?.allow ?? [])
          .filter((a) => a.label.startsWith('monitoring#'))
          .map((a) =>
            accept(
              ['-s', a.cidr, '-p', a.port.proto, '-m', a.port.proto, '--dport', a.port.dport],
              `${a.label} from ${a.via}`,
            ),
          ),
      ];
      const hooks = ['INPUT', 'OUTPUT'].map((chain) => ({
        chain,
        args: ['-m', 'comment', '--comment', PINNED_HOOK, '-j', PINNED_CHAIN],
      }));
      return [`:${PINNED_CHAIN} - [0:0]`, ...[...hooks, ...rules].map(emitRule), ''].join('\n');
    };
    out.set(host.name, { ipv4: text('ipv4'), ipv6: inv.hasIpv6 ? text('ipv6') : `:${PINNED_CHAIN} - [0:0]\n` });
  }
  return out;
}
