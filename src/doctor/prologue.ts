import { shq } from '../ship/ssh-transport.js';
import type { RemotePaths } from '../ship/remote-scripts.js';

/** Settings the doctor's scripts need. */
export interface ScriptVars {
  readonly paths: RemotePaths;
  readonly id: string;
  readonly ipv6: boolean;
}

/**
 * Shared prologue of the doctor's read-only scripts and the boot-hook installer: variables (all
 * quoted; every value passed a strict pattern first) and helpers. The ship steps are files in remote/.
 */
// The prologue's variables are shared: a script that does not use one is fine (shellcheck SC2034).
const UNUSED_OK = '# shellcheck disable=SC2034';

export function prologue(v: ScriptVars): string {
  const vars: Record<string, string | number> = {
    RULES: v.paths.rules,
    RULES6: v.paths.rules6,
    ID: v.id,
    HAS6: v.ipv6 ? 1 : 0,
  };
  return `set -u
umask 077
${Object.entries(vars)
  .map(([k, val]) => `${UNUSED_OK}\n${k}=${shq(String(val))}`)
  .join('\n')}
${UNUSED_OK}
LOCK="$RULES.fwgen-lock"
fail() { code=$1; shift; printf 'fwgen: %s\\n' "$*" >&2; exit "$code"; }
norm() { sed -e '/^#/d' -e 's/\\[[0-9]*:[0-9]*\\]$/[0:0]/'; }
`;
}
