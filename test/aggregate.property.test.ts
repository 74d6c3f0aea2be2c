import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { parseNet } from '../src/inventory/addresses.js';
import type { Family, Net } from '../src/inventory/model.js';
import { aggregateNets, mergeList } from '../src/resolve/aggregate.js';

// Exact range arithmetic with BigInt lives here, in the test only: it is the independent judge of what
// cidr-tools (through aggregateNets) produced.

const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };
type Range = { start: bigint; end: bigint };

function toText(family: Family, n: bigint): string {
  if (family === 'ipv4') return [24n, 16n, 8n, 0n].map((s) => ((n >> s) & 255n).toString()).join('.');
  return Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(':');
}

function toNumber(text: string): bigint {
  return ipaddr
    .parse(text)
    .toByteArray()
    .reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

function rangeOf(net: Net): Range {
  const [addr, prefix] = net.cidr.split('/') as [string, string];
  const size = 1n << BigInt(BITS[net.family] - Number(prefix));
  const start = toNumber(addr);
  return { start, end: start + size - 1n };
}

/** The union of ranges as sorted, disjoint, non-adjacent intervals. */
function union(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const r of [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end + 1n) last.end = r.end > last.end ? r.end : last.end;
    else out.push({ ...r });
  }
  return out;
}

/** Fewest CIDRs covering exactly one interval: greedy largest aligned block, which is optimal. */
function minimalCidrCount(r: Range, bits: number): number {
  let count = 0;
  for (let s = r.start; s <= r.end; count++) {
    let size = 1n;
    while (size < 1n << BigInt(bits) && s % (size * 2n) === 0n && s + size * 2n - 1n <= r.end) size *= 2n;
    s += size;
  }
  return count;
}

/** A network of `family` in a small region (so lists overlap, nest and touch) or anywhere, with its prefix. */
function netArb(family: Family): fc.Arbitrary<Net> {
  const bits = BITS[family];
  const base = family === 'ipv4' ? toNumber('198.18.0.0') : toNumber('2001:db8::');
  const near = fc.record({ offset: fc.bigInt(0n, 1023n), prefix: fc.integer({ min: bits - 10, max: bits }) });
  const far = fc.record({
    offset: fc.bigInt(0n, (1n << BigInt(bits)) - 1n - base),
    prefix: fc.integer({ min: 8, max: bits }),
  });
  const hostOnly = fc.record({ offset: fc.bigInt(0n, 1023n), prefix: fc.constant(bits) });
  const spread = fc.oneof(
    { arbitrary: near, weight: 5 },
    { arbitrary: hostOnly, weight: 4 },
    { arbitrary: far, weight: 1 },
  );
  return spread.map(({ offset, prefix }) => {
    const hostBits = BigInt(bits - prefix);
    const network = ((base + offset) >> hostBits) << hostBits;
    const parsed = parseNet(`${toText(family, network)}/${prefix}`, { allowPrefix: true });
    if ('error' in parsed) throw new Error(parsed.error);
    return parsed;
  });
}

/** A list with duplicates: some of its own entries repeated. */
function listArb(family: Family): fc.Arbitrary<Net[]> {
  return fc
    .array(netArb(family), { minLength: 1, maxLength: 60 })
    .chain((nets) => fc.subarray(nets).map((dups) => [...nets, ...dups]));
}

/** Addresses around every range edge, plus a few inside, as text. */
function sampleAddresses(family: Family, ranges: readonly Range[]): string[] {
  const max = (1n << BigInt(BITS[family])) - 1n;
  const points = ranges.flatMap((r) => [r.start - 1n, r.start, r.start + (r.end - r.start) / 2n, r.end, r.end + 1n]);
  return [...new Set(points.filter((p) => p >= 0n && p <= max))].map((p) => toText(family, p));
}

/** The list and the same list in a random order. */
function withShuffled<T>(list: T[]): fc.Arbitrary<[T[], T[]]> {
  return fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length }));
}

const admits = (nets: readonly Net[], address: string): boolean =>
  nets.some((n) => ipaddr.parse(address).match(ipaddr.parseCIDR(n.cidr)));

