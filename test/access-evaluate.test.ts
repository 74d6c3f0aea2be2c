// The evaluator of src/access: one connection's decision (and the rule that made it), regions of
// connections, and the rule matcher it shares with the lockout check. Property tests pit the compiled
// evaluator against a plain walk of the rules with the matcher, the region answers against the single
// ones, and the matcher against the lockout check's own.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAddr, type Addr } from '../src/access/addresses.js';
import { accessOf, changeZone, decide, type Decision, type Place, type RulesetInput } from '../src/access/evaluate.js';
import { contains } from '../src/access/intervals.js';
import type { Region } from '../src/access/region.js';
import { matchRule, type IfaceClass, type Packet } from '../src/access/rule-match.js';
import { describeServices, service } from '../src/access/services.js';
import { emitRule } from '../src/model/emit.js';
import { parseRuleset } from '../src/model/parse.js';
import type { Rule } from '../src/model/ruleset.js';
import { matchRule as lockoutMatchRule, type Packet as LockoutPacket } from '../src/lockout/lockout-match.js';

const addr = (text: string): Addr => parseAddr(text)!.value;

/** A filter table from rule lines (`-A ...`) and extra chain declarations. */
function rules(lines: string, opts: { policy?: string; chains?: string[]; sets?: Record<string, string[]> } = {}) {
  const text = [
    '*filter',
    `:INPUT ${opts.policy ?? 'ACCEPT'} [0:0]`,
    ':OUTPUT ACCEPT [0:0]',
    ...(opts.chains ?? []).map((c) => `:${c} - [0:0]`),
    ...lines
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
    'COMMIT',
    '',
  ].join('\n');
  const { ruleset, problems } = parseRuleset(text);
  expect(problems).toEqual([]);
  return { ruleset, family: 'ipv4', sets: new Map(Object.entries(opts.sets ?? {})) } as RulesetInput;
}

const at = (local = '10.9.9.9', iface: IfaceClass = { name: 'eth1' }): Place => ({
  family: 'ipv4',
  local: addr(local),
  iface,
});

function judge(input: RulesetInput, from: string, port: string, place = at()): Decision {
  const [proto, n] = port.split('/') as ['tcp' | 'udp', string];
  return decide(input, place, { remote: addr(from), service: service(proto, Number(n)) });
}

const ruleOf = (d: Decision) => (d.rule ? emitRule(d.rule) : `policy ${d.policy}`);

