/**
 * A role's release manifest: what `fwgen publish` signs and agents verify, parse and act on. Plain
 * lines of `key value...`, read on hosts by a POSIX shell (remote/agent.sh), so every value is a
 * word of a strict pattern: the agent checks each line against the same patterns before using it.
 */

/** The format this version writes; agents refuse a manifest of another format. */
export const MANIFEST_FORMAT = 1;

/** One file of a release, fetched by its SHA-256 from `blobs/`. */
export interface ManifestFile {
  /** `iptables.up.rules`, `ip6tables.up.rules` or `ipset.rules`. */
  readonly name: ReleaseFileName;
  readonly sha256: string;
  readonly size: number;
}

export type ReleaseFileName = 'iptables.up.rules' | 'ip6tables.up.rules' | 'ipset.rules';

export const RELEASE_FILE_NAMES: readonly ReleaseFileName[] = [
  'iptables.up.rules',
  'ip6tables.up.rules',
  'ipset.rules',
];

/** A signed release of one role. */
export interface Manifest {
  readonly format: number;
  readonly role: string;
  /** Grows with every release of the role; hosts refuse a lower one than they applied (a replay). */
  readonly serial: number;
  /** Epoch seconds. */
  readonly created: number;
  /** Epoch seconds; hosts refuse the manifest after this. */
  readonly expires: number;
  /** Inventory git commit (`+dirty` for uncommitted changes), `-` outside git. */
  readonly commit: string;
  /** The inventory's path as rendered headers name it. */
  readonly inventory: string;
  /** Chain patterns of other tools whose chains and jumps the agent keeps (`preserve:`). */
  readonly preserve: readonly string[];
  readonly files: readonly ManifestFile[];
}

const PATTERNS = {
  role: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
  number: /^[0-9]{1,12}$/,
  commit: /^([0-9a-f]{7,64}(\+dirty)?|-)$/,
  inventory: /^[A-Za-z0-9._/@+~-]{1,200}$/,
  preserve: /^[A-Za-z0-9_.*?-]{1,28}$/,
  sha256: /^[0-9a-f]{64}$/,
};

/** The manifest's text, in the order agents read it. */
export function formatManifest(m: Manifest): string {
  const iso = (s: number): string => new Date(s * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  return [
    `fwgen-release ${m.format}`,
    `role ${m.role}`,
    `serial ${m.serial}`,
    `created ${m.created} ${iso(m.created)}`,
    `expires ${m.expires} ${iso(m.expires)}`,
    `commit ${m.commit}`,
    `inventory ${m.inventory}`,
    `preserve ${m.preserve.join(' ')}`.trimEnd(),
    ...m.files.map((f) => `file ${f.name} ${f.sha256} ${f.size}`),
    '',
  ].join('\n');
}

/** Parses a manifest (text from the published tree: every value is checked); a string says what is wrong. */
export function parseManifest(text: string): Manifest | string {
  const fields = new Map<string, string[]>();
  const files: ManifestFile[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [key, ...words] = line.split(' ');
    if (key === 'file') {
      const [name, sha256, size] = words;
      if (!RELEASE_FILE_NAMES.includes(name as ReleaseFileName) || !PATTERNS.sha256.test(sha256 ?? ''))
        return `bad file line: ${line}`;
      if (!PATTERNS.number.test(size ?? '')) return `bad file size: ${line}`;
      if (files.some((f) => f.name === name)) return `file ${name} listed twice`;
      files.push({ name: name as ReleaseFileName, sha256, size: Number(size) });
    } else fields.set(key, words);
  }
  // created and expires carry the time as text after the seconds; every other key has exactly one word.
  const one = (k: string, re: RegExp): string | undefined => {
    const words = fields.get(k) ?? [];
    const v = words[0];
    const count = k === 'created' || k === 'expires' ? 2 : 1;
    return v !== undefined && words.length === count && re.test(v) ? v : undefined;
  };
  if (fields.get('fwgen-release')?.[0] !== String(MANIFEST_FORMAT)) return 'not a fwgen release of this format';
  const role = one('role', PATTERNS.role);
  const [serial, created, expires] = ['serial', 'created', 'expires'].map((k) => one(k, PATTERNS.number));
  const commit = one('commit', PATTERNS.commit);
  const inventory = one('inventory', PATTERNS.inventory);
  const preserve = fields.get('preserve') ?? [];
  if (!role || !serial || !created || !expires || !commit || !inventory) return 'a field is missing or malformed';
  if (!preserve.every((p) => PATTERNS.preserve.test(p))) return 'bad preserve pattern';
  return {
    format: MANIFEST_FORMAT,
    role,
    serial: Number(serial),
    created: Number(created),
    expires: Number(expires),
    commit,
    inventory,
    preserve,
    files,
  };
}

/** Two releases hold the same rules: same files (name, SHA-256, size) and the same kept chains. */
export function sameContent(a: Manifest, b: Omit<Manifest, 'serial' | 'created' | 'expires' | 'format'>): boolean {
  const key = (m: Pick<Manifest, 'files' | 'preserve' | 'role'>): string =>
    JSON.stringify([m.role, m.preserve, m.files.map((f) => [f.name, f.sha256, f.size])]);
  return key(a) === key(b);
}
