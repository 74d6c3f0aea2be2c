import type { DiffReport } from './describe.js';

export type DiffFormat = 'text' | 'md' | 'json';

/**
 * The report as text (one line per change), Markdown (a pull-request comment or job summary: the lines
 * in a `diff` block, which GitHub colours by their sign) or JSON. `maxBytes` cuts text and Markdown at
 * a line boundary below that size, saying how many lines were left out; the Markdown stays well formed.
 */
export function formatDiff(r: DiffReport, format: DiffFormat, maxBytes?: number): string {
  if (format === 'json') {
    const { lines: _lines, ...json } = r;
    return `${JSON.stringify(json, null, 2)}\n`;
  }
  const head = summaryLine(r);
  if (format === 'text')
    return fit([head, ...r.lines], [], maxBytes, (n) => `... ${n} more lines cut (run fwgen diff locally)`);
  const top = [`### fwgen diff: access from \`${r.base}\` to \`${r.head}\``, '', head, ''];
  if (r.lines.length === 0) return `${top.join('\n')}\n`;
  return fit(
    [...top, '```diff', ...r.lines],
    ['```'],
    maxBytes,
    (n) => `... ${n} more lines cut: run \`npx fwgen diff\` on the two revisions to see them all`,
  );
}

function summaryLine(r: DiffReport): string {
  const parts: string[] = [];
  if (r.membership.length > 0) parts.push(count(r.membership.length, 'membership change'));
  parts.push(count(r.changes.length, 'access change'));
  parts.push(`${count(r.renderedFilesChanged, 'rendered file')} changed`);
  return `${r.base} -> ${r.head}: ${parts.join(', ')}`;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** Lines, then `tail`, within `maxBytes`: lines that do not fit are replaced by one note before the tail. */
function fit(
  lines: readonly string[],
  tail: readonly string[],
  maxBytes: number | undefined,
  note: (n: number) => string,
): string {
  const all = [...lines, ...tail].map((l) => `${l}\n`).join('');
  if (maxBytes === undefined || Buffer.byteLength(all) <= maxBytes) return all;
  const budget =
    maxBytes - Buffer.byteLength(tail.map((l) => `${l}\n`).join('')) - Buffer.byteLength(`${note(lines.length)}\n`);
  let used = 0;
  let kept = 0;
  while (kept < lines.length) {
    const size = Buffer.byteLength(`${lines[kept]!}\n`);
    if (used + size > budget) break;
    used += size;
    kept++;
  }
  return [...lines.slice(0, kept), note(lines.length - kept), ...tail].map((l) => `${l}\n`).join('');
}
