/**
 * A host's native nftables ruleset (`nft -j list ruleset`): the tables, chains and rules that are not
 * iptables' own view (iptables-nft keeps its tables as `ip`/`ip6` `filter`, `nat`, `mangle`, `raw`
 * and `security`). Host-supplied JSON: every field is checked before use.
 */

/** One expression or statement of a rule, as nft's JSON has it (`{"match": {...}}`, `{"drop": null}`). */
export type NftExpr = Readonly<Record<string, unknown>>;

export interface NftRule {
  readonly handle?: number;
  readonly expr: readonly NftExpr[];
  readonly comment?: string;
}

export interface NftChain {
  readonly name: string;
  /** Base chains only: their hook, priority, type and policy. */
  readonly hook?: string;
  readonly prio?: number;
  readonly type?: string;
  readonly policy?: string;
  readonly rules: readonly NftRule[];
}

export interface NftTable {
  readonly family: string;
  readonly name: string;
  readonly chains: readonly NftChain[];
  /** Named sets (`@name` in a rule) and their elements, as the JSON has them. */
  readonly sets: ReadonlyMap<string, readonly unknown[]>;
}

/** iptables-nft's tables: iptables' view of the kernel, which fwgen reads with iptables-save. */
const IPTABLES_TABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);

/** True for a table iptables-nft created (the ip/ip6 tables iptables knows by name). */
export function isIptablesTable(family: string, name: string): boolean {
  return (family === 'ip' || family === 'ip6') && IPTABLES_TABLES.has(name);
}

/** The native tables of `nft -j list ruleset` output; [] for anything that is not that output. */
export function parseNftJson(text: string | undefined): NftTable[] {
  if (!text?.trim()) return [];
  let items: unknown;
  try {
    items = (JSON.parse(text) as { nftables?: unknown }).nftables;
  } catch {
    return [];
  }
  if (!Array.isArray(items)) return [];
  const tables = new Map<
    string,
    { family: string; name: string; chains: Map<string, NftChain & { rules: NftRule[] }>; sets: Map<string, unknown[]> }
  >();
  const key = (family: string, name: string) => `${family} ${name}`;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  for (const item of items as Record<string, Record<string, unknown>>[]) {
    if (typeof item !== 'object' || item === null) continue;
    const t = item.table;
    if (t && str(t.family) && str(t.name) && !isIptablesTable(t.family as string, t.name as string))
      tables.set(key(t.family as string, t.name as string), {
        family: t.family as string,
        name: t.name as string,
        chains: new Map(),
        sets: new Map(),
      });
    const set = item.set;
    if (set && str(set.family) && str(set.table) && str(set.name))
      tables
        .get(key(set.family as string, set.table as string))
        ?.sets.set(set.name as string, Array.isArray(set.elem) ? (set.elem as unknown[]) : []);
    const c = item.chain;
    if (c && str(c.family) && str(c.table) && str(c.name)) {
      const table = tables.get(key(c.family as string, c.table as string));
      if (table)
        table.chains.set(c.name as string, {
          name: c.name as string,
          ...(str(c.hook) ? { hook: c.hook as string } : {}),
          ...(typeof c.prio === 'number' ? { prio: c.prio } : {}),
          ...(str(c.type) ? { type: c.type as string } : {}),
          ...(str(c.policy) ? { policy: c.policy as string } : {}),
          rules: [],
        });
    }
    const r = item.rule;
    if (r && str(r.family) && str(r.table) && str(r.chain) && Array.isArray(r.expr)) {
      const chain = tables.get(key(r.family as string, r.table as string))?.chains.get(r.chain as string);
      chain?.rules.push({
        ...(typeof r.handle === 'number' ? { handle: r.handle } : {}),
        expr: (r.expr as unknown[]).filter((e): e is NftExpr => typeof e === 'object' && e !== null),
        ...(str(r.comment) ? { comment: r.comment as string } : {}),
      });
    }
  }
  return [...tables.values()].map((t) => ({
    family: t.family,
    name: t.name,
    chains: [...t.chains.values()],
    sets: t.sets,
  }));
}

/** A base chain on one of the hooks a host's own traffic crosses, with where it sits. */
export interface BaseChain {
  readonly table: NftTable;
  readonly chain: NftChain;
}

/** Every base chain of the native tables, in the order the kernel runs them on a hook (priority). */
export function baseChains(tables: readonly NftTable[]): BaseChain[] {
  return tables
    .flatMap((table) => table.chains.filter((c) => c.hook !== undefined).map((chain) => ({ table, chain })))
    .sort((a, b) => (a.chain.prio ?? 0) - (b.chain.prio ?? 0));
}

/** `inet filter input (hook input, priority 0, policy drop)`. */
export function describeChain(b: BaseChain): string {
  const c = b.chain;
  return `${b.table.family} ${b.table.name} ${c.name} (hook ${c.hook}, priority ${c.prio ?? 0}, policy ${c.policy ?? 'accept'})`;
}

/** A rule as a person reads it, near enough to `nft list` for the common expressions. */
export function describeRule(rule: NftRule): string {
  const text = rule.expr.map(describeExpr).filter(Boolean).join(' ');
  return rule.comment ? `${text} comment "${rule.comment}"` : text;
}

function describeExpr(e: NftExpr): string {
  const [k, v] = Object.entries(e)[0] ?? [];
  if (k === undefined) return '';
  if (k === 'match') {
    const m = v as { op?: string; left?: unknown; right?: unknown };
    const op = m.op === '==' || m.op === 'in' ? '' : `${m.op} `;
    return `${describeValue(m.left)} ${op}${describeValue(m.right)}`;
  }
  if (k === 'counter') return '';
  if (v === null) return k;
  if (k === 'jump' || k === 'goto') return `${k} ${(v as { target?: string }).target ?? '?'}`;
  return k;
}

function describeValue(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(describeValue).join(',');
  if (typeof v !== 'object' || v === null) return '?';
  const o = v as Record<string, Record<string, unknown>>;
  if (o.payload) return `${o.payload.protocol} ${o.payload.field}`;
  if (o.meta) return `meta ${o.meta.key}`;
  if (o.ct) return `ct ${o.ct.key}`;
  if (o.set) return `{ ${(o.set as unknown as unknown[]).map(describeValue).join(', ')} }`;
  if (o.range) return (o.range as unknown as unknown[]).map(describeValue).join('-');
  if (o.prefix) return `${o.prefix.addr}/${o.prefix.len}`;
  return Object.keys(o)[0] ?? '?';
}
