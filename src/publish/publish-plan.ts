import { createHash } from 'node:crypto';
import type { Inventory } from '../inventory/model.js';
import { parseSets, emitSets } from '../model/sets.js';
import type { IpSet } from '../model/ruleset.js';
import { RULES_FILE, SETS_FILE, type RenderedFile } from '../render/render-role.js';
import { MANIFEST_FORMAT, sameContent, type Manifest, type ManifestFile, type ReleaseFileName } from './manifest.js';

/** One file of a role's release: its manifest entry and its bytes (parts shared between roles). */
export interface ReleaseFile extends ManifestFile {
  readonly parts: readonly Buffer[];
}

/** What a role's release holds. */
export interface RoleRelease {
  readonly role: string;
  readonly files: readonly ReleaseFile[];
}

/** What publish does with a role: a new release, the same release signed again before it expires, or nothing. */
export type RoleAction = 'new' | 'refreshed' | 'kept';

export interface RolePlan {
  readonly role: string;
  readonly action: RoleAction;
  readonly manifest: Manifest;
  readonly files: readonly ReleaseFile[];
}

/** Settings of one publish. */
export interface PublishSettings {
  /** Epoch seconds. */
  readonly now: number;
  readonly expiresS: number;
  readonly commit: string;
  readonly inventory: string;
  readonly preserve: readonly string[];
}

/**
 * The release of every role from rendered files: its rules files and, in ipset mode, the sets its
 * rules match (the text `ship` sends, so that status compares one sets file with the other).
 */
export function roleReleases(inv: Pick<Inventory, 'roles' | 'sets'>, files: readonly RenderedFile[]): RoleRelease[] {
  const setsFile = files.find((f) => f.path === SETS_FILE);
  const all = setsFile ? new Map(parseSets(textOf(setsFile)).sets.map((s) => [s.name, s])) : undefined;
  const byRole = new Map<string, RenderedFile[]>();
  for (const f of files) if (f.role) byRole.set(f.role, [...(byRole.get(f.role) ?? []), f]);
  return inv.roles
    .filter((r) => byRole.has(r.name))
    .map((r) => {
      const own = byRole.get(r.name)!;
      const rules = (['ipv4', 'ipv6'] as const).flatMap((fam) => {
        const f = own.find((x) => x.family === fam);
        return f ? [releaseFile(RULES_FILE[fam] as ReleaseFileName, f.parts, f.size)] : [];
      });
      const sets = all ? [setsRelease(r.name, own, all)] : [];
      return { role: r.name, files: [...rules, ...sets] };
    });
}

function setsRelease(role: string, own: readonly RenderedFile[], all: ReadonlyMap<string, IpSet>): ReleaseFile {
  const names = [...new Set(own.flatMap((f) => (f.ruleset?.sets ?? []).map((s) => s.name)))].sort();
  const header = [`# fwgen ipsets of role ${role}, from rendered/${SETS_FILE}.`];
  const text = Buffer.from(
    emitSets(
      names.flatMap((n) => (all.has(n) ? [all.get(n)!] : [])),
      header,
    ),
    'utf8',
  );
  return releaseFile('ipset.rules', [text], text.length);
}

function releaseFile(name: ReleaseFileName, parts: readonly Buffer[], size: number): ReleaseFile {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return { name, sha256: hash.digest('hex'), size, parts };
}

function textOf(f: RenderedFile): string {
  return Buffer.concat(f.parts as Buffer[], f.size).toString('utf8');
}

/**
 * Pure: for each role, a new release when its files (or kept chains) differ from the published one,
 * the same release signed again when less than half of its validity is left, else nothing. A new
 * serial is the previous one plus one, or the time in seconds if that is higher: a tree rebuilt from
 * nothing still moves every host forward.
 */
export function planPublish(
  releases: readonly RoleRelease[],
  published: ReadonlyMap<string, Manifest>,
  s: PublishSettings,
): RolePlan[] {
  return releases.map((r) => {
    const prev = published.get(r.role);
    const content = {
      role: r.role,
      commit: s.commit,
      inventory: s.inventory,
      preserve: s.preserve,
      files: r.files.map(({ name, sha256, size }) => ({ name, sha256, size })),
    };
    const dated = (serial: number): Manifest => ({
      format: MANIFEST_FORMAT,
      serial,
      created: s.now,
      expires: s.now + s.expiresS,
      ...content,
    });
    if (!prev || !sameContent(prev, content))
      return { role: r.role, action: 'new', manifest: dated(Math.max((prev?.serial ?? 0) + 1, s.now)), files: r.files };
    if (prev.expires - s.now < s.expiresS / 2)
      return {
        role: r.role,
        action: 'refreshed',
        manifest: { ...dated(prev.serial), commit: prev.commit, inventory: prev.inventory },
        files: r.files,
      };
    return { role: r.role, action: 'kept', manifest: prev, files: r.files };
  });
}
