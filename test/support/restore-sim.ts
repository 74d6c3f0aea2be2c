/**
 * A model of `iptables-restore --noflush` for tests: applies a transaction to a ruleset as the kernel
 * would (declarations flush user chains, -A/-I N/-D N/-D RULE/-X), failing where iptables-restore
 * fails (a position out of range, a rule to delete that is not there, a chain to remove that is used).
 * Comments, the `#@` notes of fwgen's transactions among them, are skipped as iptables-restore skips them.
 */
import { parseRule, parseRuleset, ruleLine } from '../../src/model/parse.js';
import { BUILTIN_CHAINS, rulesOf, targetOf, type Rule, type Ruleset } from '../../src/model/ruleset.js';

interface SimChain {
  policy: string;
  rules: Rule[];
}

/** Tables by name, chains by name in declaration order. */
export type SimState = Map<string, Map<string, SimChain>>;

/** A ruleset as the simulator's state. */
export function simLoad(rs: Ruleset | string): SimState {
  const ruleset = typeof rs === 'string' ? parseRuleset(rs).ruleset : rs;
  const state: SimState = new Map();
  for (const t of ruleset.tables) {
    const chains = new Map<string, SimChain>();
    for (const c of BUILTIN_CHAINS[t.name] ?? []) chains.set(c, { policy: 'ACCEPT', rules: [] });
    for (const c of t.chains) chains.set(c.name, { policy: c.policy, rules: chains.get(c.name)?.rules ?? [] });
    for (const r of rulesOf(t)) chains.get(r.chain)?.rules.push(r);
    state.set(t.name, chains);
  }
  return state;
}

const same = (a: Rule, b: Rule): boolean => a.chain === b.chain && a.args.join('\u0000') === b.args.join('\u0000');

/** Applies `script` to a copy of `state`; throws as iptables-restore would fail (nothing is changed then). */
export function simApply(state: SimState, script: string): SimState {
  const out: SimState = new Map(
    [...state].map(([t, cs]) => [t, new Map([...cs].map(([n, c]) => [n, { ...c, rules: [...c.rules] }]))]),
  );
  let table: Map<string, SimChain> | undefined;
  let tableName = '';
  const chain = (name: string): SimChain => {
    const c = table?.get(name);
    if (!c) throw new Error(`no chain ${name} in ${tableName}`);
    return c;
  };
  for (const line of script.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      tableName = line.slice(1);
      if (!out.has(tableName)) {
        out.set(tableName, new Map((BUILTIN_CHAINS[tableName] ?? []).map((c) => [c, { policy: 'ACCEPT', rules: [] }])));
      }
      table = out.get(tableName);
      continue;
    }
    if (line === 'COMMIT') {
      table = undefined;
      continue;
    }
    if (!table) throw new Error(`a line outside a table: ${line}`);
    if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(' ');
      const builtin = (BUILTIN_CHAINS[tableName] ?? []).includes(name);
      if (builtin) chain(name).policy = policy === '-' ? chain(name).policy : policy;
      else table.set(name, { policy: '-', rules: [] });
      continue;
    }
    const words = line.split(' ');
    const [op, name, pos] = words;
    if (op === '-X') {
      const used = [...table.values()].some((c) => c.rules.some((r) => targetOf(r)?.target === name));
      if (used) throw new Error(`chain ${name} is still used`);
      table.delete(name);
      continue;
    }
    const c = chain(name);
    const rest = (n: number): Rule => parseRule(`-A ${name} ${words.slice(n).join(' ')}`.trimEnd())!;
    if (op === '-A') c.rules.push(rest(2));
    else if (op === '-I') {
      const p = Number(pos);
      if (!(p >= 1 && p <= c.rules.length + 1)) throw new Error(`insert position ${p} out of range in ${name}`);
      c.rules.splice(p - 1, 0, rest(3));
    } else if (op === '-D' && /^[0-9]+$/.test(pos)) {
      const p = Number(pos);
      if (!(p >= 1 && p <= c.rules.length)) throw new Error(`delete position ${p} out of range in ${name}`);
      c.rules.splice(p - 1, 1);
    } else if (op === '-D') {
      const r = rest(2);
      const i = c.rules.findIndex((x) => same(x, r));
      if (i < 0) throw new Error(`Bad rule (does a matching rule exist in that chain?): ${line}`);
      c.rules.splice(i, 1);
    } else throw new Error(`unknown line: ${line}`);
  }
  return out;
}

/** The state as iptables-save text (each rule as the host printed it; tables and chains sorted, no comments). */
export function simSave(state: SimState): string {
  return [...state]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([t, chains]) => {
      const names = [...chains.keys()].sort();
      return [
        `*${t}`,
        ...names.map((n) => `:${n} ${chains.get(n)!.policy}`),
        ...names.flatMap((n) => chains.get(n)!.rules.map(ruleLine)),
        'COMMIT',
      ].join('\n');
    })
    .join('\n');
}
