/**
 * The rule model: an iptables ruleset as data. Built by pure code from a resolved policy (render),
 * or parsed from `iptables-save` text (the live rules of a host); printed by one emitter.
 */

export type TableName = 'filter' | 'nat' | 'mangle' | 'raw' | 'security';

/** One rule: the words after `-A CHAIN`, unquoted (`['-s', '192.0.2.1/32', '-j', 'ACCEPT']`). */
export interface Rule {
  readonly chain: string;
  readonly args: readonly string[];
  /** `[packets:bytes]` as `iptables-save -c` prints it before the rule; kept only for round trips. */
  readonly counters?: string;
}

/**
 * Rules shared by several rulesets (the fleet-trust rules are the same in every role's file):
 * the emitter prints a block once and reuses the bytes.
 */
export interface RuleBlock {
  readonly chain: string;
  readonly rules: readonly Rule[];
}

/** A chain declaration: built-in chains have a policy, user chains `-`. */
export interface ChainDecl {
  readonly name: string;
  readonly policy: string;
  /** `[packets:bytes]`; the emitter prints `[0:0]` when absent. */
  readonly counters?: string;
}

export interface Table {
  readonly name: string;
  /** Declarations in the order printed. */
  readonly chains: readonly ChainDecl[];
  /** Rules in the order printed (iptables-save groups them by chain, in declaration order). */
  readonly rules: readonly (Rule | RuleBlock)[];
  /** Comment lines (`# ...`) printed before `*table`, and after `COMMIT`. */
  readonly before?: readonly string[];
  readonly after?: readonly string[];
}

export interface Ruleset {
  readonly tables: readonly Table[];
  /** The sets its rules match, when built in ipset mode (the emitter of rules leaves them out). */
  readonly sets?: readonly IpSet[];
}

export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/** True for INPUT, FORWARD, ... of the table: chains that exist without being declared. */
export function isBuiltinChain(table: string, chain: string): boolean {
  return (BUILTIN_CHAINS[table] ?? []).includes(chain);
}

/** True for a shared block of rules, false for a single rule. */
export function isBlock(r: Rule | RuleBlock): r is RuleBlock {
  return (r as RuleBlock).rules !== undefined;
}

/** Every rule of a table, blocks expanded, in order. */
export function rulesOf(table: Table): Rule[] {
  return table.rules.flatMap((r) => (isBlock(r) ? r.rules : [r]));
}

/** The rules of one chain, in order. */
export function chainRules(table: Table, chain: string): Rule[] {
  return rulesOf(table).filter((r) => r.chain === chain);
}

/** The table called `name`, if the ruleset has one. */
export function tableOf(rs: Ruleset, name: string): Table | undefined {
  return rs.tables.find((t) => t.name === name);
}

/** The target of a rule (`-j X` or `-g X`), and whether it is a goto. */
export function targetOf(rule: Rule): { target: string; goto: boolean } | undefined {
  const a = rule.args;
  for (let i = 0; i < a.length - 1; i++) {
    if (a[i] === '-j' || a[i] === '--jump') return { target: a[i + 1], goto: false };
    if (a[i] === '-g' || a[i] === '--goto') return { target: a[i + 1], goto: true };
  }
  return undefined;
}

/** The `--comment` of a rule, if any. */
export function commentOf(rule: Rule): string | undefined {
  const i = rule.args.indexOf('--comment');
  return i >= 0 ? rule.args[i + 1] : undefined;
}

/** An ipset's family, as `ipset` spells it. */
export type SetFamily = 'inet' | 'inet6';

/**
 * A named ipset (`hash:net`): a list of networks one rule matches with `-m set --match-set NAME src`.
 * Built from a resolved address list (render), or parsed from `ipset save` text (a host's live sets).
 */
export interface IpSet {
  readonly name: string;
  readonly type: string;
  readonly family: SetFamily;
  /** Create options after the family, as written: `['hashsize', '1024', 'maxelem', '65536']`. */
  readonly options: readonly string[];
  /** Networks as `ipset save` prints them: a single address without its `/32` (`/128`), sorted by address. */
  readonly members: readonly string[];
}

/** The set a rule matches (`-m set --match-set NAME src`), if any. */
export function matchSetOf(rule: Rule): string | undefined {
  const i = rule.args.indexOf('--match-set');
  return i >= 0 ? rule.args[i + 1] : undefined;
}

/** Every set name the rules of a ruleset match, sorted, once each. */
export function setsMatched(rs: Ruleset): string[] {
  const names = new Set<string>();
  for (const t of rs.tables) {
    for (const r of rulesOf(t)) {
      const n = matchSetOf(r);
      if (n !== undefined) names.add(n);
    }
  }
  return [...names].sort();
}
