import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError } from '../errors.js';
import { parseManifest } from './manifest.js';
import type { PublishReport } from './publish-tree.js';
import { manifestPath, stampRelease } from './publish-tree.js';

/**
 * Staged releases. Hosts are put in waves at `agent install --canary N --waves ...` (the split `ship`
 * uses, over the whole inventory; wave 1 is the canary when there is one), and an agent in wave K reads
 * `roles/ROLE/waves/K/manifest` instead of `roles/ROLE/manifest`. A publish into a staged tree puts a
 * new release in `roles/ROLE/manifest` and in wave 1 only; `publish --advance` copies it into the next
 * wave once every host of the open waves runs it (checked over SSH). The copies are the same bytes as
 * the signed manifest, signature included: advancing needs no key. The tree's `waves` file holds the
 * split and how many waves are open.
 */
export interface WavePlan {
  readonly canary: number;
  /** Cumulative shares of the fleet, the last 100 (`--waves 10%,50%,100%`). */
  readonly waves: readonly number[];
  /** Waves the split makes of the inventory's hosts (empty waves are skipped, as ship skips them). */
  readonly stages: number;
  /** Waves 1..open serve each role's newest release. */
  readonly open: number;
}

/** The staged tree's state file, at the root of the tree. */
export const WAVES_FILE = 'waves';

/** Where the hosts of wave `k` read a role's manifest. */
export function waveManifestPath(role: string, k: number): string {
  return `roles/${role}/waves/${k}/manifest`;
}

/** The staging state of a tree; undefined when it is not staged. */
export function readWaves(out: string): WavePlan | undefined {
  let text: string;
  try {
    text = readFileSync(join(out, WAVES_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const kv = new Map(text.split('\n').map((l) => [l.split(' ')[0], l.split(' ').slice(1).join(' ')] as const));
  const num = (k: string): number => (/^[0-9]{1,6}$/.test(kv.get(k) ?? '') ? Number(kv.get(k)) : NaN);
  const waves = (kv.get('waves') ?? '').split(',').map((w) => Number(w.replace(/%$/, '')));
  const plan = { canary: num('canary'), waves, stages: num('stages'), open: num('open') };
  if (
    kv.get('fwgen-waves') !== '1' ||
    [plan.canary, plan.stages, plan.open, ...waves].some((n) => !Number.isInteger(n))
  )
    throw new UsageError(`${join(out, WAVES_FILE)} is not a staging file this fwgen writes`);
  return plan;
}

/** The staging file's text. */
export function formatWaves(p: WavePlan): string {
  return `fwgen-waves 1\ncanary ${p.canary}\nwaves ${p.waves.map((w) => `${w}%`).join(',')}\nstages ${p.stages}\nopen ${p.open}\n`;
}

/** A role's served manifest and signature, as bytes. */
export interface Served {
  readonly manifest: Buffer;
  readonly sig: Buffer;
}

/** What the tree serves for each role now (before a publish changes it). */
export function servedNow(out: string, roles: readonly string[], path = manifestPath): Map<string, Served> {
  const found = new Map<string, Served>();
  for (const role of roles) {
    const m = join(out, path(role));
    if (existsSync(m) && existsSync(`${m}.sig`))
      found.set(role, { manifest: readFileSync(m), sig: readFileSync(`${m}.sig`) });
  }
  return found;
}

/** The serial of a served manifest (NaN when unreadable). */
function serialOf(s: Served | undefined): number {
  const m = s ? parseManifest(s.manifest.toString('utf8')) : 'none';
  return typeof m === 'string' ? NaN : m.serial;
}

/**
 * After a publish into a staged tree (`before`: what it served until then): a role's new release goes
 * to wave 1 only (the others keep serving the previous one; a wave that served nothing yet gets the
 * previous one too, or nothing for a new role); a release signed again for a later expiry replaces
 * every wave's copy of that serial. Returns the plan with only wave 1 open when a release is new.
 */
export function stagePublished(
  out: string,
  plan: WavePlan,
  report: PublishReport,
  before: Map<string, Served>,
): WavePlan {
  const latest = servedNow(
    out,
    report.roles.map((r) => r.role),
  );
  let fresh = false;
  for (const r of report.roles) {
    const now = latest.get(r.role);
    for (let k = 1; k <= plan.stages; k++) {
      const path = join(out, waveManifestPath(r.role, k));
      const served = servedNow(out, [r.role], (role) => waveManifestPath(role, k)).get(r.role);
      if (r.action === 'new' && k === 1 && now) write(path, now);
      else if (r.action === 'refreshed' && now && serialOf(served) === r.serial) write(path, now);
      else if (!served && (r.action === 'new' ? before.get(r.role) : now))
        write(path, (r.action === 'new' ? before.get(r.role) : now)!);
    }
    if (r.action === 'new') fresh = true;
  }
  return fresh ? { ...plan, open: 1 } : plan;
}

/** Opens wave `k`: each role's newest release is copied into it. */
export function openWave(out: string, roles: readonly string[], k: number): void {
  for (const [role, s] of servedNow(out, roles)) write(join(out, waveManifestPath(role, k)), s);
}

/** Writes the staging file (by rename). */
export function writeWaves(out: string, plan: WavePlan): void {
  writeFileSync(join(out, `${WAVES_FILE}.tmp`), formatWaves(plan));
  renameSync(join(out, `${WAVES_FILE}.tmp`), join(out, WAVES_FILE));
}

/** The signature goes live before its manifest (as publish writes them): a poll in between fetches both again. */
function write(path: string, s: Served): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, s.manifest);
  writeFileSync(`${path}.tmp.sig`, s.sig);
  stampRelease(`${path}.tmp`, s.manifest.toString('utf8'));
  renameSync(`${path}.tmp.sig`, `${path}.sig`);
  renameSync(`${path}.tmp`, path);
}

/** What one host of an open wave says (read over SSH, as status reads it). */
export interface WaveHost {
  readonly host: string;
  readonly role: string;
  /** The wave the split puts the host in. */
  readonly wave: number;
  /** Its agent's state; undefined: no agent; a string: why the host could not be read. */
  readonly agent?: { readonly serial: number; readonly outcome: string; readonly wave: number } | string;
}

/** Why the next wave may not open yet: every host of the open waves must run its role's newest release. */
export function advanceProblems(hosts: readonly WaveHost[], latest: ReadonlyMap<string, number>): string[] {
  return hosts.flatMap((h) => {
    const want = latest.get(h.role);
    const a = h.agent;
    if (typeof a === 'string') return [`${h.host}: not read (${a})`];
    if (!a) return [`${h.host}: no agent (fwgen agent install)`];
    if (a.wave !== h.wave)
      return [
        `${h.host}: its agent is in wave ${a.wave || 'none'}, the split puts it in wave ${h.wave} (agent install with the same --canary and --waves)`,
      ];
    if (a.outcome.startsWith('kept')) return [`${h.host}: last poll ${a.outcome}`];
    if (want !== undefined && a.serial < want) return [`${h.host}: runs serial ${a.serial}, not yet ${want}`];
    return [];
  });
}
