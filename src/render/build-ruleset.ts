import type { Family } from '../inventory/model.js';
import type { IpSet, Rule, RuleBlock, Ruleset } from '../model/ruleset.js';
import type { AddressList, FleetSource, RolePolicy, SetLists } from '../resolve/policy.js';
import { buildSet, setName } from './build-sets.js';

/** fwgen's chains, one per built-in chain of the filter table it hooks into. */
export const FWGEN_CHAINS = { INPUT: 'FWGEN-INPUT', FORWARD: 'FWGEN-FORWARD', OUTPUT: 'FWGEN-OUTPUT' } as const;

const REJECT_WITH: Record<Family, string> = { ipv4: 'icmp-port-unreachable', ipv6: 'icmp6-port-unreachable' };
const PING: Record<Family, string[]> = {
  ipv4: ['-p', 'icmp', '-m', 'icmp', '--icmp-type', '8'],
  ipv6: ['-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', '128'],
};
// Neighbour discovery (133-136) must pass or IPv6 stops working on the link; hop limit 255 proves it is link-local.
const NDP_TYPES: Record<Family, number[]> = { ipv4: [], ipv6: [133, 134, 135, 136] };

const comment = (text: string): string[] => ['-m', 'comment', '--comment', `fwgen ${text}`];
const accept = (chain: string, args: string[], why: string): Rule => ({
  chain,
  args: [...args, ...comment(why), '-j', 'ACCEPT'],
});
const port = (p: { proto: string; dport: string }): string[] => ['-p', p.proto, '-m', p.proto, '--dport', p.dport];

/** Verbatim rules from a role template's `extra` block, already parsed and checked, per fwgen chain. */
export type ExtraRules = readonly Rule[];

const fleetBlocks = new WeakMap<readonly FleetSource[], RuleBlock>();

/** The fleet-trust rules, built once per family and shared by every role's ruleset. */
function fleetBlock(policy: RolePolicy): RuleBlock {
  let block = fleetBlocks.get(policy.fleet);
  if (!block) {
    const iface = policy.interface ? ['-i', policy.interface] : [];
    const rules = policy.fleet.map((f) => accept(FWGEN_CHAINS.INPUT, ['-s', f.cidr, ...iface], `fleet ${f.label}`));
    block = { chain: FWGEN_CHAINS.INPUT, rules };
    fleetBlocks.set(policy.fleet, block);
  }
  return block;
}

const matchSet = (name: string): string[] => ['-m', 'set', '--match-set', name, 'src'];

/** The rules that match address lists (management, fleet, allow), per CIDR or, in ipset mode, per set. */
interface ListRules {
  readonly management: Rule[];
  readonly fleet: Rule | RuleBlock;
  readonly allow: Rule[];
  readonly sets: IpSet[];
}

function listRules(p: RolePolicy): ListRules {
  const IN = FWGEN_CHAINS.INPUT;
  // iptables-save prints -s before -p, and matches (-m set) after it.
  const ssh = (src: string[], match: string[] = []): Rule[] =>
    p.sshPorts.map((sp) =>
      accept(IN, [...src, ...port({ proto: 'tcp', dport: String(sp) }), ...match], 'management ssh'),
    );
  if (!p.lists) {
    return {
      management: p.management.flatMap((net) => ssh(['-s', net])),
      fleet: fleetBlock(p),
      allow: p.allow.map((a) => accept(IN, ['-s', a.cidr, ...port(a.port)], `${p.role} ${a.label} from ${a.via}`)),
      sets: [],
    };
  }
  return setRules(p, p.lists, ssh);
}

/** ipset mode: one rule per list (per port), matching the list's set; lists without members have neither. */
function setRules(p: RolePolicy, lists: SetLists, ssh: (src: string[], match: string[]) => Rule[]): ListRules {
  const IN = FWGEN_CHAINS.INPUT;
  const sets: IpSet[] = [];
  const use = (name: string, list: AddressList): string | undefined => {
    if (list.cidrs.length === 0) return undefined;
    sets.push(buildSet(name, list, p.family));
    return name;
  };
  const mgmt = use(setName({ kind: 'management' }, p.family), lists.management);
  const fleet = use(setName({ kind: 'fleet' }, p.family), lists.fleet);
  const iface = p.interface ? ['-i', p.interface] : [];
  const allow = lists.allow.flatMap((l) => {
    const name = use(setName({ kind: 'allow', role: p.role, label: l.label }, p.family), l)!;
    return l.ports.map((pp) => accept(IN, [...port(pp), ...matchSet(name)], `${p.role} ${l.label} from ${l.via}`));
  });
  return {
    management: mgmt ? ssh([], matchSet(mgmt)) : [],
    fleet: { chain: IN, rules: fleet ? [accept(IN, [...iface, ...matchSet(fleet)], `fleet ${lists.fleet.via}`)] : [] },
    allow,
    sets,
  };
}

