import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import { emitRule } from '../model/emit.js';
import { parseRuleset } from '../model/parse.js';
import { rulesOf } from '../model/ruleset.js';

/** A new TCP connection as the host's INPUT chain will see it. */
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

interface Rule {
  readonly text: string;
  readonly args: string[];
}

/**
 * Walks the filter table's INPUT chain of an iptables-restore file for a new TCP connection.
 * Conservative: an ACCEPT is trusted only when every match is understood, and the interface the
 * connection arrives on is not known here, so an ACCEPT limited to an interface is not trusted;
 * a REJECT or DROP whose matches are not understood is assumed to hit, also inside a chain reached
 * by a jump that may or may not be taken; a DROP or REJECT in the raw or mangle table counts too.
 */
export function evaluateInput(rulesText: string, probe: Probe): Verdict {
  const chains = parseFilterTable(rulesText);
  if (chains.otherBlocks.length > 0) return { admitted: false, rule: chains.otherBlocks[0] };
  const verdict = walk(chains, 'INPUT', probe, 0, true);
  return verdict ?? { admitted: chains.policies.get('INPUT') !== 'DROP', rule: `policy ${chains.policies.get('INPUT') ?? 'ACCEPT'}` };
}

interface Table {
  rules: Map<string, Rule[]>;
  policies: Map<string, string>;
  /** DROP/REJECT rules in the raw or mangle table's PREROUTING/INPUT chains. */
  otherBlocks: string[];
}

function parseFilterTable(text: string): Table {
  const rules = new Map<string, Rule[]>();
  const policies = new Map<string, string>();
  const otherBlocks: string[] = [];
  for (const table of parseRuleset(text).ruleset.tables) {
    for (const rule of rulesOf(table)) {
      const line = emitRule(rule);
      const blocks = rule.args.includes('DROP') || rule.args.includes('REJECT');
      if ((table.name === 'raw' || table.name === 'mangle') && ['PREROUTING', 'INPUT'].includes(rule.chain) && blocks) otherBlocks.push(line);
      if (table.name !== 'filter') continue;
      if (!rules.has(rule.chain)) rules.set(rule.chain, []);
      rules.get(rule.chain)!.push({ text: line, args: [...rule.args] });
    }
    if (table.name === 'filter') for (const c of table.chains) policies.set(c.name, c.policy);
  }
  return { rules, policies, otherBlocks };
}

/** `trusted`: the path to this chain is certain, so an ACCEPT here admits. */
function walk(t: Table, chain: string, probe: Probe, depth: number, trusted: boolean): Verdict | undefined {
  if (depth > 16) return { admitted: false, rule: `jump depth exceeded at ${chain}` };
  for (const rule of t.rules.get(chain) ?? []) {
    const { match, target, goto } = matchRule(rule.args, probe);
    if (match === 'no') continue;
    if (target === 'ACCEPT') {
      if (match === 'yes' && trusted) return { admitted: true, rule: rule.text };
      continue;
    }
    if (target === 'REJECT' || target === 'DROP') return { admitted: false, rule: rule.text };
    if (target === 'RETURN') {
      if (match === 'yes' && trusted) return undefined;
      continue;
    }
    if (t.rules.has(target)) {
      const inner = walk(t, target, probe, depth + 1, trusted && match === 'yes');
      if (inner && (!inner.admitted || (trusted && match === 'yes'))) return inner;
      // A goto that is certainly taken does not come back to this chain.
      if (goto && match === 'yes' && trusted) return undefined;
    }
  }
  return undefined;
}

function matchRule(args: string[], probe: Probe): { match: 'yes' | 'no' | 'unknown'; target: string; goto: boolean } {
  let match: 'yes' | 'no' | 'unknown' = 'yes';
  let target = '';
  let goto = false;
  const worse = (m: 'no' | 'unknown') => {
    if (match === 'yes' || m === 'no') match = m;
  };
  for (let i = 0; i < args.length; i++) {
    const negate = args[i] === '!';
    if (negate) i++;
    const opt = args[i];
    const val = args[i + 1];
    const flip = (ok: boolean) => (negate ? !ok : ok);
    switch (opt) {
      case '-j':
      case '-g':
        target = val;
        goto = opt === '-g';
        i++;
        while (args[i + 1] !== undefined && args[i + 1].startsWith('--')) i += 2;
        break;
      case '-s':
        if (!flip(contains(val, probe.source))) worse('no');
        i++;
        break;
      case '-d':
        // Loopback destinations never match a connection from the network; others are not known here.
        if (!negate && /^(127\.|::1\/)/.test(val)) worse('no');
        else if (!(negate && /^(127\.|::1\/)/.test(val))) worse('unknown');
        i++;
        break;
      case '-i':
        // Only loopback is known: the SSH connection never arrives on lo, and may arrive on any other.
        if (flip(val === 'lo')) worse('no');
        else worse('unknown');
        i++;
        break;
      case '-p':
        if (!flip(['tcp', '6', 'all', '0'].includes(val))) worse('no');
        i++;
        break;
      case '-m':
        i++;
        break;
      case '--dport':
      case '--destination-port':
        if (!flip(portIn(val, probe.dport))) worse('no');
        i++;
        break;
      case '--dports':
        if (!flip(val.split(',').some((p) => portIn(p, probe.dport)))) worse('no');
        i++;
        break;
      case '--ctstate':
      case '--state':
        if (!flip(val.split(',').includes('NEW'))) worse('no');
        i++;
        break;
      case '--match-set': {
        // Only a source match against a set whose members were rendered is understood.
        const members = args[i + 2] === 'src' ? probe.sets?.get(val) : undefined;
        if (members === undefined) worse('unknown');
        else if (!flip(members.some((m) => contains(m, probe.source)))) worse('no');
        i += 2;
        break;
      }
      case '--comment':
      case '--limit':
      case '--limit-burst':
        i++;
        break;
      default:
        worse('unknown');
        if (val !== undefined && !val.startsWith('-')) i++;
    }
  }
  return { match, target, goto };
}

function contains(cidr: string, address: string): boolean {
  try {
    const addr = ipaddr.process(address);
    const [net, len] = cidr.includes('/') ? ipaddr.parseCIDR(cidr) : [ipaddr.parse(cidr), ipaddr.parse(cidr).kind() === 'ipv4' ? 32 : 128];
    return addr.kind() === net.kind() && addr.match(net, len);
  } catch {
    return false;
  }
}

function portIn(spec: string, port: number): boolean {
  const [a, b] = spec.split(':').map(Number);
  return b === undefined ? port === a : port >= a && port <= b;
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
