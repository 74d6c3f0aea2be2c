import { structuredPatch } from 'diff';

/** How a host's live `*filter` table compares with its rendered file. */
export interface LiveComparison {
  /** True when every chain fwgen manages has the rendered policy and rules, in order. */
  readonly inSync: boolean;
  /** Unified-diff lines (rendered → live) of the managed chains; empty when in sync. */
  readonly drift: string[];
  /** Chains the host has that the rendered file does not declare (Docker's, `f2b-*`, `KUBE-*`, ...). */
  readonly foreignChains: string[];
  /** Rules in managed chains that jump to another tool's chain (Docker, fail2ban, ...): its hook, not drift. */
  readonly foreignRules: string[];
}

/** Labels for the two sides of the drift diff. */
export interface CompareLabels {
  readonly rendered: string;
  readonly live: string;
}

/** The `*filter` table of an iptables-save/restore text: chain policies and rules, in order. */
export interface FilterTable {
  /** Declared chains in declaration order, with the policy (`-` for user chains). */
  readonly chains: ReadonlyMap<string, string>;
  /** Rules per chain, normalized, in order. */
  readonly rules: ReadonlyMap<string, readonly string[]>;
}

const BUILTIN_CHAINS = ['INPUT', 'FORWARD', 'OUTPUT'] as const;
/** Chains other tools own: Docker, fail2ban, Kubernetes, ufw, Calico, Cilium, libvirt, firewalld. */
const KNOWN_FOREIGN = /^(DOCKER|f2b-|fail2ban-|KUBE-|ufw6?-|cali-|CILIUM_|LIBVIRT_|FWD_|IN_|OUT_|FORWARD_)/;
const JUMP_FLAGS = new Set(['-j', '--jump', '-g', '--goto']);

/**
 * Compares the live ruleset (`iptables-save -t filter`) with the rendered file, in the `*filter`
 * table only. Chains the rendered file declares are fwgen's; the others are foreign and never drift.
 */
export function compareLive(rendered: string, live: string, labels: CompareLabels = { rendered: 'rendered', live: 'live' }): LiveComparison {
  const want = parseFilter(rendered);
  const have = parseFilter(live);
  const managed = [...want.chains.keys()];
  const foreignChains = [...have.chains.keys()].filter((c) => !want.chains.has(c));
  // Only other tools' well-known hooks are exempt: a jump from INPUT into any other chain fwgen does
  // not declare (`-I INPUT -j X`, `-A X -j ACCEPT`) could open the host, so it is drift.
  const foreign = new Set(foreignChains.filter((c) => KNOWN_FOREIGN.test(c)));
  const foreignRules = managed.flatMap((c) => (have.rules.get(c) ?? []).filter((r) => jumpsTo(r, foreign)));
  const wanted = managedView(want, managed, () => false);
  const found = managedView(have, managed, (r) => jumpsTo(r, foreign));
  const inSync = wanted.length === found.length && wanted.every((line, i) => line === found[i]);
  return { inSync, drift: inSync ? [] : diffLines(wanted, found, labels), foreignChains, foreignRules };
}

/** Parses the first `*filter` table; a text without one stands for an empty table (built-in chains accepting). */
export function parseFilter(text: string): FilterTable {
  const lines = text.split(/\r?\n/).map((l) => l.trimEnd());
  const start = lines.indexOf('*filter');
  if (start < 0) return { chains: new Map(BUILTIN_CHAINS.map((c) => [c, 'ACCEPT'])), rules: new Map() };
  const chains = new Map<string, string>();
  const rules = new Map<string, string[]>();
  for (const line of lines.slice(start + 1)) {
    if (line === 'COMMIT' || line.startsWith('*')) break;
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith(':')) {
      const [name, policy = '-'] = line.slice(1).split(/\s+/);
      chains.set(name, policy);
      continue;
    }
    const rule = line.replace(/^\[\d+:\d+\]\s+/, '');
    const chain = /^-[AI]\s+(\S+)/.exec(rule)?.[1] ?? '';
    rules.set(chain, [...(rules.get(chain) ?? []), rule]);
  }
  return { chains, rules };
}

/** The managed chains as comparable lines: declarations (counters zeroed), then each chain's rules. */
function managedView(t: FilterTable, managed: readonly string[], skip: (rule: string) => boolean): string[] {
  const declared = managed.filter((c) => t.chains.has(c)).map((c) => `:${c} ${t.chains.get(c)} [0:0]`);
  return [...declared, ...managed.flatMap((c) => (t.rules.get(c) ?? []).filter((r) => !skip(r)))];
}

/** True when the rule's target (`-j`/`-g`) is one of `chains`. */
function jumpsTo(rule: string, chains: ReadonlySet<string>): boolean {
  const words = tokenize(rule);
  return words.some((w, i) => JUMP_FLAGS.has(w) && chains.has(words[i + 1] ?? ''));
}

/** Splits a rule into words as the shell-like iptables-save quoting intends: `"..."` with `\` escapes. */
function tokenize(rule: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quoted = false;
  for (let i = 0; i < rule.length; i++) {
    const ch = rule[i];
    if (!quoted && /\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (ch === '"') {
      quoted = !quoted;
      word ??= '';
    } else {
      word = (word ?? '') + (quoted && ch === '\\' && i + 1 < rule.length ? rule[++i] : ch);
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

function diffLines(wanted: readonly string[], found: readonly string[], labels: CompareLabels): string[] {
  const patch = structuredPatch(labels.rendered, labels.live, `${wanted.join('\n')}\n`, `${found.join('\n')}\n`, undefined, undefined, { context: 2 });
  return [
    `--- ${labels.rendered}`,
    `+++ ${labels.live}`,
    ...patch.hunks.flatMap((h) => [`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`, ...h.lines]),
  ];
}
