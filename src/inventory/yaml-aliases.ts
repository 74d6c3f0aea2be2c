import { createRequire } from 'node:module';
import type { Alias, Node } from 'yaml';
import { InputError, type Problem } from '../errors.js';

/**
 * How many list items and map entries YAML aliases may add to an inventory, counted as if every alias
 * were written out. js-yaml shares an aliased value rather than copying it, so parsing an alias bomb
 * (each level aliasing the one before ten times) is quick, but everything after it (the schema check,
 * normalizing) walks the aliases again and again: 16.5 KB of YAML took 4.3 GB and a minute. A real
 * inventory's aliases repeat small blocks (an `ssh:` map per host: tens of thousands of entries for the
 * largest fleets), far below this.
 */
export const MAX_ALIAS_ENTRIES = 1_000_000;

/**
 * Refuses data whose aliases add more than MAX_ALIAS_ENTRIES entries, or that contains itself (an
 * alias inside the node it names); the problem points at the alias where the count passed the limit.
 * Linear in the distinct values parsed: each aliased node is measured once.
 */
export function checkAliases(data: unknown, text: string, file: string): void {
  // Without an asterisk there is no alias; most inventories stop here.
  if (!text.includes('*')) return;
  const sizes = new Map<object, number>();
  let written = 0;
  // Entries below a value, aliases written out; -1 while being measured (meeting it again is a cycle).
  const measure = (value: unknown): number => {
    if (value === null || typeof value !== 'object') return 0;
    const known = sizes.get(value);
    if (known !== undefined) {
      if (known < 0) throw new AliasCycle();
      return known;
    }
    sizes.set(value, -1);
    const children = Array.isArray(value) ? value : Object.values(value);
    written += children.length;
    let total = children.length;
    for (const child of children) total += measure(child);
    sizes.set(value, total);
    return total;
  };
  let added: number;
  try {
    added = measure(data) - written;
  } catch (err) {
    if (err instanceof AliasCycle) throw new InputError([locateAliasProblem(text, file)]);
    throw err;
  }
  if (added > MAX_ALIAS_ENTRIES) throw new InputError([locateAliasProblem(text, file)]);
}

class AliasCycle extends Error {}

const require = createRequire(import.meta.url);

/**
 * Finds, with the `yaml` package (which keeps aliases as nodes and positions), the alias at which the
 * entries added passed the limit, or the first alias inside the node it names. Only on the error path.
 */
function locateAliasProblem(text: string, file: string): Problem {
  const { LineCounter, parseDocument, isAlias, isCollection, isNode, isPair, visit } =
    require('yaml') as typeof import('yaml');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false });
  // Alias.resolve() searches the whole document each time: the anchors are indexed once instead. An
  // alias names the last node before it with that anchor.
  const anchors = new Map<string, Node[]>();
  visit(doc, (_, node) => {
    if (isNode(node) && node.anchor) anchors.set(node.anchor, [...(anchors.get(node.anchor) ?? []), node]);
  });
  const resolve = (alias: Alias): Node | undefined =>
    anchors
      .get(alias.source)
      ?.filter((n) => (n.range?.[0] ?? 0) < (alias.range?.[0] ?? 0))
      .at(-1);
  const sizes = new Map<Node, number>();
  let cycleAt: Node | undefined;
  const measure = (node: unknown, via?: Node): number => {
    const target = isAlias(node) ? resolve(node) : node;
    if (!isCollection(target)) return 0;
    const known = sizes.get(target);
    if (known !== undefined) {
      if (known < 0) cycleAt ??= via ?? (node as Node);
      return Math.max(known, 0);
    }
    sizes.set(target, -1);
    let total = target.items.length;
    for (const item of target.items) {
      const child = isPair(item) ? item.value : item;
      total += measure(child, isAlias(child) ? (child as Node) : via);
    }
    sizes.set(target, total);
    return total;
  };
  let added = 0;
  let at: Node | undefined;
  let cycle: Node | undefined;
  visit(doc, {
    Alias(_, alias) {
      cycleAt = undefined;
      const adds = measure(alias, alias);
      if (cycleAt) {
        cycle = alias;
        return visit.BREAK;
      }
      added += adds;
      if (added > MAX_ALIAS_ENTRIES) {
        at = alias;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  const node = cycle ?? at;
  const pos = lines.linePos(node?.range?.[0] ?? 0);
  const name = node && isAlias(node) ? `*${node.source}` : 'an alias';
  const limit = MAX_ALIAS_ENTRIES.toLocaleString('en-US');
  const message = cycle
    ? `YAML alias ${name} is inside the node it names, so the inventory would contain itself ` +
      '(expected aliases of finished nodes)'
    : `YAML aliases add more than ${limit} entries to the inventory when written out, passed at ${name} ` +
      '(expected aliases that repeat small blocks; an alias bomb is refused)';
  return { file, ...pos, message, severity: 'error' };
}
