import { emitRule } from './emit.js';
import { isFwgenChain, ownerOf, type PreserveFn } from './ownership.js';
import { BUILTIN_CHAINS, chainRules, tableOf, type Rule, type Ruleset, type Table } from './ruleset.js';

/** What changes in one built-in chain: live rules deleted (with their 1-based position), rules appended. */
export interface ChainChange {
  readonly chain: string;
  readonly deletes: readonly { readonly rule: Rule; readonly position: number }[];
  readonly appends: readonly Rule[];
}

/** The change of one table from the live state to the wanted one, touching only what fwgen owns. */
export interface TableChange {
  readonly table: string;
  /** fwgen chains whose rules change (created or refilled). */
  readonly refill: readonly string[];
  /** fwgen chains the live table has and the wanted one does not. */
  readonly drop: readonly string[];
  readonly builtins: readonly ChainChange[];
  /** The live and wanted tables the change was computed from (for the undo). */
  readonly live: Table;
  readonly want: Table;
}

/** A change of the whole ruleset; empty when the host already runs what fwgen wants. */
export interface Change {
  readonly tables: readonly TableChange[];
}

const EMPTY: Table = { name: 'filter', chains: [], rules: [] };

/** True when nothing of fwgen's differs. */
export function isEmptyChange(c: Change): boolean {
  return c.tables.length === 0;
}

/**
 * Computes the change from the live ruleset to the wanted one (a rendered file), per table the
 * wanted file has or in which the live ruleset has fwgen chains. Pure: the ship's transaction, its
 * undo (the dead-man switch), the unchanged check and `status` all come from this one function.
 */
export function planChange(live: Ruleset, want: Ruleset, preserve: PreserveFn): Change {
  const names = new Set([
    ...want.tables.map((t) => t.name),
    ...live.tables.filter(hasFwgenParts(preserve)).map((t) => t.name),
  ]);
  const tables: TableChange[] = [];
  for (const name of names) {
    const l = tableOf(live, name) ?? { ...EMPTY, name };
    const w = tableOf(want, name) ?? { ...EMPTY, name };
    const change = planTable(l, w, preserve);
    if (change.refill.length + change.drop.length + change.builtins.length > 0) tables.push(change);
  }
  return { tables };
}

function hasFwgenParts(preserve: PreserveFn): (t: Table) => boolean {
  return (t) =>
    t.chains.some((c) => isFwgenChain(c.name)) || chainRulesOfBuiltins(t).some((r) => ownerOf(r, preserve) === 'fwgen');
}

function chainRulesOfBuiltins(t: Table): Rule[] {
  return (BUILTIN_CHAINS[t.name] ?? []).flatMap((c) => chainRules(t, c));
}

function planTable(live: Table, want: Table, preserve: PreserveFn): TableChange {
  const wantChains = want.chains.filter((c) => isFwgenChain(c.name)).map((c) => c.name);
  const liveChains = new Set(live.chains.filter((c) => isFwgenChain(c.name)).map((c) => c.name));
  const same = (chain: string): boolean =>
    liveChains.has(chain) && sameRules(chainRules(live, chain), chainRules(want, chain));
  const refill = wantChains.filter((c) => !same(c));
  const drop = [...liveChains].filter((c) => !wantChains.includes(c));
  const builtins = (BUILTIN_CHAINS[want.name] ?? BUILTIN_CHAINS[live.name] ?? [])
    .map((chain) => planBuiltin(chain, chainRules(live, chain), chainRules(want, chain), preserve))
    .filter((c): c is ChainChange => c !== undefined);
  return { table: want.name, refill, drop, builtins, live, want };
}

/**
 * A built-in chain fwgen has rules for ends with exactly those rules, after every preserved hook and
 * with no leftover among them; in a chain fwgen has no rules for, only fwgen's own rules go.
 */
