/**
 * Lines of inventory entries, for "the inventory line a rule came from". Parsing a 10,000-host
 * inventory with positions (the `yaml` package) takes longer than a whole query may, so entries are
 * first looked up by indentation in block-style YAML, the form inventories are written in: a key at
 * its parent's child indent, the n-th `- ` item of a sequence; an entry inside a flow collection
 * (`hosts: { w1: ..., w2: ... }`) is on its collection's line. Values (a list as written) are read with
 * js-yaml from the entry's own lines. Anything else falls back to parsing the whole file with positions.
 */
import type JsYaml from 'js-yaml';
import { YamlLocator, type PathSegment } from '../inventory/yaml-positions.js';
import { requireCjs } from '../util/require-cjs.js';

const KEY = /^(['"]?)([A-Za-z0-9_.-]+)\1\s*:(\s|$)/;

interface Block {
  /** First line of the entry (0-based) and the line after its last one. */
  readonly start: number;
  readonly end: number;
  /** The entry's value starts on its own line (block style) rather than after the key (flow, scalar). */
  readonly block: boolean;
}

export class InventoryLines {
  private readonly lines: string[];
  private whole?: YamlLocator;

  constructor(private readonly text: string) {
    this.lines = text.split('\n');
  }

  /** The 1-based line of the entry at `path` (or of the nearest ancestor that holds it). */
  lineOf(path: readonly PathSegment[]): number {
    const b = this.find(path);
    return b ? b.start + 1 : this.locator().key(path).line;
  }

  /** The value written at `path`, as plain data (undefined when absent or unreadable). */
  valueAt(path: readonly PathSegment[]): unknown {
    const b = this.find(path);
    if (!b) return undefined;
    const key = path[path.length - 1];
    const first = this.lines[b.start]!;
    const indent = first.length - first.trimStart().length;
    // The entry's own lines, as a document of their own: `key: value` (or `- value` for an item).
    const body = this.lines
      .slice(b.start, b.end)
      .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)));
    try {
      const jsYaml = requireCjs('js-yaml') as typeof JsYaml;
      const doc = jsYaml.load(body.join('\n'), { schema: jsYaml.CORE_SCHEMA }) as unknown;
      if (typeof key === 'number') return Array.isArray(doc) ? doc[0] : undefined;
      return doc !== null && typeof doc === 'object' ? (doc as Record<string, unknown>)[String(key)] : undefined;
    } catch {
      return undefined;
    }
  }

  private locator(): YamlLocator {
    return (this.whole ??= new YamlLocator(this.text));
  }

  /** The entry at `path` in block-style YAML; undefined when the structure is not what this reads. */
  private find(path: readonly PathSegment[]): Block | undefined {
    let scope: Block = { start: -1, end: this.lines.length, block: true };
    for (const seg of path) {
      if (!scope.block) return scope.start >= 0 ? scope : undefined; // inside a flow collection: its line
      const next = this.child(scope, seg);
      if (!next) return undefined;
      scope = next;
    }
    return scope.start >= 0 ? scope : undefined;
  }

  private child(scope: Block, seg: PathSegment): Block | undefined {
    const indent = this.childIndent(scope);
    if (indent === undefined) return undefined;
    let n = 0;
    for (let i = scope.start + 1; i < scope.end; i++) {
      const l = this.lines[i]!;
      const t = l.trimStart();
      if (t === '' || t.startsWith('#') || l.length - t.length !== indent) continue;
      const item = t.startsWith('- ') || t === '-';
      if (typeof seg === 'number' ? item && n++ === seg : !item && KEY.exec(t)?.[2] === seg) {
        const end = this.blockEnd(i, indent);
        const rest = item ? t.slice(1).trim() : t.slice(KEY.exec(t)![0].length).trim();
        return { start: i, end, block: rest === '' || rest.startsWith('#') };
      }
    }
    return undefined;
  }

  /** The indent of the first line inside a block (top level: 0). */
  private childIndent(scope: Block): number | undefined {
    for (let i = scope.start + 1; i < scope.end; i++) {
      const l = this.lines[i]!;
      const t = l.trimStart();
      if (t !== '' && !t.startsWith('#') && !t.startsWith('---')) return l.length - t.length;
    }
    return undefined;
  }

  /** The line after the entry starting at `start` with indent `indent` (a sequence's items may sit at it). */
  private blockEnd(start: number, indent: number): number {
    const first = this.lines[start]!.trimStart();
    const isItem = first.startsWith('-');
    for (let i = start + 1; i < this.lines.length; i++) {
      const l = this.lines[i]!;
      const t = l.trimStart();
      if (t === '' || t.startsWith('#')) continue;
      const at = l.length - t.length;
      if (at < indent) return i;
      if (at === indent && (isItem || !t.startsWith('- '))) return i;
    }
    return this.lines.length;
  }
}
