import { describe, expect, it } from 'vitest';
import { parseNet } from '../src/inventory/addresses.js';
import { parseInventory } from '../src/inventory/load-inventory.js';
import type { Net } from '../src/inventory/model.js';
import { aggregate, describeAggregate, mergeList, type Member } from '../src/resolve/aggregate.js';
import type { RolePolicy } from '../src/resolve/policy.js';
import { resolvePolicies } from '../src/resolve/resolve-policy.js';

const net = (cidr: string): Net => parseNet(cidr, { allowPrefix: true }) as Net;
const host = (cidr: string, role: string, name: string): Member => ({
  net: net(cidr),
  via: `${role}/${name}`,
  group: role,
  isHost: true,
});
const resolve = (yaml: string): RolePolicy[] =>
  resolvePolicies(parseInventory(yaml, 'inline.yaml').inventory, () => 'base.rules.njk');
const policy = (all: RolePolicy[], role: string, family = 'ipv4'): RolePolicy =>
  all.find((p) => p.role === role && p.family === family)!;

describe('aggregate labels', () => {
  it('mergeList: the merged CIDRs and one label for all; distinct hosts are counted without a lookup', () => {
    const members = [
      host('10.0.0.5/32', 'web', 'web1'),
      host('10.0.0.2/32', 'web', 'web2'),
      host('10.0.0.3/32', 'db', 'db1'),
      host('10.0.1.0/32', 'cache', 'c1'),
    ];
    const expected = { cidrs: ['10.0.0.2/31', '10.0.0.5/32', '10.0.1.0/32'], via: '4 hosts of cache db web' };
    expect(mergeList(members)).toEqual(expected);
    expect(mergeList(members, true)).toEqual(expected);
    expect(mergeList([])).toEqual({ cidrs: [], via: '' });
    expect(mergeList([members[0]!], true)).toEqual({ cidrs: ['10.0.0.5/32'], via: 'web/web1' });
  });

  it('keeps a lone host as role/host, and counts merged hosts with their roles sorted, space-separated', () => {
    const merged = aggregate([
      host('10.0.0.5/32', 'web', 'web1'),
      host('10.0.0.2/32', 'web', 'web2'),
      host('10.0.0.3/32', 'db', 'db1'),
    ]);
    expect(merged.map((a) => [a.net.cidr, describeAggregate(a.members)])).toEqual([
      ['10.0.0.2/31', '2 hosts of db web'],
      ['10.0.0.5/32', 'web/web1'],
    ]);
  });

  it('says sources when a written network is merged in, and counts an address named twice once', () => {
    const netMember: Member = { net: net('10.0.0.0/31'), via: '10.0.0.0/31', group: '10.0.0.0/31', isHost: false };
    const [a] = aggregate([netMember, host('10.0.0.2/31', 'web', 'w'), host('10.0.0.2/31', 'web', 'w')]);
    expect(a!.net.cidr).toBe('10.0.0.0/30');
    expect(describeAggregate(a!.members)).toBe('2 sources of 10.0.0.0/31 web');
    const twice = [host('10.0.0.9/32', 'web', 'web1'), { ...host('10.0.0.9/32', 'web', 'web1'), via: 'web1' }];
    expect(describeAggregate(twice)).toBe('web/web1');
  });

  it('names at most what fits and says how many more, so a comment stays under the 256-byte limit', () => {
    const long = (i: number) => `${'r'.repeat(60)}${String(i).padStart(3, '0')}`;
    const members = Array.from({ length: 256 }, (_, i): Member => ({
      net: net(`10.0.${i}.0/24`),
      via: 'x',
      group: long(i),
      isHost: true,
    }));
    const [a] = aggregate(members);
    const label = describeAggregate(a!.members);
    expect(a!.net.cidr).toBe('10.0.0.0/16');
    expect(label).toBe(`256 hosts of ${long(0)} and 255 more`);
    const comment = `fwgen ${'r'.repeat(63)} monitoring#999 from ${label}`;
    expect(comment.length).toBeLessThanOrEqual(256);
    // Only characters of fwgen's comment grammar (test/hostile-values.test.ts): no commas.
    expect(describeAggregate([host('10.0.0.2/32', 'a', 'x'), host('10.0.0.3/32', 'b', 'y')])).toMatch(
      /^[A-Za-z0-9 ./:#_-]+$/,
    );
  });
});

const INVENTORY = `
management: [203.0.113.0/29, 203.0.113.8/29, 2001:db8:ffff::/48]
monitoring:
  - { from: [metrics], ports: [tcp/9100] }
roles:
  web:
    hosts:
      { web1: 198.51.100.10, web2: 198.51.100.11, web3: [198.51.100.12, "2001:db8::12"], web4: 198.51.100.13 }
  db:
    allow:
      - { from: [web], ports: [tcp/5432, tcp/6432] }
      - { from: [web1, 198.51.100.11], ports: [tcp/5432] }
      - { from: [web1, 198.51.100.11], ports: [tcp/8080] }
      - { from: [192.0.2.0/25, 192.0.2.128/25], ports: [udp/161] }
    hosts: { db1: 198.51.100.20, db2: 198.51.100.21 }
  metrics:
    hosts: { metrics1: 198.51.100.22, metrics2: ["198.51.100.23", "2001:db8::13"] }
`;

describe('resolvePolicies with aggregation', () => {
  const all = resolve(INVENTORY);
  const db = policy(all, 'db');

  it('merges fleet trust per family and labels each CIDR with the hosts it covers', () => {
    expect(db.fleet).toEqual([
      { cidr: '198.51.100.10/31', label: '2 hosts of web' },
      { cidr: '198.51.100.12/31', label: '2 hosts of web' },
      { cidr: '198.51.100.20/30', label: '4 hosts of db metrics' },
    ]);
    expect(policy(all, 'db', 'ipv6').fleet).toEqual([{ cidr: '2001:db8::12/127', label: '2 hosts of metrics web' }]);
    // Shared by every role of the family (the renderer renders it once).
    expect(policy(all, 'web').fleet).toBe(db.fleet);
  });

  it('merges management networks per family', () => {
    expect(db.management).toEqual(['203.0.113.0/28']);
    expect(policy(all, 'db', 'ipv6').management).toEqual(['2001:db8:ffff::/48']);
  });

  it('merges allow sources per rule and port, never across rules, and keeps exact duplicates once (first rule)', () => {
    expect(db.allow.map((a) => `${a.port.text} ${a.cidr} ${a.label} from ${a.via}`)).toEqual([
      // allow#2 (web1 and .11) merges to .10/31 too: the same CIDR and port as allow#1, kept once.
      'tcp/5432 198.51.100.10/31 allow#1 from 2 hosts of web',
      'tcp/5432 198.51.100.12/31 allow#1 from 2 hosts of web',
      'tcp/6432 198.51.100.10/31 allow#1 from 2 hosts of web',
      'tcp/6432 198.51.100.12/31 allow#1 from 2 hosts of web',
      'tcp/8080 198.51.100.10/31 allow#3 from 2 sources of 198.51.100.11/32 web1',
      'tcp/9100 198.51.100.22/31 monitoring#1 from 2 hosts of metrics',
      'udp/161 192.0.2.0/24 allow#4 from 2 sources of 192.0.2.0/25 192.0.2.128/25',
    ]);
    expect(policy(all, 'db', 'ipv6').allow.map((a) => `${a.port.text} ${a.cidr} ${a.label} from ${a.via}`)).toEqual([
      'tcp/5432 2001:db8::12/128 allow#1 from web/web3',
      'tcp/6432 2001:db8::12/128 allow#1 from web/web3',
      'tcp/9100 2001:db8::13/128 monitoring#1 from metrics/metrics2',
    ]);
  });

  it('is deterministic: hosts and sources written in another order resolve to the same policies', () => {
    const shuffled = INVENTORY.replace(
      '{ web1: 198.51.100.10, web2: 198.51.100.11, web3: [198.51.100.12, "2001:db8::12"], web4: 198.51.100.13 }',
      '{ web4: 198.51.100.13, web3: [198.51.100.12, "2001:db8::12"], web1: 198.51.100.10, web2: 198.51.100.11 }',
    )
      .replace(
        '[203.0.113.0/29, 203.0.113.8/29, 2001:db8:ffff::/48]',
        '[2001:db8:ffff::/48, 203.0.113.8/29, 203.0.113.0/29]',
      )
      .replace('[192.0.2.0/25, 192.0.2.128/25]', '[192.0.2.128/25, 192.0.2.0/25]');
    expect(shuffled).not.toBe(INVENTORY);
    expect(resolve(shuffled)).toEqual(all);
  });
});
