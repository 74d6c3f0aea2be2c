/**
 * The lockout check over every table and chain an SSH connection and its replies cross (issue 8):
 * each case that once passed the check and locked a host out, in both families, and the safe files.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRulesText, describeVerdict, evaluateInput } from '../src/lockout/lockout.js';

const FAMILIES = [
  {
    name: 'IPv4',
    mgmt: '198.18.0.0/15',
    deployer: '198.18.0.1',
    stranger: '192.0.2.1',
    reject: 'icmp-port-unreachable',
    ping: '-p icmp -m icmp --icmp-type 8',
    other: '192.0.2.55',
  },
  {
    name: 'IPv6',
    mgmt: '2001:db8:ffff::/48',
    deployer: '2001:db8:ffff::1',
    stranger: '2001:db8:1::1',
    reject: 'icmp6-port-unreachable',
    ping: '-p ipv6-icmp -m icmp6 --icmpv6-type 128',
    other: '2001:db8:1::55',
  },
] as const;

describe.each(FAMILIES)('lockout check over every table, $name', (f) => {
  /** A filter table that admits SSH from the management network, with OUTPUT rules and policy given. */
  const filter = (output = '', outputPolicy = 'ACCEPT') =>
    `*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ${outputPolicy} [0:0]\n` +
    '-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n' +
    `-A INPUT -s ${f.mgmt} -p tcp -m tcp --dport 22 -m comment --comment "mgmt ssh" -j ACCEPT\n` +
    `-A INPUT ${f.ping} -j ACCEPT\n-A INPUT -j REJECT --reject-with ${f.reject}\n${output}COMMIT\n`;
  const table = (name: string, chains: string[]) => (rules: string) =>
    `*${name}\n${chains.map((c) => `:${c} ACCEPT [0:0]\n`).join('')}${rules}COMMIT\n`;
  const nat = table('nat', ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
  const sec = table('security', ['INPUT', 'FORWARD', 'OUTPUT']);
  const raw = table('raw', ['PREROUTING', 'OUTPUT']);
  const mangle = table('mangle', ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);
  const check = (text: string, source: string = f.deployer) => checkRulesText(text, { source, dport: 22 });
  /** Expects the file (the extra table, then the filter table) to be refused where `expected` says. */
  const refused = (text: string, expected: Record<string, unknown>) =>
    expect(check(text.includes('*filter') ? text : text + filter())).toMatchObject({ admitted: false, ...expected });
  const admitted = (text: string) =>
    expect(check(text.includes('*filter') ? text : text + filter()).admitted).toBe(true);

  it('admits the deployer through the filter table alone, naming the ACCEPT of filter INPUT', () => {
    const v = check(filter());
    expect(v).toMatchObject({ admitted: true, table: 'filter', chain: 'INPUT', packets: 'new connection' });
    expect(v.rule).toContain('mgmt ssh');
    const reject = `-A INPUT -j REJECT --reject-with ${f.reject}`;
    expect(check(filter(), f.stranger)).toMatchObject({ admitted: false, rule: reject });
  });

  it('refuses a nat REDIRECT or DNAT of the SSH port, naming table, chain and rule', () => {
    const v = check(nat('-A PREROUTING -p tcp -m tcp --dport 22 -j REDIRECT --to-ports 2222\n') + filter());
    expect(v).toMatchObject({ admitted: false, table: 'nat', chain: 'PREROUTING', packets: 'new connection' });
    expect(describeVerdict(v)).toBe(
      'table nat, chain PREROUTING, new connection: -A PREROUTING -p tcp -m tcp --dport 22 -j REDIRECT --to-ports 2222' +
        ' (it may redirect the connection to another port)',
    );
    const to = f.name === 'IPv4' ? f.other : `[${f.other}]`;
    const dnat = `-A PREROUTING -s ${f.mgmt} -p tcp -m tcp --dport 22 -j DNAT --to-destination ${to}:22\n`;
    refused(nat(dnat), { table: 'nat', why: expect.stringContaining('destination') });
    // A DNAT in a chain reached by a jump that may be taken, whose own matches are not understood.
    const maybe =
      ':MAYBE - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j MAYBE\n' +
      '-A MAYBE -m recent --rcheck -j DNAT --to-destination 198.18.9.9\n';
    refused(nat(maybe), {
      rule: expect.stringContaining('-A MAYBE'),
      why: expect.stringContaining('assumed to match'),
    });
  });

  it('refuses an unknown target and a source rewrite in nat, and admits nat rules that cannot match SSH', () => {
    refused(nat('-A PREROUTING -p tcp -j NETMAP --to 198.18.9.0/24\n'), { chain: 'PREROUTING' });
    refused(nat('-A PREROUTING -p tcp -j FROBNICATE\n'), { why: 'target FROBNICATE is not known to leave it alone' });
    refused(nat(`-A INPUT -p tcp -m tcp --dport 22 -j SNAT --to-source ${f.other}\n`), {
      table: 'nat',
      chain: 'INPUT',
    });
    admitted(
      nat('-A PREROUTING -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 80\n-A PREROUTING -p udp -j REDIRECT\n'),
    );
    admitted(nat(`-A PREROUTING -s ${f.stranger} -p tcp -j REDIRECT --to-ports 2222\n`));
  });

  it('does not read nat OUTPUT or POSTROUTING for the replies, which never are a first packet', () => {
    admitted(
      nat('-A OUTPUT -p tcp -m tcp --sport 22 -j DNAT --to-destination 198.18.9.9\n-A POSTROUTING -j MASQUERADE\n'),
    );
  });

  it('refuses a drop or an unknown target in the security table, for the connection and for its replies', () => {
    refused(sec('-A INPUT -p tcp -m tcp --dport 22 -j DROP\n'), { table: 'security', chain: 'INPUT' });
    refused(sec('-A OUTPUT -p tcp -m tcp --sport 22 -j DROP\n'), {
      table: 'security',
      chain: 'OUTPUT',
      packets: 'replies',
    });
    refused(sec('-A INPUT -j SECMARK --selctx system_u:object_r:bogus_t:s0\n'), {
      why: expect.stringContaining('SECMARK'),
    });
    refused('*security\n:INPUT DROP [0:0]\nCOMMIT\n', { table: 'security', rule: 'policy DROP' });
    admitted(sec('-A INPUT -p udp -j DROP\n-A OUTPUT -p tcp -m tcp --sport 443 -j DROP\n'));
  });

  it('refuses a drop or a conntrack change in the raw table, in PREROUTING and OUTPUT', () => {
    refused(raw(`-A PREROUTING -s ${f.mgmt} -j DROP\n`), { table: 'raw', chain: 'PREROUTING' });
    refused(raw('-A OUTPUT -p tcp -m tcp --sport 22 -j DROP\n'), { table: 'raw', chain: 'OUTPUT', packets: 'replies' });
    refused(raw('-A PREROUTING -p tcp -m tcp --dport 22 -j CT --notrack\n'), { why: expect.stringContaining('CT') });
    admitted(raw('-A PREROUTING -p udp -j DROP\n-A OUTPUT -j LOG --log-prefix "raw out "\n'));
  });

  it('refuses mangle rules that drop or reroute, in PREROUTING, INPUT, OUTPUT and POSTROUTING', () => {
    refused(mangle('-A INPUT -p tcp -j DROP\n'), { table: 'mangle', chain: 'INPUT' });
    refused(mangle('-A PREROUTING -j TTL --ttl-set 1\n'), { table: 'mangle', chain: 'PREROUTING' });
    const mark = '-A OUTPUT -p tcp -m tcp --sport 22 -j MARK --set-xmark 0x1/0xffffffff\n';
    refused(mangle(mark), { table: 'mangle', chain: 'OUTPUT', packets: 'replies' });
    refused(mangle(`-A POSTROUTING -d ${f.mgmt} -j DROP\n`), { chain: 'POSTROUTING', packets: 'replies' });
    admitted(mangle('-A PREROUTING -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n'));
  });

  it('refuses an OUTPUT rule that drops or rejects the replies, and OUTPUT policy DROP without an accept for them', () => {
    const drop = '-A OUTPUT -p tcp -m tcp --sport 22 -j DROP';
    refused(filter(`${drop}\n`), { table: 'filter', chain: 'OUTPUT', packets: 'replies', rule: drop });
    const reject = `-A OUTPUT -m conntrack --ctstate ESTABLISHED -j REJECT --reject-with ${f.reject}`;
    refused(filter(`${reject}\n`), { chain: 'OUTPUT', rule: reject });
    refused(filter('', 'DROP'), { table: 'filter', chain: 'OUTPUT', rule: 'policy DROP', packets: 'replies' });
    refused(filter('-A OUTPUT -p tcp -m tcp --dport 22 -j ACCEPT\n', 'DROP'), { rule: 'policy DROP' });
  });

  it('admits OUTPUT rules that cannot meet the replies, and an OUTPUT policy DROP with an accept for them', () => {
    admitted(filter('-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n', 'DROP'));
    admitted(filter('-A OUTPUT -p tcp -m tcp --sport 22 -j ACCEPT\n', 'DROP'));
    admitted(filter(`-A OUTPUT -d ${f.mgmt} -j ACCEPT\n`, 'DROP'));
    // Clients connect from unprivileged ports: blocking outgoing SMTP does not touch the replies.
    admitted(
      filter('-A OUTPUT -p tcp -m tcp --dport 25 -j DROP\n-A OUTPUT -p tcp -m multiport --sports 80,443 -j DROP\n'),
    );
    admitted(filter('-A OUTPUT -m conntrack --ctstate NEW -j DROP\n-A OUTPUT -o lo -j DROP\n'));
    // ...but a client port may be 8080.
    refused(filter('-A OUTPUT -p tcp -m tcp --dport 8080 -j DROP\n'), { chain: 'OUTPUT' });
  });

  it("follows jumps from OUTPUT into user chains, as fwgen's own FWGEN-OUTPUT", () => {
    const drop = '-A FWGEN-OUTPUT -p tcp -m tcp --sport 22 -j DROP';
    refused(filter(`:FWGEN-OUTPUT - [0:0]\n-A OUTPUT -j FWGEN-OUTPUT\n${drop}\n`), { chain: 'OUTPUT', rule: drop });
  });

  it("refuses rules that accept the first packet but drop the client's later ones", () => {
    const onlyNew = `-A INPUT -s ${f.mgmt} -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT`;
    const text = `*filter\n:INPUT DROP [0:0]\n${onlyNew}\nCOMMIT\n`;
    refused(text, { chain: 'INPUT', packets: 'client packets', rule: 'policy DROP' });
  });
});

