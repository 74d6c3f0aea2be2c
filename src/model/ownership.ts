import { createHash } from 'node:crypto';
import { globMatcher } from '../util/glob.js';
import { commentOf, targetOf, type Rule } from './ruleset.js';

/** Prefix of every chain fwgen creates; everything else in a table belongs to someone else. */
export const FWGEN_PREFIX = 'FWGEN-';

/** The chain of the rules a pull agent always applies whatever a release says (src/agent/pinned.ts). */
export const PINNED_CHAIN = 'FWGEN-AGENT';

/** The comment of the jumps into {@link PINNED_CHAIN}, first in INPUT and OUTPUT. */
export const PINNED_HOOK = 'fwgen agent pinned';

/** Decides whether a chain belongs to a tool whose rules fwgen keeps. */
export type PreserveFn = (chain: string) => boolean;

/** Compiles `preserve:` patterns (`*` any run of characters, `?` one character) into a matcher. */
export function preserveMatcher(patterns: readonly string[]): PreserveFn {
  return globMatcher(patterns);
}

/** True for a chain fwgen creates. */
export function isFwgenChain(chain: string): boolean {
  return chain.startsWith(FWGEN_PREFIX);
}

/** Whose a rule in a built-in chain is: fwgen's, a preserved tool's hook, or a leftover fwgen removes. */
export type RuleOwner = 'fwgen' | 'preserved' | 'leftover';

/**
 * A rule is fwgen's when it jumps into a fwgen chain, or carries a `fwgen ...` comment (the rules
 * of fwgen versions that wrote into INPUT directly); preserved when it jumps into a preserved chain.
 */
export function ownerOf(rule: Rule, preserve: PreserveFn): RuleOwner {
  const t = targetOf(rule);
  if (t && isFwgenChain(t.target)) return 'fwgen';
  if (t && preserve(t.target)) return 'preserved';
  const comment = commentOf(rule);
  if (comment !== undefined && /^fwgen\b/.test(comment)) return 'fwgen';
  return 'leftover';
}

/**
 * What fwgen owns of a live filter table, line by line: its chains' declarations and rules, and the
 * rules of INPUT, FORWARD and OUTPUT that {@link ownerOf} calls fwgen's. remote/lib.sh `fingerprint`
 * and remote/deadman.sh select exactly these lines with this extended regular expression (counters
 * cut first); test/ownership.test.ts holds the shell and this definition to the same answers.
 */
export const OWNED_LINE_ERE =
  '^(:FWGEN-|-A FWGEN-|-A (INPUT|FORWARD|OUTPUT) (.* )?(-[jg] FWGEN-|--comment "?fwgen([^A-Za-z0-9_]|$)))';

const OWNED_LINE = new RegExp(OWNED_LINE_ERE);
const COUNTERS_AT_END = / \[[0-9]*:[0-9]*\]$/;

/**
 * The lines of `iptables-save` text that are fwgen's, as the host steps select them: in the filter
 * table (`*filter` to its `COMMIT`), counters cut, those {@link OWNED_LINE_ERE} matches.
 */
export function ownedLines(save: string): string[] {
  const out: string[] = [];
  let inFilter = false;
  for (const raw of save.split('\n')) {
    if (!inFilter) {
      inFilter = raw === '*filter';
      continue;
    }
    if (raw === 'COMMIT') {
      inFilter = false;
      continue;
    }
    const line = raw.replace(COUNTERS_AT_END, '');
    if (OWNED_LINE.test(line)) out.push(line);
  }
  return out;
}

/** remote/lib.sh `fingerprint` of `iptables-save` text: the SHA-256 of {@link ownedLines}, one per line. */
export function ownedFingerprint(save: string): string {
  const lines = ownedLines(save);
  return createHash('sha256')
    .update(lines.length > 0 ? `${lines.join('\n')}\n` : '')
    .digest('hex');
}
