import { emitRule } from './emit.js';
import type { ChainDecl, Rule, Ruleset, Table } from './ruleset.js';

/** A line of iptables-save text the parser could not read. */
export interface ParseProblem {
  readonly line: number;
  readonly text: string;
  readonly message: string;
}

/** The ruleset, and the lines that were not understood (empty for real iptables-save output). */
export interface Parsed {
  readonly ruleset: Ruleset;
  readonly problems: readonly ParseProblem[];
}

/** Splits a rule into words as iptables-save quotes them: `"..."` with backslash escapes. */
export function splitWords(text: string): string[] {
  // Slices, not a string per character: a 10,000-host role's rules file is read in a few milliseconds.
  const words: string[] = [];
  const n = text.length;
  let word: string | undefined;
  let i = 0;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 32 || ch === 9) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if (ch === 34) {
      // A quoted part, up to the closing quote (or the end): spaces kept, backslash escapes the next character.
      let seg = '';
      let start = i + 1;
      let j = start;
      while (j < n && text.charCodeAt(j) !== 34) {
        if (text.charCodeAt(j) === 92 && j + 1 < n) {
          seg += text.slice(start, j) + text[j + 1];
          j += 2;
          start = j;
        } else j++;
      }
      word = (word ?? '') + seg + text.slice(start, j);
      i = j + 1;
    } else {
      let j = i + 1;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === 32 || c === 9 || c === 34) break;
        j++;
      }
      word = (word ?? '') + text.slice(i, j);
      i = j;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

const COUNTERS = /^\[\d+:\d+\]$/;

/**
 * The line a parsed rule was read from, counters left out: how `iptables-save` printed it. The
 * emitter's canonical form can differ from it (`-m u32 --u32 "..."` keeps quotes the emitter drops),
 * and a transaction that names a live rule by its text must use the host's own bytes.
 */
const savedLines = new WeakMap<Rule, string>();

/** Parses one rule line (`[p:b] -A CHAIN ...` or `-A CHAIN ...`); undefined when it is not one. */
export function parseRule(line: string): Rule | undefined {
  const words = splitWords(line);
  const counters = words[0] !== undefined && COUNTERS.test(words[0]) ? words.shift() : undefined;
  if (words[0] !== '-A' || !words[1]) return undefined;
  const rule: Rule = { chain: words[1], args: words.slice(2), ...(counters ? { counters } : {}) };
  savedLines.set(rule, counters ? line.trimStart().slice(counters.length).trimStart() : line.trimStart());
  return rule;
}

/** A rule as one `-A CHAIN ...` line without counters: as the host printed it when parsed, else emitted. */
export function ruleLine(rule: Rule): string {
  return savedLines.get(rule) ?? emitRule({ chain: rule.chain, args: rule.args });
}

interface TableDraft {
  name: string;
  chains: ChainDecl[];
  rules: Rule[];
  before: string[];
  after: string[];
}

/** Parses `iptables-save` (or `iptables-restore`) text into the rule model; the one parser of the project. */
export function parseRuleset(text: string): Parsed {
  const tables: TableDraft[] = [];
  const problems: ParseProblem[] = [];
  let pending: string[] = [];
  let current: TableDraft | undefined;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    const problem = (message: string): void => void problems.push({ line: i + 1, text: line, message });
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      // iptables-save closes each table with "# Completed on ...": it belongs to the table before it.
      const last = tables[tables.length - 1];
      if (!current && last && pending.length === 0 && line.startsWith('# Completed')) last.after.push(line);
      else pending.push(line);
      return;
    }
    if (line.startsWith('*')) {
      if (current) problem(`table ${current.name} has no COMMIT before this line`);
      current = { name: line.slice(1).trim(), chains: [], rules: [], before: pending, after: [] };
      pending = [];
      return;
    }
    if (!current) return problem('a line outside any table (expected *filter or another table first)');
    if (line === 'COMMIT') {
      tables.push(current);
      current = undefined;
      return;
    }
    if (line.startsWith(':')) {
      const [name, policy, counters] = line.slice(1).trim().split(/\s+/);
      if (!name || !policy) return problem('a chain declaration needs a name and a policy (":NAME POLICY [0:0]")');
      current.chains.push({ name, policy, ...(counters ? { counters } : {}) });
      return;
    }
    const rule = parseRule(line);
    if (!rule) return problem('expected a rule (-A CHAIN ...), a chain declaration (:CHAIN), COMMIT or a comment');
    current.rules.push(rule);
  });
  if (current) problems.push({ line: lines.length, text: '', message: `table ${current.name} has no COMMIT` });
  if (tables.length > 0) tables[tables.length - 1].after.push(...pending);
  const out: Table[] = tables.map((t) => ({
    name: t.name,
    chains: t.chains,
    rules: t.rules,
    ...(t.before.length ? { before: t.before } : {}),
    ...(t.after.length ? { after: t.after } : {}),
  }));
  return { ruleset: { tables: out }, problems };
}