describe('lockout check: reading rules', () => {
  const probe = { source: '198.18.0.1', dport: 22 };
  const check = (rules: string) => evaluateInput(`*filter\n:INPUT DROP [0:0]\n${rules}COMMIT\n`, probe);

  it('reads matches written after the target, and does not resolve service names', () => {
    expect(check('-A INPUT -j ACCEPT -s 10.0.0.0/8\n').admitted).toBe(false);
    expect(check('-A INPUT -j ACCEPT -s 198.18.0.0/15\n').admitted).toBe(true);
    expect(check('-A INPUT -p tcp -m tcp --dport ssh -j ACCEPT\n').admitted).toBe(false);
    expect(check('-A INPUT -p tcp -m tcp --dport 1:1024 -j ACCEPT\n').admitted).toBe(true);
    expect(check('-A INPUT -p tcp -m multiport --dports 80,20:30 -j ACCEPT\n').admitted).toBe(true);
  });

  it('does not trust a rate-limited ACCEPT', () => {
    expect(check('-A INPUT -p tcp -m tcp --dport 22 -m limit --limit 5/min -j ACCEPT\n').admitted).toBe(false);
  });

  it('refuses text the parser does not understand, naming the line', () => {
    const v = checkRulesText('*filter\n:INPUT ACCEPT [0:0]\n-I INPUT -j ACCEPT\nCOMMIT\n', probe);
    expect(v).toMatchObject({ admitted: false, rule: 'line 3: -I INPUT -j ACCEPT' });
  });

  it("admits a real Docker host's iptables-save (a nat DNAT of another port), and refuses a DNAT of SSH there", () => {
    const docker = readFileSync('test/fixtures/iptables-save/docker-full.txt', 'utf8');
    expect(evaluateInput(docker, probe)).toEqual({ admitted: true, rule: 'policy ACCEPT' });
    const dnat = '-A DOCKER ! -i docker0 -p tcp -m tcp --dport 22 -j DNAT --to-destination 198.19.255.2:22';
    const hijacked = docker.replace('-A DOCKER -i docker0', `${dnat}\n-A DOCKER -i docker0`);
    const v = checkRulesText(hijacked, probe);
    expect(v).toMatchObject({ admitted: false, table: 'nat', chain: 'PREROUTING', rule: dnat });
  });
});