describe('one connection: the verdict and the rule that decided', () => {
  const input = rules(
    `
    -A INPUT -j FW
    -A FW -i lo -j ACCEPT
    -A FW -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    -A FW -s 203.0.113.0/28 -p tcp -m tcp --dport 22 -m comment --comment "fwgen management ssh" -j ACCEPT
    -A FW -s 198.51.100.11/32 -i eth1 -m comment --comment "fwgen fleet web/web1" -j ACCEPT
    -A FW -s 198.51.100.12/31 -i eth1 -m comment --comment "fwgen fleet 2 hosts of web" -j ACCEPT
    -A FW -p tcp -m tcp --dport 80 -j ACCEPT
    -A FW -s 192.0.2.0/24 -p udp -m udp --dport 161 -j ACCEPT
    -A FW -m limit --limit 5/min -j LOG --log-prefix "denied: "
    -A FW -j REJECT --reject-with icmp-port-unreachable`,
    { chains: ['FW'] },
  );

  it('accepts by the first rule that matches, across a jump, and names it', () => {
    const d = judge(input, '203.0.113.5', 'tcp/22');
    expect(d.verdict).toBe('accept');
    expect(ruleOf(d)).toContain('fwgen management ssh');
    expect(d.chain).toBe('FW');
  });

  it('names the member of a run of rules merged by source that holds the address', () => {
    expect(ruleOf(judge(input, '198.51.100.13', 'tcp/5432'))).toContain('fwgen fleet 2 hosts of web');
    expect(ruleOf(judge(input, '198.51.100.11', 'udp/9'))).toContain('fwgen fleet web/web1');
  });

  it('an interface condition holds only on that interface', () => {
    expect(judge(input, '198.51.100.11', 'tcp/5432').verdict).toBe('accept');
    const other = judge(input, '198.51.100.11', 'tcp/5432', at('10.9.9.9', { except: ['eth1'] }));
    expect(other.verdict).toBe('deny');
    expect(ruleOf(other)).toContain('REJECT');
  });

  it('protocols and ports: udp/161 from the CIDR only, tcp/80 from anyone, the rest rejected', () => {
    expect(judge(input, '192.0.2.77', 'udp/161').verdict).toBe('accept');
    expect(judge(input, '192.0.2.77', 'tcp/161').verdict).toBe('deny');
    expect(judge(input, '8.8.8.8', 'tcp/80').verdict).toBe('accept');
    expect(judge(input, '8.8.8.8', 'udp/80').verdict).toBe('deny');
  });

  it('a chain that falls through ends in the policy, named as such', () => {
    const d = judge(rules('-A INPUT -s 10.0.0.0/8 -j DROP', { policy: 'DROP' }), '192.0.2.1', 'tcp/1');
    expect(d).toMatchObject({ verdict: 'deny', policy: 'DROP', chain: 'INPUT' });
    expect(judge(rules('-A INPUT -s 10.0.0.0/8 -j DROP'), '192.0.2.1', 'tcp/1')).toMatchObject({
      verdict: 'accept',
      policy: 'ACCEPT',
    });
  });

  it('RETURN goes back to the calling chain; a goto does not come back', () => {
    const chains = { chains: ['A'] };
    const jump = rules('-A INPUT -j A\n-A INPUT -j DROP\n-A A -s 10.0.0.0/8 -j RETURN\n-A A -j ACCEPT', chains);
    expect(judge(jump, '10.1.1.1', 'tcp/1').verdict).toBe('deny');
    expect(judge(jump, '192.0.2.1', 'tcp/1').verdict).toBe('accept');
    const viaGoto = rules('-A INPUT -g A\n-A INPUT -j DROP\n-A A -s 10.0.0.0/8 -j RETURN', chains);
    expect(judge(viaGoto, '10.1.1.1', 'tcp/1')).toMatchObject({ verdict: 'accept', policy: 'ACCEPT' });
  });

  it('a match it cannot read makes the verdict undetermined, naming the rule and the option', () => {
    const recent = rules(
      '-A INPUT -p tcp -m tcp --dport 22 -m recent --rcheck --seconds 60 --name ssh -j DROP\n-A INPUT -j ACCEPT',
    );
    const d = judge(recent, '192.0.2.1', 'tcp/22');
    expect(d.verdict).toBe('undetermined');
    expect(ruleOf(d)).toContain('-m recent --rcheck');
    expect(d.why).toBe('not understood: -m recent --rcheck --seconds --name');
    // Elsewhere the rule cannot match: decided.
    expect(judge(recent, '192.0.2.1', 'tcp/23').verdict).toBe('accept');
  });

  it('an unknown target is undetermined; LOG and friends are passed over', () => {
    expect(judge(rules('-A INPUT -j MARK --set-mark 1\n-A INPUT -j DROP'), '192.0.2.1', 'tcp/1')).toMatchObject({
      verdict: 'undetermined',
      why: 'target MARK is not known to accept or deny',
    });
    expect(judge(rules('-A INPUT -j LOG\n-A INPUT -j DROP'), '192.0.2.1', 'tcp/1').verdict).toBe('deny');
  });

  it('ipset members decide a --match-set rule; a set without members is undetermined', () => {
    const withSet = rules('-A INPUT -m set --match-set S src -j ACCEPT\n-A INPUT -j DROP', {
      sets: { S: ['192.0.2.0/25', '198.51.100.7'] },
    });
    expect(judge(withSet, '192.0.2.100', 'tcp/1').verdict).toBe('accept');
    expect(judge(withSet, '198.51.100.7', 'tcp/1').verdict).toBe('accept');
    expect(judge(withSet, '192.0.2.200', 'tcp/1').verdict).toBe('deny');
    const noMembers = rules('-A INPUT -m set --match-set T src -j ACCEPT\n-A INPUT -j DROP');
    expect(judge(noMembers, '192.0.2.100', 'tcp/1').verdict).toBe('undetermined');
  });

  it('replies: an OUTPUT rule that drops them denies the connection, named with the packets it stopped', () => {
    const out = rules('-A INPUT -j ACCEPT\n-A OUTPUT -p tcp -m tcp --sport 22 -j DROP');
    const d = judge(out, '192.0.2.1', 'tcp/22');
    expect(d).toMatchObject({ verdict: 'deny', packets: 'replies', chain: 'OUTPUT' });
    expect(judge(out, '192.0.2.1', 'tcp/23').verdict).toBe('accept');
  });

  it('a rule for the host`s own address (-d) holds only for hosts with that address', () => {
    const local = rules('-A INPUT -d 10.9.9.9/32 -j DROP');
    expect(judge(local, '192.0.2.1', 'tcp/1', at('10.9.9.9')).verdict).toBe('deny');
    expect(judge(local, '192.0.2.1', 'tcp/1', at('10.9.9.8')).verdict).toBe('accept');
  });
});

