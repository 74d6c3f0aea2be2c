import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { emitRule } from '../model/emit.js';
import { parseRuleset } from '../model/parse.js';
import { isBlock, tableOf, type Rule, type Ruleset, type Table, type TableName } from '../model/ruleset.js';
import { CLIENT_PORTS, matchRule, type Endpoint, type Match, type Packet } from './lockout-match.js';

/** A new TCP connection to SSH: where the host sees it come from, and the port it connects to. */
export interface Probe {
  readonly source: string;
  readonly dport: number;
  /** ipset mode: the rendered members of each set (`-m set --match-set NAME src` looks the source up). */
  readonly sets?: ReadonlyMap<string, readonly string[]>;
}

/** Whether a ruleset admits a probe, and the rule that decided. */
export interface Verdict {
  readonly admitted: boolean;
  readonly rule: string;
}

/** A verdict with where it was reached: table, built-in chain, which packets, and why a rule refuses. */
export interface SshVerdict extends Verdict {
  readonly table?: TableName;
  readonly chain?: string;
  readonly packets?: Packet['label'];
  readonly why?: string;
}

/** A built-in chain a packet crosses; nat chains see only a connection's first packet. */
interface Hook {
  readonly table: TableName;
  readonly chain: string;
  readonly newOnly?: boolean;
}

/** Netfilter's order for a packet to a local socket: PREROUTING (raw, mangle, nat), then INPUT. */
const REQUEST_PATH: readonly Hook[] = [
  { table: 'raw', chain: 'PREROUTING' },
  { table: 'mangle', chain: 'PREROUTING' },
  { table: 'nat', chain: 'PREROUTING', newOnly: true },
  { table: 'mangle', chain: 'INPUT' },
  { table: 'filter', chain: 'INPUT' },
  { table: 'security', chain: 'INPUT' },
  { table: 'nat', chain: 'INPUT', newOnly: true },
];

/**
 * A locally generated packet: OUTPUT (raw, mangle, nat, filter, security), then POSTROUTING. The
 * nat chains are listed for completeness only: the kernel consults the nat table for the first
 * packet of a connection and applies its mapping to the rest, so the replies of an SSH connection
 * (never a first packet) do not cross nat OUTPUT or POSTROUTING.
 */
const REPLY_PATH: readonly Hook[] = [
  { table: 'raw', chain: 'OUTPUT' },
  { table: 'mangle', chain: 'OUTPUT' },
  { table: 'nat', chain: 'OUTPUT', newOnly: true },
  { table: 'filter', chain: 'OUTPUT' },
  { table: 'security', chain: 'OUTPUT' },
  { table: 'mangle', chain: 'POSTROUTING' },
  { table: 'nat', chain: 'POSTROUTING', newOnly: true },
];

/**
 * Targets that never drop, divert, rewrite or reroute a packet. Anything else on the way (MARK and
 * TOS feed policy routing, TTL can kill the replies, CT --notrack changes conntrack's view, NFQUEUE
 * hands the verdict to a program, SECMARK to SELinux) cannot be proven safe here and refuses.
 */
const HARMLESS = new Set(['LOG', 'NFLOG', 'ULOG', 'TRACE', 'AUDIT', 'TCPMSS', 'CHECKSUM']);

const WHY: Readonly<Record<string, string>> = {
  DNAT: "it may rewrite the connection's destination",
  REDIRECT: 'it may redirect the connection to another port',
  NETMAP: "it may rewrite the connection's addresses",
  SNAT: 'it may rewrite the source address sshd sees',
  MASQUERADE: 'it may rewrite the source address sshd sees',
  TPROXY: 'it may divert the connection to another socket',
  QUEUE: 'it hands the packet to a program that decides',
  NFQUEUE: 'it hands the packet to a program that decides',
};

/**
 * Whether an iptables-restore text admits SSH from `probe.source`: {@link checkSsh} over its parsed
 * model, as `{ admitted, rule }`.
 */
export function evaluateInput(rulesText: string, probe: Probe): Verdict {
  const { admitted, rule } = checkRulesText(rulesText, probe);
  return { admitted, rule };
}

/** {@link checkSsh} over iptables-restore text; a line the parser does not understand refuses. */
export function checkRulesText(rulesText: string, probe: Probe): SshVerdict {
  const { ruleset, problems } = parseRuleset(rulesText);
  const p = problems[0];
  if (p) return { admitted: false, rule: `line ${p.line}: ${p.text}`, why: `not understood: ${p.message}` };
  return checkSsh(ruleset, probe);
}

/**
 * Walks every table and chain an SSH connection crosses, for its first packet, the client's later
 * packets and the server's replies, and refuses what it cannot prove safe. Conservative: an ACCEPT
 * counts only when every match is understood and the path to it is certain, and an ACCEPT limited
 * to an interface does not count (the connection may arrive on another one); a DROP, REJECT or
 * unknown target that may match is assumed to hit, also inside a chain reached by a jump that may
 * or may not be taken; in nat, a rule that may rewrite the connection refuses. When admitted, the
 * rule is the one that accepted the first packet in filter INPUT.
 */
export function checkSsh(rs: Ruleset, probe: Probe): SshVerdict {
  let admittedBy: SshVerdict | undefined;
  for (const { packet, path } of packetsOf(probe)) {
    for (const hook of path) {
      // Only a connection's first packet consults the nat table (see REPLY_PATH).
      if (hook.newOnly && packet.state !== 'NEW') continue;
      const v = judgeHook(rs, hook, packet);
      if (!v.admitted) return v;
      if (!admittedBy && hook.table === 'filter' && hook.chain === 'INPUT') admittedBy = v;
    }
  }
  return admittedBy!;
}

