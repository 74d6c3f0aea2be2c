import { isIPv4 } from 'node:net';
import type Ipaddr from 'ipaddr.js';
import { requireCjs } from '../util/require-cjs.js';
import type { Family, Net } from './model.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/** Parses a plain address or a CIDR into a canonical Net, or returns why it is not one. */
export function parseNet(text: string, opts: { allowPrefix: boolean }): Net | { error: string } {
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  // Most inventory entries are plain IPv4 host addresses: Node's own check accepts exactly the canonical
  // dotted-decimal form (no leading zeros), so the text is already the canonical address.
  if (prefixText === undefined && isIPv4(addrText)) return ipv4HostNet(addrText);
  const addr = parseAddress(addrText);
  if (!addr)
    return { error: `"${text}" is not a valid IPv4 or IPv6 ${opts.allowPrefix ? 'address or CIDR' : 'address'}` };
  if (addr.kind() === 'ipv6' && (addr as Ipaddr.IPv6).isIPv4MappedAddress()) {
    return { error: `"${text}" is an IPv4-mapped IPv6 address; write the IPv4 address instead` };
  }
  const family: Family = addr.kind();
  const max = family === 'ipv4' ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!opts.allowPrefix) return { error: `"${text}" has a prefix length; a host address is a single IP` };
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      return { error: `"${text}" has an invalid prefix length (0..${max} for ${family === 'ipv4' ? 'IPv4' : 'IPv6'})` };
    }
    prefix = Number(prefixText);
    const network = ipaddr.parse(networkAddress(addr, prefix));
    if (network.toString() !== addr.toString()) {
      return { error: `"${text}" has host bits set (expected the network address ${network.toString()}/${prefix})` };
    }
  }
  return makeNet(addr, prefix);
}

function parseAddress(text: string): Ipaddr.IPv4 | Ipaddr.IPv6 | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (text.includes(':') && ipaddr.IPv6.isValid(text) && !text.includes('%')) return ipaddr.IPv6.parse(text);
  return undefined;
}

function networkAddress(addr: Ipaddr.IPv4 | Ipaddr.IPv6, prefix: number): string {
  const bytes = addr.toByteArray();
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
  return ipaddr.fromByteArray(bytes).toString();
}

function makeNet(addr: Ipaddr.IPv4 | Ipaddr.IPv6, prefix: number): Net {
  const family: Family = addr.kind();
  const hex = addr
    .toByteArray()
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('');
  return {
    family,
    cidr: `${addr.toString()}/${prefix}`,
    key: `${family === 'ipv4' ? 4 : 6}:${hex}/${prefix.toString().padStart(3, '0')}`,
  };
}

function ipv4HostNet(addr: string): Net {
  return ipv4Net(addr, 32);
}

/** The Net of a canonical IPv4 network (dotted decimal without leading zeros, no host bits set). */
export function ipv4Net(addr: string, prefix: number): Net {
  let hex = '';
  let octet = 0;
  for (let i = 0; i < addr.length; i++) {
    const c = addr.charCodeAt(i);
    if (c === 0x2e) {
      hex += HEX_BYTE[octet];
      octet = 0;
    } else octet = octet * 10 + c - 0x30;
  }
  hex += HEX_BYTE[octet];
  return { family: 'ipv4', cidr: `${addr}/${prefix}`, key: `4:${hex}/${PREFIX_KEY[prefix]}` };
}

const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
const PREFIX_KEY = Array.from({ length: 129 }, (_, p) => String(p).padStart(3, '0'));

/** True when `inner` lies entirely inside `outer` (same family). */
export function netContains(outer: Net, inner: Net): boolean {
  if (outer.family !== inner.family) return false;
  const [oa, op] = ipaddr.parseCIDR(outer.cidr);
  const [ia, ip] = ipaddr.parseCIDR(inner.cidr);
  return ip >= op && ia.match(oa, op);
}

/** Sorts nets canonically and removes duplicates. */
export function sortNets(nets: Iterable<Net>): Net[] {
  if (Array.isArray(nets) && nets.length < 2) return [...(nets as Net[])];
  const byKey = new Map<string, Net>();
  for (const n of nets) byKey.set(n.key, n);
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