function planBuiltin(
  chain: string,
  live: readonly Rule[],
  want: readonly Rule[],
  preserve: PreserveFn,
): ChainChange | undefined {
  const owners = live.map((r) => ownerOf(r, preserve));
  if (want.length === 0) {
    const deletes = live.map((rule, i) => ({ rule, position: i + 1 })).filter((_, i) => owners[i] === 'fwgen');
    return deletes.length > 0 ? { chain, deletes, appends: [] } : undefined;
  }
  const firstOwn = owners.findIndex((o) => o !== 'preserved');
  const tail = firstOwn < 0 ? [] : live.slice(firstOwn);
  const tailClean = owners.slice(firstOwn < 0 ? live.length : firstOwn).every((o) => o !== 'preserved');
  if (tailClean && sameRules(tail, want)) return undefined;
  const deletes = live.map((rule, i) => ({ rule, position: i + 1 })).filter((_, i) => owners[i] !== 'preserved');
  return { chain, deletes, appends: want };
}

function sameRules(a: readonly Rule[], b: readonly Rule[]): boolean {
  return a.length === b.length && a.every((r, i) => r.chain === b[i].chain && sameArgs(r.args, b[i].args));
}

function sameArgs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

/** The `iptables-restore --noflush` text that applies a change: one transaction per family. */
export function changeScript(c: Change): string {
  return c.tables
    .map((t) => {
      const lines = [`*${t.table}`];
      for (const chain of [...t.refill, ...t.drop]) lines.push(`:${chain} - [0:0]`);
      for (const b of t.builtins) for (const d of b.deletes) lines.push(deleteLine(d.rule));
      for (const b of t.builtins) for (const r of b.appends) lines.push(emitRule(r));
      for (const chain of t.refill) for (const r of chainRules(t.want, chain)) lines.push(emitRule(r));
      for (const chain of t.drop) lines.push(`-X ${chain}`);
      lines.push('COMMIT');
      return lines.join('\n');
    })
    .map((s) => `${s}\n`)
    .join('');
}

/**
 * The `iptables-restore --noflush` text that undoes a change applied to the live state it was
 * computed from: fwgen chains refilled with their old rules (or removed when they are new), appended
 * rules deleted, deleted rules inserted back at their old positions. Nothing else is touched.
 */
export function undoScript(c: Change): string {
  return c.tables
    .map((t) => {
      const liveChains = new Set(t.live.chains.map((ch) => ch.name));
      const touched = [...t.refill, ...t.drop];
      const created = t.refill.filter((ch) => !liveChains.has(ch));
      const lines = [`*${t.table}`];
      for (const chain of touched) lines.push(`:${chain} - [0:0]`);
      for (const b of t.builtins) for (const r of b.appends) lines.push(deleteLine(r));
      for (const b of t.builtins) {
        for (const d of [...b.deletes].sort((x, y) => x.position - y.position))
          lines.push(insertLine(d.rule, d.position));
      }
      for (const chain of touched.filter((ch) => liveChains.has(ch)))
        for (const r of chainRules(t.live, chain)) lines.push(emitRule(r));
      for (const chain of created) lines.push(`-X ${chain}`);
      lines.push('COMMIT');
      return lines.join('\n');
    })
    .map((s) => `${s}\n`)
    .join('');
}

function deleteLine(rule: Rule): string {
  return emitRule({ chain: rule.chain, args: rule.args }).replace(/^-A /, '-D ');
}

function insertLine(rule: Rule, position: number): string {
  return emitRule({ chain: rule.chain, args: rule.args }).replace(/^-A (\S+)/, `-I $1 ${position}`);
}

/** Rules of other origin that a change deletes from the built-in chains (hand-written leftovers), as text. */
export function removedLeftovers(c: Change, preserve: PreserveFn): string[] {
  return c.tables.flatMap((t) =>
    t.builtins.flatMap((b) =>
      b.deletes
        .filter((d) => ownerOf(d.rule, preserve) === 'leftover')
        .map((d) => emitRule({ chain: d.rule.chain, args: d.rule.args })),
    ),
  );
}
