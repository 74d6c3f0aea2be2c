import { createRequire } from 'node:module';
import type { Document, LineCounter, Node } from 'yaml';

// `yaml` keeps source positions but is slow to load and parse; it is needed only to point at a problem.
const require = createRequire(import.meta.url);
const yaml = (): typeof import('yaml') => require('yaml') as typeof import('yaml');

export type PathSegment = string | number;

/** A position in a YAML file, 1-based. */
export interface Position {
  line: number;
  col: number;
}

/** Finds positions of values and keys in a YAML text by JSON path. */
export class YamlLocator {
  private readonly doc: Document;
  private readonly lines: LineCounter;
  constructor(text: string) {
    const { LineCounter, parseDocument } = yaml();
    this.lines = new LineCounter();
    this.doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: false });
  }

  /** Position of the value at `path`, or of the nearest ancestor that exists. */
  value(path: readonly PathSegment[]): Position {
    return this.at(this.walk(path).node);
  }

  /** Position of the key that holds `path` (a map entry), falling back to its value. */
  key(path: readonly PathSegment[]): Position {
    const found = this.walk(path);
    return this.at(found.complete ? (found.key ?? found.node) : found.node);
  }

  private walk(path: readonly PathSegment[]): { node: Node | null; key?: Node; complete: boolean } {
    const { isMap, isPair, isScalar, isSeq } = yaml();
    let node = (this.doc.contents as Node | null) ?? null;
    let key: Node | undefined;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return { node, complete: false };
        key = pair.key as Node;
        // `key:` with no value has a null value node; the key is then the useful place.
        node = (pair.value as Node | null) ?? key;
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)] as Node | undefined;
        if (!item) return { node, complete: false };
        key = undefined;
        node = item;
      } else {
        return { node, complete: false };
      }
    }
    return { node, key, complete: true };
  }

  private at(node: Node | null): Position {
    const offset = node?.range?.[0] ?? 0;
    return this.lines.linePos(offset);
  }
}

/** Formats a JSON path for messages: `roles.db.allow[0].ports[1]`. */
export function formatPath(path: readonly PathSegment[], whole = '(top level)'): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out || whole;
}