describe('regions of connections', () => {
  it('every port a source may reach, as a reader says it', () => {
    const input = rules(
      '-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 8000:8100 -j ACCEPT\n-A INPUT -j DROP',
    );
    const acc = accessOf(input, at());
    expect(describeServices(servicesFor(acc.accept, addr('192.0.2.1')))).toEqual(['tcp/80', 'tcp/8000-8100']);
    const open = accessOf(rules('-A INPUT -p tcp -m tcp --dport 25 -j DROP'), at());
    expect(describeServices(servicesFor(open.accept, addr('192.0.2.1')))).toEqual(['every port except tcp/25']);
  });

  it('changeZone: a ruleset against itself may differ nowhere; one more source only at that source', () => {
    const a = rules('-A INPUT -s 10.0.0.1/32 -j ACCEPT\n-A INPUT -s 10.0.0.2/32 -j ACCEPT\n-A INPUT -j DROP');
    const b = rules('-A INPUT -s 10.0.0.1/32 -j ACCEPT\n-A INPUT -s 10.0.0.3/32 -j ACCEPT\n-A INPUT -j DROP');
    expect(changeZone(a, a)!.sets.every((s) => s.length === 0)).toBe(true);
    const zone = changeZone(a, b)!;
    const where = (ip: string) => zone.sets.some((s) => contains(s, addr(ip)));
    expect([where('10.0.0.1'), where('10.0.0.2'), where('10.0.0.3')]).toEqual([false, true, true]);
  });
});

function servicesFor(region: Region, remote: Addr): number[] {
  const out: number[] = [];
  for (let i = 0; i < region.sets.length; i++) {
    if (!contains(region.sets[i]!, remote)) continue;
    const [lo, hi] = [region.bounds[i]!, region.bounds[i + 1]!];
    if (out.length > 0 && out[out.length - 1] === lo) out[out.length - 1] = hi;
    else out.push(lo, hi);
  }
  return out;
}

// ---- properties ------------------------------------------------------------------------------------------

const SOURCES = ['', '-s 10.0.0.0/8', '-s 10.1.2.3/32', '! -s 10.0.0.0/16', '-m set --match-set S src', '-s nonsense'];
const DESTS = ['', '-d 127.0.0.0/8', '-d 10.9.9.9/32', '! -d 10.9.9.8/32'];
const PORTS = [
  '',
  '-p tcp -m tcp --dport 22',
  '-p udp -m udp --dport 53',
  '-p tcp -m tcp --dport 1000:2000',
  '-p tcp -m multiport --dports 80,443',
  '-p tcp -m tcp ! --dport 22',
  '-p icmp -m icmp --icmp-type 8',
  '-p tcp -m tcp --sport 1024:65535',
  '-p tcp -m tcp --sport 22',
  '-p tcp -m multiport --ports 22,80',
  '-p tcp -m tcp --dport ssh',
];
const IFACES = ['', '-i eth1', '! -i eth1', '-i lo', '-i eth+', '-o eth1'];
const STATES = [
  '',
  '-m conntrack --ctstate NEW',
  '-m conntrack --ctstate RELATED,ESTABLISHED',
  '-m state --state INVALID',
];
const EXTRAS = ['', '', '', '-m recent --rcheck --seconds 60', '-m limit --limit 5/min', '-m conntrack --ctdir REPLY'];
const TARGETS = ['-j ACCEPT', '-j DROP', '-j REJECT', '-j RETURN', '-j LOG', '-j A', '-g A', '-j MARK --set-mark 1'];

