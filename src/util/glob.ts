/**
 * Matches a name against a pattern of `*` (any run of characters) and `?` (one character), as
 * ssh_config, known_hosts and `preserve:` write them. Linear-time: after a mismatch only the last `*`
 * is retried, one character further (a regular expression would backtrack: `*a*a*a*b` against forty
 * `a`s ran for tens of seconds). O(pattern × name) at worst.
 */
export function globMatch(pattern: string, name: string, ignoreCase = false): boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const n = ignoreCase ? name.toLowerCase() : name;
  let pi = 0;
  let ni = 0;
  let star = -1;
  let resume = 0;
  while (ni < n.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === n[ni]))) {
      pi++;
      ni++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      resume = ni;
    } else if (star >= 0) {
      pi = star + 1;
      ni = ++resume;
    } else return false;
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

/** Compiles name patterns (`*` any run of characters, `?` one character) into one matcher. */
export function globMatcher(patterns: readonly string[]): (name: string) => boolean {
  const literal = new Set(patterns.filter((p) => !/[*?]/.test(p)));
  const wild = patterns.filter((p) => /[*?]/.test(p));
  return (name) => literal.has(name) || wild.some((p) => globMatch(p, name));
}
