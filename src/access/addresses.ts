import type Ipaddr from 'ipaddr.js';
import type { Family } from '../inventory/model.js';
import { requireCjs } from '../util/require-cjs.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/** An address as a number: IPv4 fits a double exactly, IPv6 needs a bigint. */
export type Addr = number | bigint;

/** Addresses of one family as sorted, disjoint, non-touching half-open ranges: `[lo0, hi0, lo1, hi1, ...]`. */
export type AddrSet = readonly Addr[];

/** One past the last address of a family. */
export const SPACE_END: Readonly<Record<Family, Addr>> = { ipv4: 2 ** 32, ipv6: 1n << 128n };

/** Every address of a family. */
export const FULL: Readonly<Record<Family, AddrSet>> = { ipv4: [0, 2 ** 32], ipv6: [0n, 1n << 128n] };

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses an IPv4 or IPv6 address (no prefix); undefined when it is neither. */
export function parseAddr(text: string): { family: Family; value: Addr } | undefined {
  const m = V4.exec(text);
  if (m) {
    const o = [m[1], m[2], m[3], m[4]].map(Number);
    if (o.some((x) => x > 255)) return undefined;
    return { family: 'ipv4', value: ((o[0]! * 256 + o[1]!) * 256 + o[2]!) * 256 + o[3]! };
  }
  if (!text.includes(':') || text.includes('%') || !ipaddr.IPv6.isValid(text)) return undefined;
  let v = 0n;
  for (const b of ipaddr.IPv6.parse(text).toByteArray()) v = (v << 8n) | BigInt(b);
  return { family: 'ipv6', value: v };
}

/** A network (`198.51.100.0/24`, or an address alone) as the half-open range it covers; host bits ignored. */
export function parseCidr(text: string): { family: Family; lo: Addr; hi: Addr } | undefined {
  const v4 = parseIpv4Cidr(text);
  if (v4 !== undefined) return v4 ?? undefined;
  const slash = text.indexOf('/');
  const a = parseAddr(slash < 0 ? text : text.slice(0, slash));
  if (!a) return undefined;
  const bits = a.family === 'ipv4' ? 32 : 128;
  const lenText = slash < 0 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) return undefined;
  const len = Number(lenText);
  if (a.family === 'ipv4') {
    const size = 2 ** (32 - len);
    const lo = (a.value as number) - ((a.value as number) % size);
    return { family: 'ipv4', lo, hi: lo + size };
  }
  const size = 1n << BigInt(128 - len);
  const lo = (a.value as bigint) - ((a.value as bigint) % size);
  return { family: 'ipv6', lo, hi: lo + size };
}

/** An address as text: dotted decimal, or IPv6 in its compressed form. */
export function formatAddr(family: Family, value: Addr): string {
  if (family === 'ipv4') {
    const n = value as number;
    return `${Math.floor(n / 16777216)}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
  }
  const bytes: number[] = [];
  let v = value as bigint;
  for (let i = 0; i < 16; i++) {
    bytes.unshift(Number(v & 255n));
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** The fewest CIDRs covering exactly `[lo, hi)`, in order: `198.51.100.7/32` for a single address. */
export function rangeCidrs(family: Family, lo: Addr, hi: Addr): string[] {
  const out: string[] = [];
  if (family === 'ipv4') {
    let a = lo as number;
    while (a < (hi as number)) {
      let size = 1;
      let len = 32;
      while (len > 0 && a % (size * 2) === 0 && a + size * 2 <= (hi as number)) {
        size *= 2;
        len--;
      }
      out.push(`${formatAddr(family, a)}/${len}`);
      a += size;
    }
    return out;
  }
  let a = lo as bigint;
  while (a < (hi as bigint)) {
    let size = 1n;
    let len = 128;
    while (len > 0 && a % (size * 2n) === 0n && a + size * 2n <= (hi as bigint)) {
      size *= 2n;
      len--;
    }
    out.push(`${formatAddr(family, a)}/${len}`);
    a += size;
  }
  return out;
}

/** The CIDRs of a set, in order. */
export function setCidrs(family: Family, set: AddrSet): string[] {
  const out: string[] = [];
  for (let i = 0; i < set.length; i += 2) out.push(...rangeCidrs(family, set[i]!, set[i + 1]!));
  return out;
}

/**
 * IPv4 CIDRs without a regular expression (a 10,000-host fleet's rules hold as many): the range, null
 * when the text is IPv4-like but not valid, undefined when it is not IPv4 at all.
 */
function parseIpv4Cidr(text: string): { family: Family; lo: Addr; hi: Addr } | null | undefined {
  if (text.includes(':')) return undefined;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      // A leading zero (`01`) reads as octal to some parsers: not an address iptables-save prints.
      if (digits === 1 && octet === 0) return null;
      octet = octet * 10 + c - 48;
      if (++digits > 3 || octet > 255) return dots === 0 ? undefined : null;
    } else if (c === 46) {
      if (digits === 0 || ++dots > 3) return null;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c === 47) break;
    else return dots === 0 ? undefined : null;
  }
  if (dots !== 3 || digits === 0) return dots === 0 ? undefined : null;
  value = value * 256 + octet;
  let len = 32;
  if (i < text.length) {
    const rest = text.slice(i + 1);
    if (!/^\d{1,2}$/.test(rest) || Number(rest) > 32) return null;
    len = Number(rest);
  }
  const size = 2 ** (32 - len);
  const lo = value - (value % size);
  return { family: 'ipv4', lo, hi: lo + size };
}
