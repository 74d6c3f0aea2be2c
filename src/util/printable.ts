/**
 * Control characters a host could send to rewrite a terminal or a log line: C0 (tab aside) and DEL,
 * C1 (`\x9b` is a one-byte CSI), and the Unicode marks that reorder or hide text (bidi overrides and
 * isolates, zero-width characters, the byte order mark). Newlines are handled by {@link printable}.
 */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

/**
 * Host-supplied text (stderr lines, chain names, rules, a state file) made safe to print or log: each
 * control character is shown as an escape (`\x1b`, `\u202e`), so that what was hidden is visible.
 * Newlines are kept only with `multiline` (a diff), else shown as `\n` too.
 */
export function printable(text: string, multiline = false): string {
  const escaped = text.replace(CONTROL, escape);
  return multiline ? escaped : escaped.replace(/\n/g, '\\n');
}

function escape(ch: string): string {
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}
