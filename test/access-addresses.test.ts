// Addresses and interval sets of src/access: the IPv4 fast path against ipaddr.js, set operations
// against plain sets of numbers, CIDR covers against the ranges they cover.
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { parseCidr, rangeCidrs } from '../src/access/addresses.js';
import { contains, fromRanges, intersect, subtract, union } from '../src/access/intervals.js';

describe('parseCidr', () => {
  it('the IPv4 fast path reads what ipaddr.js reads as four-part decimal, and nothing else', () => {
    const octet = fc.oneof(fc.nat(255).map(String), fc.constantFrom('256', '01', '', 'a', '999', '1000'));
    const len = fc.option(fc.oneof(fc.nat(33).map(String), fc.constantFrom('', 'x', '040')));
    const arb = fc
      .tuple(octet, octet, octet, octet, len)
      .map(([a, b, c, d, l]) => `${a}.${b}.${c}.${d}${l === null ? '' : `/${l}`}`);
    fc.assert(
      fc.property(arb, (t) => {
        const [addr, prefix] = t.split('/') as [string, string?];
        let expected: [number, number] | undefined;
        if (
          ipaddr.IPv4.isValidFourPartDecimal(addr) &&
          (prefix === undefined || (/^\d{1,2}$/.test(prefix) && Number(prefix) <= 32))
        ) {
          const n = ipaddr.IPv4.parse(addr)
            .toByteArray()
            .reduce((x, y) => x * 256 + y, 0);
          const size = 2 ** (32 - Number(prefix ?? 32));
          expected = [n - (n % size), n - (n % size) + size];
        }
        const r = parseCidr(t);
        expect(r ? [r.lo, r.hi] : undefined).toEqual(expected);
      }),
      { numRuns: 5000 },
    );
  });

  it('IPv6, and what is neither', () => {
    expect(parseCidr('2001:db8::/32')).toEqual({
      family: 'ipv6',
      lo: 0x20010db8n << 96n,
      hi: (0x20010db8n << 96n) + (1n << 96n),
    });
    expect(parseCidr('2001')).toBeUndefined();
    expect(parseCidr('nonsense')).toBeUndefined();
  });

  it('rangeCidrs: the fewest CIDRs covering exactly a range', () => {
    expect(rangeCidrs('ipv4', 2 ** 32 - 256, 2 ** 32)).toEqual(['255.255.255.0/24']);
    expect(rangeCidrs('ipv4', 5, 12)).toEqual(['0.0.0.5/32', '0.0.0.6/31', '0.0.0.8/30']);
    fc.assert(
      fc.property(fc.nat(2 ** 20), fc.nat(5000), (lo, n) => {
        const cidrs = rangeCidrs('ipv4', lo, lo + n + 1).map((c) => parseCidr(c)!);
        expect(cidrs[0]!.lo).toBe(lo);
        expect(cidrs[cidrs.length - 1]!.hi).toBe(lo + n + 1);
        for (let i = 1; i < cidrs.length; i++) expect(cidrs[i]!.lo).toBe(cidrs[i - 1]!.hi);
      }),
    );
  });
});

describe('interval sets', () => {
  const setArb = fc
    .array(fc.tuple(fc.nat(60), fc.nat(8)), { maxLength: 8 })
    .map((rs) => fromRanges(rs.map(([lo, n]) => [lo, lo + n] as const)));
  const members = (s: readonly number[]) =>
    new Set(Array.from({ length: 80 }, (_, i) => i).filter((i) => contains(s, i)));

  it('union, intersection and difference hold the numbers plain sets do', () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        const [ma, mb] = [members(a), members(b)];
        expect(members(union(a, b))).toEqual(new Set([...ma, ...mb]));
        expect(members(intersect(a, b))).toEqual(new Set([...ma].filter((x) => mb.has(x))));
        expect(members(subtract(a, b))).toEqual(new Set([...ma].filter((x) => !mb.has(x))));
        // Canonical: sorted, apart (touching ranges are joined).
        for (const s of [union(a, b), intersect(a, b), subtract(a, b)]) {
          for (let i = 1; i < s.length; i++) expect(s[i - 1]!).toBeLessThan(s[i]!);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
