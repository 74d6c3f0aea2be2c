import { isBlock, type Rule, type RuleBlock, type Ruleset, type Table } from './ruleset.js';

/** Options whose value iptables-save prints as a string, quoted unless it is plain `[A-Za-z0-9_-]`. */
const STRING_OPTIONS = new Set(['--comment', '--log-prefix', '--nflog-prefix', '--string', '--hex-string']);
const PLAIN = /^[A-Za-z0-9_-]+$/;
const NEEDS_QUOTES = /[\s"'\\]/;

/** Quotes one word as iptables-save does: `"..."` with `"`, `\` and `'` escaped by a backslash. */
export function quoteWord(word: string, stringValue: boolean): string {
  if (word !== '' && !NEEDS_QUOTES.test(word) && (!stringValue || PLAIN.test(word))) return word;
  return `"${word.replace(/["'\\]/g, (c) => `\\${c}`)}"`;
}

/** One rule as iptables-save prints it: `-A CHAIN words...` (counters first when the rule has them). */
export function emitRule(rule: Rule): string {
  const words = rule.args.map((w, i) => quoteWord(w, i > 0 && STRING_OPTIONS.has(rule.args[i - 1])));
  const line = words.length > 0 ? `-A ${rule.chain} ${words.join(' ')}` : `-A ${rule.chain}`;
  return rule.counters ? `${rule.counters} ${line}` : line;
}

/** The bytes of a ruleset: each shared block is printed once and its buffer reused across rulesets. */
export interface Emitted {
  readonly parts: readonly Buffer[];
  readonly size: number;
}

const blockCache = new WeakMap<RuleBlock, Buffer>();

function blockBytes(block: RuleBlock): Buffer {
  let b = blockCache.get(block);
  if (b === undefined) {
    b = Buffer.from(block.rules.map((r) => `${emitRule(r)}\n`).join(''), 'utf8');
    blockCache.set(block, b);
  }
  return b;
}

/** Emits a ruleset in the canonical `iptables-save` form, after optional header comment lines. */
export function emitRuleset(rs: Ruleset, header: readonly string[] = []): Emitted {
  const parts: Buffer[] = [];
  let text = header.map((l) => `${l}\n`).join('');
  const flush = (): void => {
    if (text) parts.push(Buffer.from(text, 'utf8'));
    text = '';
  };
  for (const table of rs.tables) {
    text += tableHead(table);
    for (const r of table.rules) {
      if (isBlock(r)) {
        if (r.rules.length === 0) continue;
        flush();
        parts.push(blockBytes(r));
      } else {
        text += `${emitRule(r)}\n`;
      }
    }
    text += 'COMMIT\n';
    text += (table.after ?? []).map((l) => `${l}\n`).join('');
  }
  flush();
  return { parts, size: parts.reduce((n, b) => n + b.length, 0) };
}

/** Emits a ruleset as one string. */
export function emitText(rs: Ruleset, header: readonly string[] = []): string {
  const { parts, size } = emitRuleset(rs, header);
  return Buffer.concat(parts as Buffer[], size).toString('utf8');
}

function tableHead(table: Table): string {
  const before = (table.before ?? []).map((l) => `${l}\n`).join('');
  const decls = table.chains.map((c) => `:${c.name} ${c.policy} ${c.counters ?? '[0:0]'}\n`).join('');
  return `${before}*${table.name}\n${decls}`;
}