const ruleArb = (chain: string) =>
  fc
    .tuple(
      fc.constantFrom(...SOURCES),
      fc.constantFrom(...DESTS),
      fc.constantFrom(...PORTS),
      fc.constantFrom(...IFACES),
      fc.constantFrom(...STATES),
      fc.constantFrom(...EXTRAS),
      fc.constantFrom(...(chain === 'A' ? TARGETS.filter((t) => !t.endsWith(' A')) : TARGETS)),
    )
    .map((parts) => `-A ${chain} ${parts.filter(Boolean).join(' ')}`);

const rulesetArb = fc
  .record({
    input: fc.array(ruleArb('INPUT'), { maxLength: 6 }),
    a: fc.array(ruleArb('A'), { maxLength: 4 }),
    output: fc.array(ruleArb('OUTPUT'), { maxLength: 2 }),
    policy: fc.constantFrom('ACCEPT', 'DROP'),
    // Runs of rules differing only in their source are merged by the compiler: make some.
    run: fc.array(fc.constantFrom('10.0.0.1/32', '10.0.0.2/31', '10.1.0.0/16', '192.0.2.0/24'), { maxLength: 4 }),
    runTail: fc.constantFrom('-p tcp -m tcp --dport 22 -j ACCEPT', '-i eth1 -j DROP', '-j A'),
  })
  .map(({ input, a, output, policy, run, runTail }) =>
    rules([...run.map((c) => `-A INPUT -s ${c} ${runTail}`), ...input, ...a, ...output].join('\n'), {
      policy,
      chains: ['A'],
      sets: { S: ['10.1.0.0/16', '192.0.2.7'] },
    }),
  );

const pointArb = fc.record({
  remote: fc.constantFrom('10.0.0.1', '10.0.0.3', '10.1.2.3', '10.2.0.1', '192.0.2.7', '192.0.2.200', '127.0.0.1'),
  port: fc.constantFrom('tcp/22', 'tcp/80', 'tcp/1500', 'tcp/8080', 'udp/53', 'udp/22', 'tcp/1'),
  local: fc.constantFrom('10.9.9.9', '10.9.9.8'),
  iface: fc.constantFrom<IfaceClass>({ name: 'eth1' }, { name: 'eth0' }, { except: ['eth1'] }, { except: [] }),
});

const HARMLESS = new Set(['LOG', 'NFLOG', 'ULOG', 'TRACE', 'AUDIT', 'TCPMSS', 'CHECKSUM']);

/** A plain walk of the rules with the matcher, packet by packet, as netfilter would (filter table only). */
function reference(input: RulesetInput, place: Place, remote: string, port: string): Decision['verdict'] {
  const [proto, n] = port.split('/') as ['tcp' | 'udp', string];
  const local = ipOf(place.local);
  const table = input.ruleset.tables[0]!;
  const chains = new Map<string, Rule[]>();
  for (const r of table.rules as Rule[]) chains.set(r.chain, [...(chains.get(r.chain) ?? []), r]);
  const declared = new Set(table.chains.map((c) => c.name));
  const walk = (chain: string, p: Packet, depth: number): 'accept' | 'deny' | 'undetermined' | 'fall' => {
    if (depth > 16) return 'undetermined';
    for (const r of chains.get(chain) ?? []) {
      const m = matchRule(r.args, p);
      if (m.target === '' || HARMLESS.has(m.target) || m.match === 'no') continue;
      if (m.match === 'unknown') return 'undetermined';
      if (m.target === 'ACCEPT') return 'accept';
      if (m.target === 'DROP' || m.target === 'REJECT') return 'deny';
      if (m.target === 'RETURN') return 'fall';
      if (declared.has(m.target)) {
        const inner = walk(m.target, p, depth + 1);
        if (inner !== 'fall' || m.goto) return inner;
        continue;
      }
      return 'undetermined';
    }
    return 'fall';
  };
  const client = { address: remote, port: [1024, 65535] as const };
  const server = { address: local, port: [Number(n), Number(n)] as const };
  const common = { proto, ifaceClass: place.iface, sets: input.sets };
  const packets: [string, Packet][] = [
    ['INPUT', { state: 'NEW', dir: 'ORIGINAL', src: client, dst: server, iface: '-i', ...common }],
    ['INPUT', { state: 'ESTABLISHED', dir: 'ORIGINAL', src: client, dst: server, iface: '-i', ...common }],
    ['OUTPUT', { state: 'ESTABLISHED', dir: 'REPLY', src: server, dst: client, iface: '-o', ...common }],
  ];
  for (const [chain, p] of packets) {
    let v = walk(chain, p, 0);
    if (v === 'fall')
      v = (table.chains.find((c) => c.name === chain)?.policy ?? 'ACCEPT') === 'ACCEPT' ? 'accept' : 'deny';
    if (v !== 'accept') return v;
  }
  return 'accept';
}