describe("lockout check on the example inventory's rendered files", () => {
  const files = readdirSync('rendered').flatMap((role) =>
    ['iptables.up.rules', 'ip6tables.up.rules'].map((file) => ({
      role,
      file,
      text: readFileSync(join('rendered', role, file), 'utf8'),
    })),
  );

  it('has files of both families to check', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
  });

  it.each(files)('$role/$file admits SSH from a management address and refuses it from another', ({ file, text }) => {
    const [mgmt, other] = file.startsWith('ip6')
      ? ['2001:db8:ffff::5', '2001:db8:1::1']
      : ['203.0.113.5', '198.18.0.1'];
    // web2 connects on 2222, so the web role's files open it to management too.
    for (const dport of text.includes('--dport 2222') ? [22, 2222] : [22]) {
      const ok = checkRulesText(text, { source: mgmt, dport });
      expect(ok).toMatchObject({ admitted: true, table: 'filter', chain: 'INPUT' });
      expect(ok.rule).toContain('fwgen management ssh');
      const refused = checkRulesText(text, { source: other, dport });
      expect(refused).toMatchObject({ admitted: false, table: 'filter', chain: 'INPUT', packets: 'new connection' });
      const reject = /^table filter, chain INPUT, new connection: -A FWGEN-INPUT .*"fwgen default reject" -j REJECT/;
      expect(describeVerdict(refused)).toMatch(reject);
    }
  });
});
