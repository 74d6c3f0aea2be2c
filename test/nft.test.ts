/**
 * Native nftables, read from `nft -j list ruleset` (a recorded ruleset: test/fixtures/nft/mixed.json,
 * a native `inet filter` with an input chain that drops tcp/22 and tcp/80 unless accepted earlier in
 * it, a native table that accepts everything, and iptables-nft's own `ip filter`), and judged for the
 * packets of an SSH connection or of a flow fwgen accepts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { judgeNative, sshPackets, type NftPacket } from '../src/lockout/nft-eval.js';
import { baseChains, describeChain, parseNftJson } from '../src/model/nft.js';

const tables = parseNftJson(readFileSync('test/fixtures/nft/mixed.json', 'utf8'));
const first = (source: string, dport: number) => sshPackets(source, dport).map((p) => judgeNative(tables, p));

describe('parseNftJson', () => {
  it("keeps the native tables, leaves out iptables-nft's own, and orders base chains by priority", () => {
    expect(tables.map((t) => `${t.family} ${t.name}`)).toEqual(['inet filter', 'inet open']);
    expect(baseChains(tables).map(describeChain)).toEqual([
      'inet filter input (hook input, priority 0, policy accept)',
      'inet open output (hook output, priority 0, policy accept)',
      'inet open input (hook input, priority 10, policy accept)',
    ]);
  });
  it('reads nothing from what is not nft JSON', () => {
    expect(parseNftJson(undefined)).toEqual([]);
    expect(parseNftJson('not json')).toEqual([]);
    expect(parseNftJson('{"nftables": 3}')).toEqual([]);
  });
});

describe('judgeNative', () => {
  it('lets SSH through from the source the chain accepts before its drop', () => {
    expect(first('192.0.2.5', 22)).toEqual([undefined, undefined, undefined]);
  });

  it('names the chain and rule that drop SSH from anyone else (the new connection)', () => {
    expect(first('198.51.100.9', 22)[0]).toEqual({
      chain: 'inet filter input (hook input, priority 0, policy accept)',
      rule: 'tcp dport { 22, 80 } drop comment "no web here"',
      certain: true,
      packets: 'new connection',
    });
    // Established packets are accepted by the chain's first rule.
    expect(first('198.51.100.9', 22)[1]).toBeUndefined();
  });

  it('follows jumps: a chain that returns for one source and drops the others', () => {
    expect(first('10.1.2.3', 1500)[0]).toBeUndefined();
    expect(first('192.0.2.7', 1500)[0]).toMatchObject({ rule: 'drop', certain: true });
  });

  it('a match it does not understand may hit: an ACCEPT behind it does not count, a DROP is a risk', () => {
    const withLimit = parseNftJson(
      JSON.stringify({
        nftables: [
          { table: { family: 'inet', name: 't' } },
          {
            chain: { family: 'inet', table: 't', name: 'in', hook: 'input', prio: 0, policy: 'accept', type: 'filter' },
          },
          {
            rule: {
              family: 'inet',
              table: 't',
              chain: 'in',
              expr: [{ match: { op: '==', left: { fib: { result: 'type' } }, right: 'local' } }, { drop: null }],
            },
          },
        ],
      }),
    );
    expect(sshPackets('192.0.2.5', 22).map((p) => judgeNative(withLimit, p)?.certain)).toEqual([
      false,
      false,
      undefined,
    ]);
  });

  it('IPv6 packets meet inet and ip6 chains, not ip ones; udp is not tcp', () => {
    const v6: NftPacket = { ...sshPackets('2001:db8::5', 8080)[0] };
    expect(judgeNative(tables, v6)).toMatchObject({ rule: 'ip6 saddr 2001:db8::/32 tcp dport 8080 drop' });
    const udp: NftPacket = { ...sshPackets('198.51.100.9', 22)[0], proto: 'udp' };
    expect(judgeNative(tables, udp)).toBeUndefined();
  });

  it('looks named sets up (fail2ban with nftables bans into one, with timeouts)', () => {
    const banned = parseNftJson(
      JSON.stringify({
        nftables: [
          { table: { family: 'inet', name: 'f2b-table' } },
          {
            set: {
              family: 'inet',
              table: 'f2b-table',
              name: 'addr-set-sshd',
              type: 'ipv4_addr',
              elem: [{ elem: { val: '203.0.113.50', timeout: 600 } }, { prefix: { addr: '198.51.100.0', len: 28 } }],
            },
          },
          {
            chain: {
              family: 'inet',
              table: 'f2b-table',
              name: 'f2b-chain',
              hook: 'input',
              prio: -1,
              policy: 'accept',
              type: 'filter',
            },
          },
          {
            rule: {
              family: 'inet',
              table: 'f2b-table',
              chain: 'f2b-chain',
              expr: [
                { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: { set: [22] } } },
                { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@addr-set-sshd' } },
                { reject: null },
              ],
            },
          },
        ],
      }),
    );
    expect(judgeNative(banned, sshPackets('203.0.113.50', 22)[0])).toMatchObject({
      certain: true,
      rule: 'tcp dport { 22 } ip saddr @addr-set-sshd reject',
    });
    expect(judgeNative(banned, sshPackets('198.51.100.3', 22)[0])).toMatchObject({ certain: true });
    expect(judgeNative(banned, sshPackets('192.0.2.5', 22)[0])).toBeUndefined();
  });
});