describe.each(['ipv4', 'ipv6'] as const)('aggregateNets, %s (property)', (family) => {
  const runs = { numRuns: 300 };

  it('admits exactly the same addresses: same union of ranges (BigInt)', () => {
    fc.assert(
      fc.property(listArb(family), (nets) => {
        expect(union(aggregateNets(nets).map(rangeOf))).toEqual(union(nets.map(rangeOf)));
      }),
      runs,
    );
  });

  it('admits exactly the same addresses: membership of addresses at and around every edge (ipaddr.js)', () => {
    fc.assert(
      fc.property(listArb(family), (nets) => {
        const merged = aggregateNets(nets);
        for (const address of sampleAddresses(family, [...nets, ...merged].map(rangeOf))) {
          expect(admits(merged, address), address).toBe(admits(nets, address));
        }
      }),
      runs,
    );
  });

  it('is minimal: no CIDR contains, overlaps or can merge with another, and the count is the fewest possible', () => {
    fc.assert(
      fc.property(listArb(family), (nets) => {
        const merged = aggregateNets(nets);
        const ranges = merged.map(rangeOf);
        for (let i = 1; i < ranges.length; i++) {
          // Sorted and disjoint; touching blocks are allowed only when they cannot form one CIDR.
          expect(ranges[i]!.start > ranges[i - 1]!.end).toBe(true);
          const [a, b] = [ranges[i - 1]!, ranges[i]!];
          const size = a.end - a.start + 1n;
          const siblings = b.start === a.end + 1n && b.end - b.start + 1n === size && a.start % (size * 2n) === 0n;
          expect(siblings, `${merged[i - 1]!.cidr} + ${merged[i]!.cidr}`).toBe(false);
        }
        const fewest = union(nets.map(rangeOf)).reduce((n, r) => n + minimalCidrCount(r, BITS[family]), 0);
        expect(merged).toHaveLength(fewest);
      }),
      runs,
    );
  });

  it('returns canonical CIDRs of the family, sorted, whatever the input order', () => {
    fc.assert(
      fc.property(listArb(family).chain(withShuffled), ([nets, shuffled]) => {
        const merged = aggregateNets(nets);
        expect(aggregateNets(shuffled)).toEqual(merged);
        expect(merged.every((n) => n.family === family)).toBe(true);
        expect(merged.map((n) => n.key)).toEqual(merged.map((n) => n.key).sort());
        for (const n of merged) expect(parseNet(n.cidr, { allowPrefix: true })).toEqual(n);
      }),
      runs,
    );
  });

  it("mergeList (ipset mode's lists, cidr-tools' text used as is) gives the same CIDRs in the same order", () => {
    fc.assert(
      fc.property(listArb(family).chain(withShuffled), ([nets, shuffled]) => {
        const members = shuffled.map((net) => ({ net, via: net.cidr, group: net.cidr, isHost: false }));
        expect(mergeList(members).cidrs).toEqual(aggregateNets(nets).map((n) => n.cidr));
      }),
      runs,
    );
  });
});

describe('parseNet', () => {
  it('gives a plain IPv4 address (fast path) the Net of the same address written as /32 (ipaddr.js path)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => {
        const text = toText('ipv4', BigInt(n));
        const net = parseNet(text, { allowPrefix: false });
        expect(net).toEqual(parseNet(`${text}/32`, { allowPrefix: true }));
        expect(net).toEqual({ family: 'ipv4', cidr: `${text}/32`, key: `4:${n.toString(16).padStart(8, '0')}/032` });
      }),
      { numRuns: 500 },
    );
    for (const bad of ['010.0.0.1', '1.2.3', '1.2.3.256', ' 1.2.3.4', '1.2.3.4 ', '١.2.3.4']) {
      expect(parseNet(bad, { allowPrefix: false })).toHaveProperty('error');
    }
  });
});

describe('aggregateNets, edge cases', () => {
  const nets = (...cidrs: string[]): Net[] => cidrs.map((c) => parseNet(c, { allowPrefix: true }) as Net);
  const cidrs = (list: Net[]): string[] => aggregateNets(list).map((n) => n.cidr);

  it('merges adjacent hosts and blocks, drops nested and duplicate ones, keeps non-siblings apart', () => {
    const hosts = nets('10.0.0.0/32', '10.0.0.1/32', '10.0.0.2/31', '10.0.0.3/32', '10.0.0.3/32');
    expect(cidrs(hosts)).toEqual(['10.0.0.0/30']);
    expect(cidrs(nets('10.0.0.1/32', '10.0.0.2/32'))).toEqual(['10.0.0.1/32', '10.0.0.2/32']);
    expect(cidrs(nets('2001:db8::/128', '2001:db8::1/128', '2001:db8::/64'))).toEqual(['2001:db8::/64']);
    const v6 = nets('2001:db8::2/128', '2001:db8::3/128', '2001:db8::1/128');
    expect(cidrs(v6)).toEqual(['2001:db8::1/128', '2001:db8::2/127']);
  });

  it('handles the whole address space and an empty list', () => {
    expect(cidrs(nets('0.0.0.0/1', '128.0.0.0/1'))).toEqual(['0.0.0.0/0']);
    expect(cidrs(nets('::/1', '8000::/1'))).toEqual(['::/0']);
    expect(aggregateNets([])).toEqual([]);
  });
});
