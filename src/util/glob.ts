/** Compiles name patterns (`*` any run of characters, `?` one character) into one matcher. */
export function globMatcher(patterns: readonly string[]): (name: string) => boolean {
  if (patterns.length === 0) return () => false;
  const body = patterns
    .map((p) =>
      p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.'),
    )
    .join('|');
  const re = new RegExp(`^(?:${body})$`);
  return (name) => re.test(name);
}