/**
 * Builds a role's ruleset for one family: fwgen's chains, and one jump into each from its built-in
 * chain (FORWARD only with `forward: reject`). Pure; the order of rules is the baseline policy's.
 */
export function buildRuleset(p: RolePolicy, extra: ExtraRules = []): Ruleset {
  const IN = FWGEN_CHAINS.INPUT;
  const reject = ['-j', 'REJECT', '--reject-with', REJECT_WITH[p.family]];
  const extraFor = (chain: string): Rule[] => extra.filter((r) => r.chain === chain);
  const lists = listRules(p);
  const input: (Rule | RuleBlock)[] = [
    accept(IN, ['-i', 'lo'], 'loopback'),
    { chain: IN, args: ['-d', p.loopback, '!', '-i', 'lo', ...comment('loopback address off lo'), ...reject] },
    accept(IN, ['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED'], 'established'),
    ...lists.management,
    ...NDP_TYPES[p.family].map((t) =>
      accept(
        IN,
        ['-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', String(t), '-m', 'hl', '--hl-eq', '255'],
        'neighbour discovery',
      ),
    ),
    lists.fleet,
    ...p.publicPorts.map((pp) => accept(IN, port(pp), `${p.role} public`)),
    ...p.ports.map((pp) => accept(IN, port(pp), `${p.role} ports ${pp.text}`)),
    ...lists.allow,
    ...extraFor(IN),
    accept(IN, PING[p.family], 'ping'),
    {
      chain: IN,
      args: [
        '-m',
        'limit',
        '--limit',
        '5/min',
        ...comment('log denied'),
        '-j',
        'LOG',
        '--log-prefix',
        'fwgen denied: ',
        '--log-level',
        '7',
      ],
    },
    { chain: IN, args: [...comment('default reject'), ...reject] },
  ];
  const forward: Rule[] =
    p.forward === 'reject'
      ? [
          ...extraFor(FWGEN_CHAINS.FORWARD),
          { chain: FWGEN_CHAINS.FORWARD, args: [...comment('default reject'), ...reject] },
        ]
      : [];
  const output: Rule[] = [
    ...extraFor(FWGEN_CHAINS.OUTPUT),
    { chain: FWGEN_CHAINS.OUTPUT, args: [...comment('all output'), '-j', 'ACCEPT'] },
  ];
  const hooked = (['INPUT', 'FORWARD', 'OUTPUT'] as const).filter((c) => c !== 'FORWARD' || p.forward === 'reject');
  const jumps: Rule[] = hooked.map((c) => ({ chain: c, args: [...comment('hook'), '-j', FWGEN_CHAINS[c]] }));
  // iptables-save order: built-in chains, then user chains by name; rules grouped by chain in that order.
  const own = hooked.map((c) => FWGEN_CHAINS[c]).sort();
  const rulesOf: Record<string, (Rule | RuleBlock)[]> = {
    [FWGEN_CHAINS.INPUT]: input,
    [FWGEN_CHAINS.FORWARD]: forward,
    [FWGEN_CHAINS.OUTPUT]: output,
  };
  return {
    tables: [
      {
        name: 'filter',
        chains: [...hooked.map((c) => ({ name: c, policy: 'ACCEPT' })), ...own.map((name) => ({ name, policy: '-' }))],
        rules: [...jumps, ...own.flatMap((c) => rulesOf[c])],
      },
    ],
    ...(p.lists ? { sets: lists.sets } : {}),
  };
}

/** The fwgen chains a role's extra rules may go into. */
export function extraChains(p: RolePolicy): string[] {
  return p.forward === 'reject' ? Object.values(FWGEN_CHAINS) : [FWGEN_CHAINS.INPUT, FWGEN_CHAINS.OUTPUT];
}
