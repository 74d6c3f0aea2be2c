import { describe, expect, it } from 'vitest';
import { buildSet, MAX_SET_NAME, setName } from '../src/render/build-sets.js';
import { canonicalMember, diffSets, emitSets, parseSets, sortMembers, stagingSetName } from '../src/model/sets.js';
import { setsMatched } from '../src/model/ruleset.js';
import { parseRuleset } from '../src/model/parse.js';

// `ipset save` of a real kernel (ipset 7.17): hash order, /32 and /128 dropped, bucketsize and initval added.
const SAVED = `create fwgen-fleet-4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xa571bc82
add fwgen-fleet-4 198.18.1.11
add fwgen-fleet-4 198.18.1.21
add fwgen-fleet-4 198.18.0.0/24
create fwgen-fleet-6 hash:net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x5679b0e1
add fwgen-fleet-6 2001:db8:18::21
add fwgen-fleet-6 2001:db8:18::11
add fwgen-fleet-6 2001:db8:18::/120
`;

describe('set naming', () => {
  const roles = [
    'web',
    'db',
    'a',
    'x'.repeat(64),
    'a-very-long-role-name-for-hashing',
    'a-very-long-role-name-for-hashinh',
  ];
  const names = roles.flatMap((role) =>
    (['ipv4', 'ipv6'] as const).flatMap((f) =>
      [1, 2, 12].map((n) => setName({ kind: 'allow', role, label: `allow#${n}` }, f)),
    ),
  );

  it('names fleet, management, monitoring and allow sets by what they are for, per family', () => {
    expect(setName({ kind: 'fleet' }, 'ipv4')).toBe('fwgen-fleet-4');
    expect(setName({ kind: 'management' }, 'ipv6')).toBe('fwgen-mgmt-6');
    expect(setName({ kind: 'allow', role: 'db', label: 'monitoring#3' }, 'ipv4')).toBe('fwgen-mon3-4');
    expect(setName({ kind: 'allow', role: 'db', label: 'allow#1' }, 'ipv4')).toBe('fwgen-db-a1-4');
  });

  it('keeps every name within 31 characters, distinct, and the same on every call', () => {
    for (const n of names) expect(n.length).toBeLessThanOrEqual(MAX_SET_NAME);
    expect(new Set(names).size).toBe(names.length);
    const again = roles.flatMap((role) =>
      (['ipv4', 'ipv6'] as const).flatMap((f) =>
        [1, 2, 12].map((n) => setName({ kind: 'allow', role, label: `allow#${n}` }, f)),
      ),
    );
    expect(again).toEqual(names);
    // A long name keeps a readable prefix and a hash of the whole role name: a fixed value, stable across releases.
    expect(setName({ kind: 'allow', role: 'a-very-long-role-name-for-hashing', label: 'allow#1' }, 'ipv4')).toBe(
      'fwgen-a-very-long-r+cc5b70-a1-4',
    );
  });

  it('stages a set under a name of the same length that is not fwgen-*', () => {
    expect(stagingSetName('fwgen-fleet-4')).toBe('fwgen~fleet-4');
    for (const n of names) expect(stagingSetName(n).length).toBe(n.length);
  });
});

