/**
 * Lines of inventory entries, for "the inventory line a rule came from". Parsing a 10,000-host
 * inventory with positions takes longer than a whole query may, so a block-style inventory is cut
 * first: only the top-level section (or the one role) that holds the entry is parsed with positions.
 * Anything else (flow style, an odd indent) falls back to parsing the whole file.
 */
import { createRequire } from 'node:module';
import { YamlLocator, type PathSegment } from '../inventory/yaml-positions.js';

const require = createRequire(import.meta.url);

interface Fragment {
  readonly locator: YamlLocator;
  readonly value: unknown;
  /** Lines before the fragment's first line. */
  readonly offset: number;
  /** The path inside the fragment for a path of the whole file. */
  readonly inner: (path: readonly PathSegment[]) => PathSegment[];
}

const KEY = /^(['"]?)([A-Za-z0-9_.-]+)\1\s*:(\s|$)/;

export class InventoryLines {
  private readonly lines: string[];
  private whole?: Fragment;
  private readonly fragments = new Map<string, Fragment | null>();

  constructor(private readonly text: string) {
    this.lines = text.split('\n');
  }

  /** The 1-based line of the entry at `path` (or of its nearest ancestor that exists). */
  lineOf(path: readonly PathSegment[]): number {
    const f = this.fragmentFor(path);
    return f.offset + f.locator.key(f.inner(path)).line;
  }

  /** The value written at `path`, as plain data (undefined when absent). */
  valueAt(path: readonly PathSegment[]): unknown {
    const f = this.fragmentFor(path);
    let v: unknown = f.value;
    for (const seg of f.inner(path)) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as Record<string, unknown>)[String(seg)];
    }
    return v;
  }

  private fragmentFor(path: readonly PathSegment[]): Fragment {
    const top = String(path[0] ?? '');
    const role = top === 'roles' && path.length > 1 ? String(path[1]) : undefined;
    const key = role === undefined ? top : `roles/${role}`;
    if (!this.fragments.has(key)) this.fragments.set(key, this.cut(top, role));
    return this.fragments.get(key) ?? this.wholeFile();
  }

  private wholeFile(): Fragment {
    return (this.whole ??= parse(this.text, 0, (p) => [...p]) ?? {
      locator: new YamlLocator(this.text),
      value: undefined,
      offset: 0,
      inner: (p) => [...p],
    });
  }

  /** The top-level section `top`, or one role of `roles`, as a fragment of its own; null when it cannot be cut. */
  private cut(top: string, role: string | undefined): Fragment | null {
    const start = this.lines.findIndex((l) => KEY.exec(l)?.[2] === top);
    if (start < 0) return null;
    const end = this.sectionEnd(start, 0);
    if (role === undefined) {
      return parse(this.lines.slice(start, end).join('\n'), start, (p) => [...p]);
    }
    const after = this.lines[start]!.slice(KEY.exec(this.lines[start]!)![0].length).trim();
    if (after !== '' && !after.startsWith('#')) return null; // flow style: `roles: { ... }`
    const child = this.lines.slice(start + 1, end).find((l) => l.trim() !== '' && !l.trim().startsWith('#'));
    if (!child) return null;
    const indent = child.length - child.trimStart().length;
    const at = this.lines.findIndex(
      (l, i) =>
        i > start && i < end && l.length - l.trimStart().length === indent && KEY.exec(l.slice(indent))?.[2] === role,
    );
    if (at < 0) return null;
    const stop = this.sectionEnd(at, indent + 1);
    const body = this.lines.slice(at, stop).map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)));
    return parse(body.join('\n'), at, (p) => p.slice(1));
  }

  /** The line after the block starting at `start`: the next line indented less than `minIndent` (comments aside). */
  private sectionEnd(start: number, minIndent: number): number {
    for (let i = start + 1; i < this.lines.length; i++) {
      const l = this.lines[i]!;
      const t = l.trimStart();
      if (t === '' || t.startsWith('#')) continue;
      const indent = l.length - t.length;
      // A top-level sequence may start its items at column 0 ("key:\n- item").
      if (indent < minIndent || (minIndent === 0 && indent === 0 && !t.startsWith('- '))) return i;
    }
    return this.lines.length;
  }
}

function parse(text: string, offset: number, inner: (p: readonly PathSegment[]) => PathSegment[]): Fragment | null {
  const { parseDocument } = require('yaml') as typeof import('yaml');
  const doc = parseDocument(text, { uniqueKeys: false });
  if (doc.errors.length > 0) return null;
  return { locator: new YamlLocator(text), value: doc.toJS(), offset, inner };
}
