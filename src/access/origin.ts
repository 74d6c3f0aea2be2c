/**
 * Where a rule comes from: fwgen writes `-m comment --comment "fwgen ..."` on every rule it builds, so
 * the comment says which inventory entry (fleet trust, management, a role's public, ports or allow
 * rule, a monitoring rule) or which part of the baseline made it. Rules without such a comment come
 * from a role template.
 */
import type { PathSegment } from '../inventory/yaml-positions.js';
import { commentOf, type Rule } from '../model/ruleset.js';
import { emitRule } from '../model/emit.js';

/** A rule's origin: a short label for sentences, and the inventory entry it was written at, if any. */
export interface Origin {
  /** `fleet trust`, `db allow#1`, `web public`, `worker ports`, `monitoring#1`, `management`, `default reject`... */
  readonly label: string;
  /** What the entry is, to find it in the inventory. */
  readonly entry?: Entry;
}

/** An inventory entry a rule was built from. */
export type Entry =
  | { readonly kind: 'fleet' }
  | { readonly kind: 'management' }
  | { readonly kind: 'monitoring'; readonly index: number }
  | { readonly kind: 'allow'; readonly role: string; readonly index: number }
  | { readonly kind: 'public'; readonly role: string }
  | { readonly kind: 'ports'; readonly role: string; readonly port: string };

const BASELINE: Readonly<Record<string, string>> = {
  loopback: 'loopback',
  'loopback address off lo': 'loopback address off lo',
  established: 'established connections',
  'neighbour discovery': 'neighbour discovery',
  ping: 'ping',
  'log denied': 'log',
  'default reject': 'default reject',
  'all output': 'all output',
  hook: 'fwgen hook',
};

/** The origin of a rule, read from its fwgen comment; `policy` when a chain's policy decided. */
export function originOf(rule: Rule | undefined, policy?: string): Origin {
  if (!rule) return { label: `policy ${policy ?? 'ACCEPT'}` };
  const comment = commentOf(rule);
  if (!comment?.startsWith('fwgen ')) return { label: `template rule "${shorten(emitRule(rule), 48)}"` };
  const text = comment.slice('fwgen '.length);
  const base = BASELINE[text];
  if (base) return { label: base };
  if (text.startsWith('fleet ')) return { label: 'fleet trust', entry: { kind: 'fleet' } };
  if (text === 'management ssh') return { label: 'management', entry: { kind: 'management' } };
  const words = text.split(' ');
  const [role, what] = [words[0]!, words[1] ?? ''];
  const n = /^(allow|monitoring)#(\d+)$/.exec(what);
  if (n?.[1] === 'monitoring') return { label: what, entry: { kind: 'monitoring', index: Number(n[2]) - 1 } };
  if (n) return { label: `${role} ${what}`, entry: { kind: 'allow', role, index: Number(n[2]) - 1 } };
  if (what === 'public') return { label: `${role} public`, entry: { kind: 'public', role } };
  if (what === 'ports') return { label: `${role} ports`, entry: { kind: 'ports', role, port: words[2] ?? '' } };
  return { label: shorten(comment) };
}

function shorten(text: string, max = 72): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** The inventory path of an entry, for the YAML locator (`ports` and `management` need the list as written). */
export function entryPath(
  entry: Entry,
  written: { management?: readonly string[]; ports?: readonly string[]; host?: { role: string; name: string } },
  source?: (cidr: string) => boolean,
): PathSegment[] {
  switch (entry.kind) {
    case 'fleet':
      return written.host ? ['roles', written.host.role, 'hosts', written.host.name] : ['trust'];
    case 'management': {
      const i = (written.management ?? []).findIndex((c) => source?.(c) ?? false);
      return i >= 0 ? ['management', i] : ['management'];
    }
    case 'monitoring':
      return ['monitoring', entry.index];
    case 'allow':
      return ['roles', entry.role, 'allow', entry.index];
    case 'public':
      return ['roles', entry.role, 'public'];
    case 'ports': {
      const i = (written.ports ?? []).indexOf(entry.port);
      return i >= 0 ? ['roles', entry.role, 'ports', i] : ['roles', entry.role, 'ports'];
    }
  }
}