describe('set emitter and parser', () => {
  it('parses ipset save output: members sorted by address, options kept', () => {
    const { sets, problems } = parseSets(SAVED);
    expect(problems).toEqual([]);
    expect(sets.map((s) => s.name)).toEqual(['fwgen-fleet-4', 'fwgen-fleet-6']);
    expect(sets[0]!.members).toEqual(['198.18.0.0/24', '198.18.1.11', '198.18.1.21']);
    expect(sets[1]!.members).toEqual(['2001:db8:18::/120', '2001:db8:18::11', '2001:db8:18::21']);
    expect(sets[0]!.options).toEqual([
      'hashsize',
      '1024',
      'maxelem',
      '65536',
      'bucketsize',
      '12',
      'initval',
      '0xa571bc82',
    ]);
  });

  it('round-trips: emit, parse, emit gives the same text', () => {
    const text = emitSets(parseSets(SAVED).sets);
    expect(emitSets(parseSets(text).sets)).toBe(text);
    expect(text.split('\n')[1]).toBe('add fwgen-fleet-4 198.18.0.0/24');
  });

  it('reports lines that are not sets', () => {
    const { problems } = parseSets('add nosuch 192.0.2.1\nflush\n');
    expect(problems.map((p) => p.line)).toEqual([1, 2]);
  });

  it('prints members as ipset save does, sorted numerically', () => {
    expect(canonicalMember('198.51.100.7/32')).toBe('198.51.100.7');
    expect(canonicalMember('2001:db8::/32')).toBe('2001:db8::/32');
    expect(canonicalMember('2001:db8::1/128')).toBe('2001:db8::1');
    expect(sortMembers(['198.51.100.10', '198.51.100.9', '10.0.0.0/8'])).toEqual([
      '10.0.0.0/8',
      '198.51.100.9',
      '198.51.100.10',
    ]);
  });

  it('builds a hash:net set, a /0 split into halves, maxelem raised for big lists', () => {
    expect(buildSet('s', { cidrs: ['0.0.0.0/0'], via: '' }, 'ipv4').members).toEqual(['0.0.0.0/1', '128.0.0.0/1']);
    const big = buildSet(
      'b',
      { cidrs: Array.from({ length: 70_000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32`), via: '' },
      'ipv4',
    );
    expect(big.options).toEqual(['hashsize', '1024', 'maxelem', '131072']);
    expect(big.family).toBe('inet');
  });

  it('lists the sets a ruleset matches', () => {
    const rs = parseRuleset(
      '*filter\n-A FWGEN-INPUT -m set --match-set fwgen-fleet-4 src -j ACCEPT\n-A FWGEN-INPUT -p tcp -m tcp --dport 22 -m set --match-set fwgen-mgmt-4 src -j ACCEPT\nCOMMIT\n',
    ).ruleset;
    expect(setsMatched(rs)).toEqual(['fwgen-fleet-4', 'fwgen-mgmt-4']);
  });
});

describe('diffSets: live sets against wanted ones', () => {
  const a = 'create fwgen-a-4 hash:net family inet hashsize 1024\nadd fwgen-a-4 198.18.0.1\nadd fwgen-a-4 198.18.0.2\n';
  it('is empty when the members match, whatever options and order the kernel prints', () => {
    const live =
      'create fwgen-a-4 hash:net family inet hashsize 4096 bucketsize 12\nadd fwgen-a-4 198.18.0.2\nadd fwgen-a-4 198.18.0.1\n';
    expect(diffSets(a, live)).toEqual([]);
  });
  it('names missing and extra members, missing and extra sets, and a set of another type', () => {
    const live =
      'create fwgen-a-4 hash:net family inet\nadd fwgen-a-4 198.18.0.1\nadd fwgen-a-4 198.18.0.3\n' +
      'create fwgen-b-4 hash:net family inet\ncreate fwgen-c-4 hash:ip family inet\n';
    const wanted = `${a}create fwgen-c-4 hash:net family inet\ncreate fwgen-d-6 hash:net family inet6\n`;
    expect(diffSets(wanted, live)).toEqual([
      '-add fwgen-a-4 198.18.0.2',
      '+add fwgen-a-4 198.18.0.3',
      '-create fwgen-c-4 hash:net family inet',
      '+create fwgen-c-4 hash:ip family inet',
      '-create fwgen-d-6 hash:net family inet6',
      '+create fwgen-b-4 hash:net family inet',
    ]);
  });
  it('with nothing wanted, every live set is extra', () => {
    expect(diffSets('', a)).toEqual(['+create fwgen-a-4 hash:net family inet']);
  });
});
