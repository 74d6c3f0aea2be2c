import { structuredPatch } from 'diff';
import { emitRule } from '../model/emit.js';
import { isFwgenChain, ownerOf, type PreserveFn } from '../model/ownership.js';
import { parseRuleset } from '../model/parse.js';
import { BUILTIN_CHAINS, chainRules, isBuiltinChain, tableOf, type Ruleset, type Table } from '../model/ruleset.js';
import { isEmptyChange, planChange } from '../model/transaction.js';

/** How a host's live rules compare with its rendered file, judged only on what fwgen owns. */
export interface LiveComparison {
  /** True when fwgen's chains and its rules in the built-in chains are the rendered ones, in place. */
  readonly inSync: boolean;
  /** Unified-diff lines (rendered → live) of what fwgen owns; empty when in sync. */
  readonly drift: string[];
  /** Chains of other tools on the host (Docker's, `f2b-*`, `KUBE-*`, ...): never drift. */
  readonly foreignChains: string[];
  /** Rules in the built-in chains that jump to a preserved tool's chain: its hook, not drift. */
  readonly foreignRules: string[];
}

/** Labels for the two sides of the drift diff. */
export interface CompareLabels {
  readonly rendered: string;
  readonly live: string;
}

/**
 * Compares the live rules (`iptables-save -t filter`) with the rendered file. In sync exactly when a
 * ship would change nothing: the same planner decides both.
 */
export function compareLive(
  rendered: string,
  live: string,
  preserve: PreserveFn,
  labels: CompareLabels = { rendered: 'rendered', live: 'live' },
): LiveComparison {
  return compareRulesets(parseRuleset(rendered).ruleset, parseRuleset(live).ruleset, preserve, labels);
}

/** {@link compareLive} on parsed rulesets. */
export function compareRulesets(
  want: Ruleset,
  live: Ruleset,
  preserve: PreserveFn,
  labels: CompareLabels = { rendered: 'rendered', live: 'live' },
): LiveComparison {
  const inSync = isEmptyChange(planChange(live, want, preserve));
  const liveFilter = tableOf(live, 'filter');
  const foreignChains = (liveFilter?.chains ?? [])
    .map((c) => c.name)
    .filter((c) => !isBuiltinChain('filter', c) && !isFwgenChain(c));
  const foreignRules = (BUILTIN_CHAINS.filter ?? [])
    .flatMap((c) => (liveFilter ? chainRules(liveFilter, c) : []))
    .filter((r) => ownerOf(r, preserve) === 'preserved')
    .map(emitRule);
  const drift = inSync ? [] : diffLines(ownedView(want, want, preserve), ownedView(live, want, preserve), labels);
  return { inSync, drift, foreignChains, foreignRules };
}

/**
 * What fwgen owns of a ruleset, as lines: per built-in chain fwgen has rules for, every rule after the
 * preserved hooks that lead it (a hook after fwgen's rules shows, as it is out of place); in other
 * built-in chains fwgen's own rules; then fwgen's chains.
 */
function ownedView(rs: Ruleset, want: Ruleset, preserve: PreserveFn): string[] {
  return rs.tables.flatMap((t) => {
    const w = tableOf(want, t.name);
    const builtins = (BUILTIN_CHAINS[t.name] ?? []).flatMap((chain) => {
      const rules = chainRules(t, chain);
      if (w && chainRules(w, chain).length > 0) {
        const first = rules.findIndex((r) => ownerOf(r, preserve) !== 'preserved');
        return first < 0 ? [] : rules.slice(first);
      }
      return rules.filter((r) => ownerOf(r, preserve) === 'fwgen');
    });
    const own = fwgenChains(t);
    const lines = [
      ...own.map((c) => `:${c} -`),
      ...builtins.map(emitRule),
      ...own.flatMap((c) => chainRules(t, c).map(emitRule)),
    ];
    return lines.length > 0 ? [`*${t.name}`, ...lines] : [];
  });
}

function fwgenChains(t: Table): string[] {
  return t.chains.map((c) => c.name).filter(isFwgenChain);
}

function diffLines(wanted: readonly string[], found: readonly string[], labels: CompareLabels): string[] {
  const patch = structuredPatch(
    labels.rendered,
    labels.live,
    `${wanted.join('\n')}\n`,
    `${found.join('\n')}\n`,
    undefined,
    undefined,
    { context: 2 },
  );
  return [
    `--- ${labels.rendered}`,
    `+++ ${labels.live}`,
    ...patch.hunks.flatMap((h) => [`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`, ...h.lines]),
  ];
}
