import { readFileSync } from 'node:fs';

/** fwgen's own version, from package.json (a module of its own: commands that need nothing else stay light). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
