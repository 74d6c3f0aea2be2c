import { lookup } from 'node:dns/promises';
import type Ipaddr from 'ipaddr.js';
import { requireCjs } from '../util/require-cjs.js';
import type { Host, Inventory } from '../inventory/model.js';
import { sourceAddressFor } from './lockout.js';
import { hopLabel, type Reach } from '../remote/reach.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/** The address a host will see fwgen's SSH connection come from, and why. */
export interface SshSource {
  readonly address: string;
  readonly why: string;
}

/**
 * Chooses the source address for the lockout check: `--from` or `ssh.source` when given (NAT);
 * through jump hosts, the last one's address (its inventory address when it is an inventory host,
 * else resolved as SSH resolves it); directly, the local address the kernel would use.
 */
export async function sshSourceFor(host: Host, reach: Reach, inv: Inventory, from?: string): Promise<SshSource> {
  const given = from ?? host.ssh.source;
  if (given) return { address: ipaddr.process(given).toString(), why: from ? '--from' : 'ssh.source' };
  const last = reach.jumps.at(-1);
  if (!last) return { address: await sourceAddressFor(reach.target.host, reach.target.port), why: 'this machine' };
  const family = await familyOf(reach.target.host);
  const jumpHost = inv.hosts.find(
    (h) =>
      [last.name, last.host].some((n) => n === h.name || n === h.ssh.host) ||
      h.addresses.some((a) => a.cidr.split('/')[0] === last.host),
  );
  const inventoryAddr = jumpHost?.addresses.find((a) => a.family === family) ?? jumpHost?.addresses[0];
  if (inventoryAddr) {
    return { address: inventoryAddr.cidr.split('/')[0], why: `jump host ${jumpHost!.name} (inventory address)` };
  }
  const resolved = await lookup(last.host, { family: family === 'ipv6' ? 6 : 4 }).catch(() => lookup(last.host));
  return { address: resolved.address, why: `jump host ${hopLabel(last)}` };
}

async function familyOf(host: string): Promise<'ipv4' | 'ipv6'> {
  if (ipaddr.isValid(host)) return ipaddr.process(host).kind() === 'ipv6' ? 'ipv6' : 'ipv4';
  try {
    return (await lookup(host)).family === 6 ? 'ipv6' : 'ipv4';
  } catch {
    return 'ipv4';
  }
}