/** The verdict as a person reads it: `table filter, chain OUTPUT, replies: -A ... (why)`. */
export function describeVerdict(v: SshVerdict): string {
  const where = v.table ? `table ${v.table}, chain ${v.chain}, ${v.packets}: ` : '';
  return `${where}${v.rule}${v.why ? ` (${v.why})` : ''}`;
}

function packetsOf(probe: Probe): { packet: Packet; path: readonly Hook[] }[] {
  const client: Endpoint = { address: probe.source, port: CLIENT_PORTS };
  const server: Endpoint = { port: [probe.dport, probe.dport] };
  const sets = probe.sets ? { sets: probe.sets } : {};
  const request = { dir: 'ORIGINAL', src: client, dst: server, iface: '-i', ...sets } as const;
  return [
    { packet: { label: 'new connection', state: 'NEW', ...request }, path: REQUEST_PATH },
    { packet: { label: 'client packets', state: 'ESTABLISHED', ...request }, path: REQUEST_PATH },
    // conntrack marks every packet in the reply direction ESTABLISHED, the SYN-ACK included.
    {
      packet: { label: 'replies', state: 'ESTABLISHED', dir: 'REPLY', src: server, dst: client, iface: '-o', ...sets },
      path: REPLY_PATH,
    },
  ];
}

interface Chains {
  /** Each chain's rules as runs: a shared block (the fleet rules of every role) is one run, never copied. */
  readonly rules: ReadonlyMap<string, readonly (readonly Rule[])[]>;
  readonly declared: ReadonlySet<string>;
}

/** A rule's decision inside one table: the packet goes on to the next table, or is stopped. */
interface Outcome {
  readonly accepted: boolean;
  readonly rule: string;
  readonly why?: string;
}

function judgeHook(rs: Ruleset, hook: Hook, packet: Packet): SshVerdict {
  const where = { table: hook.table, chain: hook.chain, packets: packet.label };
  const table = tableOf(rs, hook.table);
  const policy = table?.chains.find((c) => c.name === hook.chain)?.policy ?? 'ACCEPT';
  const out = table ? walk(chainsOf(table), hook.chain, packet, 0, true) : undefined;
  if (out) return { admitted: out.accepted, rule: out.rule, ...where, ...(out.why ? { why: out.why } : {}) };
  return { admitted: policy === 'ACCEPT', rule: `policy ${policy}`, ...where };
}

// A table is walked for every hook and packet of a probe, and by every probe of a role (publish checks
// 200 roles of 10,000 fleet rules): its chains are indexed once, and a rule's text is made only for a verdict.
const indexed = new WeakMap<Table, Chains>();

function chainsOf(table: Table): Chains {
  const known = indexed.get(table);
  if (known) return known;
  const rules = new Map<string, Rule[][]>();
  const runsOf = (chain: string): Rule[][] => {
    let runs = rules.get(chain);
    if (!runs) rules.set(chain, (runs = []));
    return runs;
  };
  // The run each chain's single rules go into; a block ends it.
  const open = new Map<string, Rule[]>();
  for (const r of table.rules) {
    if (isBlock(r)) {
      if (r.rules.length > 0) runsOf(r.chain).push(r.rules as Rule[]);
      open.delete(r.chain);
      continue;
    }
    let run = open.get(r.chain);
    if (!run) {
      runsOf(r.chain).push((run = []));
      open.set(r.chain, run);
    }
    run.push(r);
  }
  const declared = new Set([...table.chains.map((c) => c.name), ...rules.keys()]);
  const chains = { rules, declared };
  indexed.set(table, chains);
  return chains;
}

function* rulesIn(t: Chains, chain: string): Generator<Rule> {
  for (const run of t.rules.get(chain) ?? []) yield* run;
}

/** `trusted`: the path to this chain is certain, so an ACCEPT here accepts. Undefined: fell off the chain. */
function walk(t: Chains, chain: string, packet: Packet, depth: number, trusted: boolean): Outcome | undefined {
  if (depth > 16) return { accepted: false, rule: `jump depth exceeded at ${chain}` };
  for (const rule of rulesIn(t, chain)) {
    const { match, target, goto } = matchRule(rule.args, packet);
    const certain = match === 'yes' && trusted;
    if (match === 'no' || target === '' || HARMLESS.has(target)) continue;
    if (target === 'ACCEPT') {
      if (certain) return { accepted: true, rule: emitRule(rule) };
      continue;
    }
    if (target === 'RETURN') {
      if (certain) return undefined;
      continue;
    }
    if (t.declared.has(target)) {
      const inner = walk(t, target, packet, depth + 1, certain);
      if (inner && (!inner.accepted || certain)) return inner;
      // A goto that is certainly taken does not come back to this chain.
      if (goto && certain) return undefined;
      continue;
    }
    return { accepted: false, rule: emitRule(rule), ...whyRefused(target, match) };
  }
  return undefined;
}

function whyRefused(target: string, match: Match): { why?: string } {
  const blocks = target === 'DROP' || target === 'REJECT';
  const why = blocks ? undefined : (WHY[target] ?? `target ${target} is not known to leave it alone`);
  const guess = match === 'unknown' ? 'assumed to match: not every match of it is understood' : undefined;
  const both = [why, guess].filter(Boolean).join('; ');
  return both ? { why: both } : {};
}

/** The local address the kernel would use to reach `host`, resolved as the SSH client resolves it (a UDP connect sends no packet). */
export async function sourceAddressFor(host: string, port: number): Promise<string> {
  const { address, family } = await lookup(host);
  const sock = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(port, address, () => resolve());
    });
    return sock.address().address;
  } finally {
    sock.close();
  }
}
