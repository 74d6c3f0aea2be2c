import { parseRuleset } from '../model/parse.js';
import { chainRules, tableOf } from '../model/ruleset.js';
import type { NftTable } from '../model/nft.js';
import { CLIENT_PORTS } from './lockout-match.js';
import { judgeNative, type NftPacket } from './nft-eval.js';

/** A native base chain that drops (or may drop) a flow fwgen accepts. */
export interface NativeFinding {
  readonly chain: string;
  readonly rule: string;
  /** `tcp/80 from any`, `tcp/5432 from 192.0.2.0/24`. */
  readonly flow: string;
  /** True when it drops every such packet; false when it may (a match not understood, a source it names). */
  readonly certain: boolean;
}

/**
 * The new connections a rendered file accepts in FWGEN-INPUT, one per rule with a protocol and a
 * destination port: from the rule's source network (its first address), or from an address not known
 * here when the rule has none.
 */
export function acceptedFlows(rendered: string, family: 'ipv4' | 'ipv6'): (NftPacket & { flow: string })[] {
  const filter = tableOf(parseRuleset(rendered).ruleset, 'filter');
  if (!filter) return [];
  const flows: (NftPacket & { flow: string })[] = [];
  for (const r of chainRules(filter, 'FWGEN-INPUT')) {
    const a = r.args;
    const at = (opt: string) => (a.indexOf(opt) >= 0 ? a[a.indexOf(opt) + 1] : undefined);
    const proto = at('-p');
    const port = (at('--dport') ?? at('--dports'))?.split(/[,:]/)[0];
    if (at('-j') !== 'ACCEPT' || (proto !== 'tcp' && proto !== 'udp') || !port || !/^\d+$/.test(port)) continue;
    const src = at('-s');
    const n = Number(port);
    flows.push({
      family,
      proto,
      ...(src ? { src: src.split('/')[0] } : {}),
      sport: CLIENT_PORTS,
      dport: [n, n],
      state: 'new',
      hooks: ['ingress', 'prerouting', 'input'],
      label: 'new connection',
      flow: `${proto}/${port} from ${src ?? 'any'}${family === 'ipv6' ? ' (IPv6)' : ''}`,
    });
  }
  const seen = new Set<string>();
  return flows.filter((f) => !seen.has(f.flow) && seen.add(f.flow));
}

/** Each flow fwgen accepts that a native base chain drops or may drop, with the chain and rule. */
export function nativeFindings(
  tables: readonly NftTable[],
  rendered: readonly (readonly [string, 'ipv4' | 'ipv6'])[],
): NativeFinding[] {
  if (tables.length === 0) return [];
  const out: NativeFinding[] = [];
  for (const [text, family] of rendered)
    for (const f of acceptedFlows(text, family)) {
      const stop = judgeNative(tables, f);
      if (stop) out.push({ chain: stop.chain, rule: stop.rule, flow: f.flow, certain: stop.certain });
    }
  return out;
}

/** One line per native chain that certainly drops traffic fwgen accepts: what status and ship warn. */
export function nativeWarnings(findings: readonly NativeFinding[]): string[] {
  const byChain = new Map<string, NativeFinding[]>();
  for (const f of findings.filter((x) => x.certain)) byChain.set(f.chain, [...(byChain.get(f.chain) ?? []), f]);
  return [...byChain].map(
    ([chain, fs]) =>
      `native nftables ${chain} drops what fwgen accepts (${fs.map((f) => f.flow).join(', ')}): ${fs[0].rule}`,
  );
}
