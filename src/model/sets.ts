import type { IpSet, SetFamily } from './ruleset.js';

/** The name a set is loaded under before `ipset swap` puts it in place: same length, never `fwgen-*`. */
export function stagingSetName(name: string): string {
  return name.startsWith('fwgen-') ? `fwgen~${name.slice('fwgen-'.length)}` : `${name.slice(0, 30)}~`;
}

/** One set as `ipset save` prints it: the `create` line, then one `add` line per member. */
export function emitSet(set: IpSet, name = set.name): string {
  const opts = set.options.length > 0 ? ` ${set.options.join(' ')}` : '';
  let out = `create ${name} ${set.type} family ${set.family}${opts}\n`;
  for (const m of set.members) out += `add ${name} ${m}\n`;
  return out;
}

/** Sets in `ipset restore` format, after optional header comment lines; `rename` maps each name. */
export function emitSets(
  sets: readonly IpSet[],
  header: readonly string[] = [],
  rename?: (n: string) => string,
): string {
  const body = sets.map((s) => emitSet(s, rename ? rename(s.name) : s.name)).join('');
  return header.map((l) => `${l}\n`).join('') + body;
}

/** A line of `ipset save` text the parser could not read. */
export interface SetParseProblem {
  readonly line: number;
  readonly text: string;
  readonly message: string;
}

/**
 * Parses `ipset save` (or `ipset restore`) text: sets in order of their `create` line, members sorted
 * (the kernel prints them in hash order; `keepOrder` leaves them as written, for a reader that only
 * looks addresses up). `/32` and `/128` are dropped, as `ipset save` prints them.
 */
export function parseSets(
  text: string,
  opts: { keepOrder?: boolean } = {},
): { sets: IpSet[]; problems: SetParseProblem[] } {
  const drafts = new Map<string, { set: Omit<IpSet, 'members'>; members: string[] }>();
  const problems: SetParseProblem[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const words = line.split(/\s+/);
    const problem = (message: string): void => void problems.push({ line: i + 1, text: line, message });
    if (words[0] === 'create' && words.length >= 5 && words[3] === 'family') {
      const family = words[4] as SetFamily;
      if (family !== 'inet' && family !== 'inet6') return problem(`unknown set family ${words[4]}`);
      drafts.set(words[1]!, {
        set: { name: words[1]!, type: words[2]!, family, options: words.slice(5) },
        members: [],
      });
    } else if (words[0] === 'add' && words.length >= 3) {
      const d = drafts.get(words[1]!);
      if (!d) return problem(`add to set ${words[1]} before its create line`);
      d.members.push(canonicalMember(words[2]!));
    } else {
      problem('expected "create NAME TYPE family inet|inet6 ...", "add NAME MEMBER" or a comment');
    }
  });
  const sets = [...drafts.values()].map(({ set, members }) => ({
    ...set,
    members: opts.keepOrder ? members : sortMembers(members),
  }));
  return { sets, problems };
}

/** A network as `ipset save` prints it: `198.51.100.7/32` becomes `198.51.100.7`. */
export function canonicalMember(cidr: string): string {
  const hostPrefix = cidr.includes(':') ? '/128' : '/32';
  return cidr.endsWith(hostPrefix) ? cidr.slice(0, -hostPrefix.length) : cidr;
}

/** Sorted by address (IPv4 numerically, IPv6 by expanded text), then prefix: the order fwgen renders. */
export function sortMembers(members: readonly string[]): string[] {
  const keyed = [...new Set(members)].map((m) => [memberKey(m), m] as const);
  return keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((x) => x[1]);
}

function memberKey(m: string): string {
  const [addr, prefix] = m.split('/');
  if (!addr!.includes(':')) {
    const bytes = addr!
      .split('.')
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('');
    return `4${bytes}${(prefix ?? '32').padStart(3, '0')}`;
  }
  const [head, tail] = addr!.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return `6${groups.map((g) => g.padStart(4, '0')).join('')}${(prefix ?? '128').padStart(3, '0')}`;
}

/**
 * fwgen's live sets (`ipset save` text) against the wanted ones, as diff lines (wanted → live):
 * `-create NAME TYPE family F` a set the host lacks (or has with another type or family), `-add NAME M`
 * a member it lacks, `+add NAME M` one it has in addition, `+create NAME TYPE family F` a live set no
 * wanted one names (ship drops it). Create options aside: the kernel adds its own. Empty: in step.
 */
export function diffSets(wanted: string, live: string): string[] {
  const have = new Map(parseSets(live).sets.map((x) => [x.name, x]));
  const head = (s: IpSet) => `create ${s.name} ${s.type} family ${s.family}`;
  const lines = parseSets(wanted).sets.flatMap((want) => {
    const l = have.get(want.name);
    have.delete(want.name);
    if (!l) return [`-${head(want)}`];
    if (l.type !== want.type || l.family !== want.family) return [`-${head(want)}`, `+${head(l)}`];
    const { missing, extra } = diffMembers(want.members, l.members);
    return [...missing.map((m) => `-add ${want.name} ${m}`), ...extra.map((m) => `+add ${want.name} ${m}`)];
  });
  return [...lines, ...[...have.values()].map((l) => `+${head(l)}`)];
}

/** Members of the first list missing from the second, and the second's missing from the first. */
export function diffMembers(want: readonly string[], live: readonly string[]): { missing: string[]; extra: string[] } {
  const w = new Set(want);
  const l = new Set(live);
  return { missing: want.filter((m) => !l.has(m)), extra: live.filter((m) => !w.has(m)) };
}