function ipOf(a: Addr): string {
  const n = a as number;
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

describe('properties', () => {
  it('the compiled evaluator decides every connection as a plain walk of the rules does', () => {
    fc.assert(
      fc.property(rulesetArb, pointArb, (input, p) => {
        const place = at(p.local, p.iface);
        expect(judge(input, p.remote, p.port, place).verdict).toBe(reference(input, place, p.remote, p.port));
      }),
      { numRuns: 400 },
    );
  });

  it('regions agree with single decisions: accepted, undetermined, or neither (denied)', () => {
    fc.assert(
      fc.property(rulesetArb, fc.array(pointArb, { minLength: 1, maxLength: 8 }), (input, points) => {
        for (const p of points) {
          const place = at(p.local, p.iface);
          const access = accessOf(input, place);
          const [proto, n] = p.port.split('/') as ['tcp' | 'udp', string];
          const svc = service(proto, Number(n));
          const inRegion = (r: Region) =>
            r.sets.some((s, i) => r.bounds[i]! <= svc && svc < r.bounds[i + 1]! && contains(s, addr(p.remote)));
          const verdict = inRegion(access.accept) ? 'accept' : inRegion(access.undetermined) ? 'undetermined' : 'deny';
          expect(verdict).toBe(judge(input, p.remote, p.port, place).verdict);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('changeZone: outside the zone two random rulesets decide alike', () => {
    fc.assert(
      fc.property(rulesetArb, rulesetArb, fc.array(pointArb, { minLength: 1, maxLength: 8 }), (a, b, points) => {
        const zone = changeZone(a, b);
        for (const p of points) {
          const [proto, n] = p.port.split('/') as ['tcp' | 'udp', string];
          const svc = service(proto, Number(n));
          const inZone =
            zone === undefined ||
            zone.sets.some(
              (s, i) => zone.bounds[i]! <= svc && svc < zone.bounds[i + 1]! && contains(s, addr(p.remote)),
            );
          const place = at(p.local, p.iface);
          if (!inZone)
            expect(judge(a, p.remote, p.port, place).verdict).toBe(judge(b, p.remote, p.port, place).verdict);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("the matcher is the lockout check's matcher on the lockout check's packets (lockout-match.ts can import it)", () => {
    const arb = fc.tuple(
      fc.constantFrom(...SOURCES, '-s 198.51.100.7', '-s 2001:db8::/32'),
      fc.constantFrom(...DESTS, '-d ::1/128'),
      fc.constantFrom(...PORTS),
      fc.constantFrom(...IFACES, '! -i lo', '-o lo'),
      fc.constantFrom(...STATES),
      fc.constantFrom(...EXTRAS),
      fc.constantFrom(...TARGETS, '-j REJECT --reject-with tcp-reset', '-j DNAT --to-destination 10.0.0.1:22'),
      fc.constantFrom('NEW', 'ESTABLISHED'),
      fc.constantFrom('ORIGINAL', 'REPLY'),
      fc.constantFrom('-i', '-o'),
      fc.constantFrom(undefined, '198.51.100.7', '10.1.2.3', '2001:db8::1'),
      fc.constantFrom(22, 80, 2000),
    );
    fc.assert(
      fc.property(arb, ([s, d, p, i, st, x, t, state, dir, iface, address, port]) => {
        const args = [s, d, p, i, st, x, t].filter(Boolean).join(' ').split(' ');
        const packet: LockoutPacket = {
          label: 'new connection',
          state: state as 'NEW',
          dir: dir as 'ORIGINAL',
          src: { ...(address ? { address } : {}), port: [1024, 65535] },
          dst: { port: [port, port] },
          iface: iface as '-i',
          sets: new Map([['S', ['10.1.0.0/16', '192.0.2.7']]]),
        };
        expect(matchRule(args, packet)).toEqual(lockoutMatchRule(args, packet));
      }),
      { numRuns: 1000 },
    );
  });
});
