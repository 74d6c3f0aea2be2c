import { isFwgenChain, ownerOf, type PreserveFn, type RuleOwner } from './ownership.js';
import { ruleLine } from './parse.js';
import { BUILTIN_CHAINS, chainRules, rulesOf, tableOf, type Rule, type Ruleset, type Table } from './ruleset.js';

/**
 * A live rule the change deletes: its 1-based position in the chain as read, and which occurrence of
 * its text it is there (1 for the first rule with that text), so that the host can find it again
 * when other tools have added rules since the read.
 */
export interface Delete {
  readonly rule: Rule;
  readonly position: number;
  readonly occurrence: number;
}

/**
 * Where an inserted rule goes, told by a neighbour the host can find by its text: right after the
 * `occurrence`-th rule with text `after`, right before the `occurrence`-th with text `before` (a
 * rule that opens the chain goes before the first rule it keeps), or at the end.
 */
export type Anchor =
  | { readonly after: string; readonly occurrence: number }
  | { readonly before: string; readonly occurrence: number }
  | 'end';

/** A rule the change inserts: its 1-based position in the chain after the change, and its anchor. */
export interface Insert {
  readonly rule: Rule;
  readonly position: number;
  readonly anchor: Anchor;
}

/** What changes in one built-in chain: deletes (last position first), then inserts (first position first). */
export interface ChainChange {
  readonly chain: string;
  readonly deletes: readonly Delete[];
  readonly inserts: readonly Insert[];
}

/** The change of one table from the live state to the wanted one, touching only what fwgen owns. */
export interface TableChange {
  readonly table: string;
  /** fwgen chains whose rules change (created or refilled). */
  readonly refill: readonly string[];
  /** fwgen chains the live table has and the wanted one does not. */
  readonly drop: readonly string[];
  readonly builtins: readonly ChainChange[];
  /** The live table the change was computed from. */
  readonly live: Table;
  /** The table holding the rules of the refilled chains. */
  readonly want: Table;
  /** The live table as it is after the change (what its undo starts from). */
  readonly result: Table;
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
 * A built-in chain the file has rules for ends with exactly those rules, after every preserved hook,
 * and with no leftover; from a built-in chain it has none for, only fwgen's own rules go.
 */
export function planChange(live: Ruleset, want: Ruleset, preserve: PreserveFn): Change {
  const names = [...new Set([...want.tables.map((t) => t.name), ...fwgenTables(live, preserve)])];
  return plan(live, want, names, preserve, (_chain, l, w) => {
    const owners = l.map((r) => ownerOf(r, preserve));
    if (w.length === 0) return l.filter((_, i) => owners[i] !== 'fwgen');
    return [...l.filter((_, i) => owners[i] === 'preserved'), ...w];
  });
}

/**
 * Computes the change that gives the host back what fwgen owned in `target` (a live snapshot taken
 * before a ship: the backup's `.live`), keeping what others did since. fwgen's chains become the
 * target's. A built-in chain in which fwgen has rules now or had them then gets back the target's
 * rules that are not a preserved tool's hook (leftovers the ships removed, fwgen's old hooks), at
 * their positions among the preserved hooks, and loses the rest of that kind; the preserved hooks
 * stay as they are live (a tool may have added or removed one since). Other built-in chains, other
 * tools' chains and every chain policy are left alone. Going back past fwgen's first ship, this
 * gives the host its previous firewall.
 */
export function planRestore(live: Ruleset, target: Ruleset, preserve: PreserveFn): Change {
  const names = [...new Set([...fwgenTables(target, preserve), ...fwgenTables(live, preserve)])];
  return plan(live, target, names, preserve, restoreTarget(preserve));
}

/** The change that undoes `c` once applied: the host's owned part as it was before, others' changes kept. */
export function undoOf(c: Change, preserve: PreserveFn): Change {
  return {
    tables: c.tables.map((t) => tableChange(t.result, t.live, preserve, restoreTarget(preserve))).filter(changes),
  };
}

function restoreTarget(preserve: PreserveFn): Target {
  const own = (r: Rule): boolean => ownerOf(r, preserve) === 'fwgen';
  return (_chain, l, t) => (!l.some(own) && !t.some(own) ? l : mergeChain(l, t, preserve));
}

type Target = (chain: string, live: readonly Rule[], want: readonly Rule[]) => readonly Rule[];

function plan(live: Ruleset, want: Ruleset, names: readonly string[], preserve: PreserveFn, target: Target): Change {
  const tables = names
    .map((name) => {
      const l = tableOf(live, name) ?? { ...EMPTY, name };
      const w = tableOf(want, name) ?? { ...EMPTY, name };
      return tableChange(l, w, preserve, target);
    })
    .filter(changes);
  return { tables };
}

function changes(t: TableChange): boolean {
  return t.refill.length + t.drop.length + t.builtins.length > 0;
}

function fwgenTables(rs: Ruleset, preserve: PreserveFn): string[] {
  return rs.tables
    .filter(
      (t) =>
        t.chains.some((c) => isFwgenChain(c.name)) || builtinRules(t).some((r) => ownerOf(r, preserve) === 'fwgen'),
    )
    .map((t) => t.name);
}

function builtinRules(t: Table): Rule[] {
  return (BUILTIN_CHAINS[t.name] ?? []).flatMap((c) => chainRules(t, c));
}

function tableChange(live: Table, want: Table, preserve: PreserveFn, target: Target): TableChange {
  const wantChains = want.chains.filter((c) => isFwgenChain(c.name)).map((c) => c.name);
  const liveChains = new Set(live.chains.filter((c) => isFwgenChain(c.name)).map((c) => c.name));
  const same = (chain: string): boolean =>
    liveChains.has(chain) && sameRules(chainRules(live, chain), chainRules(want, chain));
  const refill = wantChains.filter((c) => !same(c));
  const drop = [...liveChains].filter((c) => !wantChains.includes(c));
  const results = new Map<string, readonly Rule[]>();
  const builtins: ChainChange[] = [];
  for (const chain of BUILTIN_CHAINS[live.name] ?? BUILTIN_CHAINS[want.name] ?? []) {
    const l = chainRules(live, chain);
    const r = target(chain, l, chainRules(want, chain));
    const c = diffChain(chain, l, r, (x) => ownerOf(x, preserve) === 'preserved');
    if (c) {
      builtins.push(c);
      results.set(chain, r);
    }
  }
  const result = resultTable(live, want, refill, drop, results);
  return { table: live.name, refill, drop, builtins, live, want, result };
}

/** The live table after the change: built-in chains replaced, fwgen chains refilled, dropped or created. */
function resultTable(
  live: Table,
  want: Table,
  refill: readonly string[],
  drop: readonly string[],
  builtins: ReadonlyMap<string, readonly Rule[]>,
): Table {
  const gone = new Set([...refill, ...drop]);
  const chains = [
    ...live.chains.filter((c) => !drop.includes(c.name)),
    ...want.chains.filter((c) => refill.includes(c.name) && !live.chains.some((l) => l.name === c.name)),
  ];
  const order = chains.map((c) => c.name);
  const byChain = new Map<string, Rule[]>();
  for (const r of rulesOf(live)) {
    if (gone.has(r.chain) || builtins.has(r.chain)) continue;
    let list = byChain.get(r.chain);
    if (!list) byChain.set(r.chain, (list = []));
    list.push(r);
  }
  for (const [chain, rules] of builtins) byChain.set(chain, [...rules]);
  for (const chain of refill) byChain.set(chain, chainRules(want, chain));
  const rules = [...order, ...[...byChain.keys()].filter((c) => !order.includes(c))].flatMap(
    (c) => byChain.get(c) ?? [],
  );
  return { name: live.name, chains, rules };
}

function sameRules(a: readonly Rule[], b: readonly Rule[]): boolean {
  return a.length === b.length && a.every((r, i) => r.chain === b[i].chain && sameArgs(r.args, b[i].args));
}

function sameArgs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

const keyOf = (r: Rule): string => `${r.chain}\u0000${r.args.join('\u0000')}`;

/**
 * The chain `live` becomes when fwgen's part is given back as `target` had it: the live preserved
 * hooks, in their live order, with the target's other rules placed among them. Each run of the
 * target's other rules goes after the last preserved hook before it (in the target) that is still
 * live; when preserved hooks the target did not have sit between that one and the next kept one,
 * the run goes where fwgen's first rule is live (tools insert their hooks at the top, fwgen's hook
 * is last), else before the next kept hook. Unchanged hooks give back the target exactly.
 */
export function mergeChain(live: readonly Rule[], target: readonly Rule[], preserve: PreserveFn): Rule[] {
  const isPreserved = (r: Rule): boolean => ownerOf(r, preserve) === 'preserved';
  const lp = live.filter(isPreserved);
  const firstOwn = live.findIndex((r) => ownerOf(r, preserve) === 'fwgen');
  const marker = firstOwn < 0 ? undefined : live.slice(0, firstOwn).filter(isPreserved).length;
  const tp = target.map((r, i) => ({ r, i })).filter((x) => isPreserved(x.r));
  const matched = new Map<number, number>(); // target index -> index in lp
  for (const [ti, li] of lcs(
    tp.map((x) => keyOf(x.r)),
    lp.map(keyOf),
  ))
    matched.set(tp[ti].i, li);
  // For each target index, the lp index of the next matched preserved hook (lp.length when none).
  const next: number[] = new Array<number>(target.length + 1).fill(lp.length);
  for (let i = target.length - 1; i >= 0; i--) next[i] = matched.has(i) ? matched.get(i)! : next[i + 1];
  const slots: Rule[][] = lp.map(() => []);
  slots.push([]);
  let lo = 0;
  target.forEach((r, i) => {
    if (isPreserved(r)) {
      if (matched.has(i)) lo = matched.get(i)! + 1;
      return;
    }
    const hi = next[i];
    slots[marker !== undefined && lo <= marker && marker <= hi ? marker : hi].push(r);
  });
  return slots.flatMap((s, i) => (i < lp.length ? [...s, lp[i]] : s));
}

/** Index pairs of a longest common subsequence of two key lists (O(n·m); hooks are few). */
function lcs(a: readonly string[], b: readonly string[]): [number, number][] {
  const n = a.length;
  const m = b.length;
  const len = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      len[i][j] = a[i] === b[j] ? len[i + 1][j + 1] + 1 : Math.max(len[i + 1][j], len[i][j + 1]);
  const pairs: [number, number][] = [];
  for (let i = 0, j = 0; i < n && j < m;) {
    if (a[i] === b[j]) pairs.push([i++, j++]);
    else if (len[i + 1][j] >= len[i][j + 1]) i++;
    else j++;
  }
  return pairs;
}

/**
 * The deletes and inserts that turn `live` into `want`, both of which have the same preserved
 * hooks in the same order: between two hooks, what the two share at the start and at the end stays,
 * the rest of the live rules go and the rest of the wanted ones come. Undefined when they are equal.
 */
function diffChain(
  chain: string,
  live: readonly Rule[],
  want: readonly Rule[],
  isPreserved: (r: Rule) => boolean,
): ChainChange | undefined {
  if (sameRules(live, want)) return undefined;
  const kept = new Set<number>(); // indices into live
  const keptWant = new Set<number>(); // indices into want
  const liveSlots = slotsOf(live, isPreserved);
  const wantSlots = slotsOf(want, isPreserved);
  for (let s = 0; s < liveSlots.length; s++) {
    const a = liveSlots[s];
    const b = wantSlots[s] ?? [];
    const same = (i: number, j: number): boolean => keyOf(live[i]) === keyOf(want[j]);
    let p = 0;
    while (p < a.length && p < b.length && same(a[p], b[p])) p++;
    let q = 0;
    while (q < a.length - p && q < b.length - p && same(a[a.length - 1 - q], b[b.length - 1 - q])) q++;
    for (const i of [...a.slice(0, p), ...a.slice(a.length - q)]) kept.add(i);
    for (const j of [...b.slice(0, p), ...b.slice(b.length - q)]) keptWant.add(j);
  }
  live.forEach((r, i) => isPreserved(r) && kept.add(i));
  want.forEach((r, j) => isPreserved(r) && keptWant.add(j));
  const deletes: Delete[] = [];
  const liveOcc = occurrences(live);
  live.forEach((rule, i) => {
    if (!kept.has(i)) deletes.push({ rule, position: i + 1, occurrence: liveOcc[i] });
  });
  deletes.reverse();
  const inserts: Insert[] = [];
  const wantOcc = occurrences(want);
  want.forEach((rule, j) => {
    if (!keptWant.has(j)) inserts.push({ rule, position: j + 1, anchor: anchorOf(want, j, keptWant, wantOcc) });
  });
  return { chain, deletes, inserts };
}

/** Indices of the rules between two preserved hooks (slot 0 before the first), hooks left out. */
function slotsOf(rules: readonly Rule[], isPreserved: (r: Rule) => boolean): number[][] {
  const slots: number[][] = [[]];
  rules.forEach((r, i) => {
    if (isPreserved(r)) slots.push([]);
    else slots[slots.length - 1].push(i);
  });
  return slots;
}

/** For each rule, which occurrence of its text it is in the list (1 for the first). */
function occurrences(rules: readonly Rule[]): number[] {
  const seen = new Map<string, number>();
  return rules.map((r) => {
    const k = keyOf(r);
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    return n;
  });
}

/** The neighbour an inserted rule is placed by: the rule before it, else the first kept rule after it. */
function anchorOf(want: readonly Rule[], j: number, kept: ReadonlySet<number>, occ: readonly number[]): Anchor {
  if (j > 0) return { after: ruleLine(want[j - 1]), occurrence: occ[j - 1] };
  for (let m = j + 1; m < want.length; m++) if (kept.has(m)) return { before: ruleLine(want[m]), occurrence: 1 };
  return 'end';
}

/** The `iptables-restore --noflush` text that applies a change: one transaction per family. */
export function changeScript(c: Change): string {
  return c.tables
    .map((t) => {
      const lines = [`*${t.table}`];
      for (const chain of [...t.refill, ...t.drop]) lines.push(`:${chain} - [0:0]`);
      for (const b of t.builtins) for (const d of b.deletes) lines.push(...deleteLines(d));
      for (const b of t.builtins) for (const i of b.inserts) lines.push(...insertLines(i));
      for (const chain of t.refill) for (const r of chainRules(t.want, chain)) lines.push(ruleLine(r));
      for (const chain of t.drop) lines.push(`-X ${chain}`);
      lines.push('COMMIT');
      return lines.join('\n');
    })
    .map((s) => `${s}\n`)
    .join('');
}

/**
 * A delete by position, led by a `#@del` comment naming the rule (occurrence and text): the host
 * finds the rule again by it and fixes the position when other tools changed the chain since the
 * read (iptables-restore itself skips the comment). Deleting by position is exact for any rule,
 * also one whose saved text does not parse back to the same rule (`-m recent ... --mask`).
 */
function deleteLines(d: Delete): string[] {
  return [`#@del ${d.occurrence} ${ruleLine(d.rule)}`, `-D ${d.rule.chain} ${d.position}`];
}

/**
 * An insert by position, led by a `#@ins` comment naming its anchor (see {@link Anchor}); a rule
 * into a chain that has no other is appended.
 */
function insertLines(i: Insert): string[] {
  const line = ruleLine(i.rule);
  const a = i.anchor;
  if (a === 'end') return [line];
  const note = 'after' in a ? `#@ins after ${a.occurrence} ${a.after}` : `#@ins before ${a.occurrence} ${a.before}`;
  return [note, `-I ${i.rule.chain} ${i.position}${line.replace(/^-A \S+/, '')}`];
}

/**
 * The `iptables-restore --noflush` text that undoes a change applied to the live state it was
 * computed from: fwgen chains refilled with their old rules (or removed when they are new), its
 * rules and the removed leftovers back at their positions. Nothing else is touched.
 */
export function undoScript(c: Change, preserve: PreserveFn): string {
  return changeScript(undoOf(c, preserve));
}

/** Rules of other origin that a change deletes from the built-in chains (hand-written leftovers), as text. */
export function removedLeftovers(c: Change, preserve: PreserveFn): string[] {
  return ownedRules(c, preserve, 'leftover', (b) => b.deletes.map((d) => d.rule)).reverse();
}

/** Rules of other origin that a change puts back into the built-in chains (a rollback's leftovers), as text. */
export function restoredLeftovers(c: Change, preserve: PreserveFn): string[] {
  return ownedRules(c, preserve, 'leftover', (b) => b.inserts.map((i) => i.rule));
}

function ownedRules(
  c: Change,
  preserve: PreserveFn,
  owner: RuleOwner,
  pick: (b: ChainChange) => readonly Rule[],
): string[] {
  return c.tables.flatMap((t) =>
    t.builtins.flatMap((b) =>
      pick(b)
        .filter((r) => ownerOf(r, preserve) === owner)
        .map(ruleLine),
    ),
  );
}
