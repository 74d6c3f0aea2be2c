import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { describeDiff, type DiffReport } from '../access/describe.js';
import { diffAccess } from '../access/diff.js';
import { fleetRulesOf, type FleetRules } from '../access/fleet.js';
import { formatDiff, type DiffFormat } from '../access/format.js';
import { diffMembership } from '../access/membership.js';
import { UsageError, WorkFailedError } from '../errors.js';
import { loadInventory, parseInventory } from '../inventory/load-inventory.js';
import type { Family, Inventory } from '../inventory/model.js';
import { setsMatched } from '../model/ruleset.js';
import { buildRulesets, renderRulesets, type RenderedFile } from '../render/render-role.js';
import { RULES_FILE } from '../render/rendered-files.js';
import { builtinTemplatesDir, findUserTemplatesDir, loadTemplates } from '../render/templates.js';
import { positiveInt } from './options.js';
import { printWarnings, resolveProject, VERSION } from './project.js';

export interface DiffOptions {
  inventory: string;
  templates?: string;
  format: string;
  exitCode?: boolean;
  maxBytes?: string;
}

/** One revision of the inventory, rendered in memory. */
interface Revision {
  readonly label: string;
  readonly fleet: FleetRules;
  readonly files: ReadonlyMap<string, RenderedFile>;
  /** Set when the revision has no inventory file: an empty fleet. */
  readonly missing?: boolean;
}

const FORMATS: readonly DiffFormat[] = ['text', 'md', 'json'];

/** `fwgen diff [BASE [HEAD]]`: the access that changed between two revisions, not the text. */
export async function diffCommand(
  base: string | undefined,
  head: string | undefined,
  opts: DiffOptions,
): Promise<void> {
  const format = opts.format as DiffFormat;
  if (!FORMATS.includes(format)) throw new UsageError(`--format ${opts.format} is not one of ${FORMATS.join(', ')}`);
  const maxBytes = opts.maxBytes === undefined ? undefined : positiveInt(opts.maxBytes, '--max-bytes');
  const repo = gitRepo(opts.inventory);
  const before = readRevision(repo, base ?? 'HEAD', opts);
  const after = head === undefined ? workingTree(opts) : readRevision(repo, head, opts);
  const report = compare(before, after);
  process.stdout.write(formatDiff(report, format, maxBytes));
  if (opts.exitCode && accessChanged(report)) {
    throw new WorkFailedError(
      `access changed: ${report.changes.length} change(s), ${report.membership.length} host(s)`,
    );
  }
}

function compare(before: Revision, after: Revision): DiffReport {
  const changed = [...new Set([...before.files.keys(), ...after.files.keys()])].filter(
    (p) => !sameBytes(before.files.get(p), after.files.get(p)),
  );
  const changedPaths = new Set(changed);
  // A role whose files print the same, matching sets with the same members, admits the same connections.
  const same = (role: string, family: Family): boolean => {
    const path = `${role}/${RULES_FILE[family]}`;
    if (changedPaths.has(path) || !before.files.has(path)) return false;
    const rs = after.fleet.rulesets.get(role)?.[family];
    return (
      rs !== undefined && setsMatched(rs).every((n) => sameList(before.fleet.sets.get(n), after.fleet.sets.get(n)))
    );
  };
  const diff = diffAccess(before.fleet, after.fleet, same);
  const report = describeDiff({
    base: before.fleet,
    head: after.fleet,
    baseLabel: before.label,
    headLabel: after.label,
    diff,
    membership: diffMembership(before.fleet.inventory, after.fleet.inventory),
    renderedFilesChanged: changed.length,
  });
  const notes = [before, after].filter((r) => r.missing).map((r) => `= ${r.label} has no inventory: an empty fleet`);
  return notes.length > 0 ? { ...report, lines: [...notes, ...report.lines] } : report;
}

/** Whether the report holds a change of access (a rename alone is none). */
export function accessChanged(r: DiffReport): boolean {
  return r.changes.length > 0 || r.membership.some((m) => m.change !== 'renamed' || m.access.length > 0);
}

// ---- revisions ---------------------------------------------------------------------------------------------

interface Repo {
  /** The repository's top folder. */
  readonly top: string;
  /** The inventory file, relative to the top. */
  readonly inventory: string;
  /** Where templates may be, relative to the top, in the order render looks. */
  readonly templateDirs: readonly string[];
  /** The inventory as named in headers and messages. */
  readonly label: string;
}

function git(top: string, args: string[], input?: string): { code: number; out: Buffer; err: string } {
  const r = spawnSync('git', args, { cwd: top, input, maxBuffer: 1 << 30 });
  if (r.error)
    throw new UsageError(`cannot run git: ${r.error.message}`, 'install git; fwgen diff reads revisions with it');
  return { code: r.status ?? 1, out: r.stdout, err: r.stderr.toString() };
}

function gitRepo(inventory: string): Repo {
  const dir = dirname(resolve(inventory));
  if (!existsSync(dir)) throw new UsageError(`${dirname(inventory)} does not exist`, 'pass the inventory with -i PATH');
  const r = git(dir, ['rev-parse', '--show-toplevel']);
  if (r.code !== 0) {
    throw new UsageError(
      `${inventory} is not in a git repository`,
      'fwgen diff compares git revisions of the inventory',
    );
  }
  const top = realpathSync(r.out.toString().trim());
  const invRel = relative(top, join(realpathSync(dir), basename(inventory)));
  const invDir = dirname(invRel);
  const templateDirs = [join(invDir, 'templates'), join(invDir, '..', 'templates')].filter((d) => !d.startsWith('..'));
  return { top, inventory: invRel, templateDirs, label: inventory };
}

function readRevision(repo: Repo, rev: string, opts: DiffOptions): Revision {
  const sha = git(repo.top, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  if (sha.code !== 0)
    throw new UsageError(`${rev} is not a git revision of ${repo.top}`, 'name a commit, branch or tag');
  const commit = sha.out.toString().trim();
  const label = `${rev} (${commit.slice(0, 7)})`;
  const explicit = opts.templates === undefined ? undefined : relative(repo.top, realpathSync(resolve(opts.templates)));
  const dirs = explicit !== undefined ? [explicit] : repo.templateDirs;
  const listed = git(repo.top, ['ls-tree', '-r', '-z', '--full-tree', commit, '--', repo.inventory, ...dirs]);
  if (listed.code !== 0) throw new UsageError(`cannot list ${rev}: ${listed.err.trim()}`);
  const entries = listed.out
    .toString()
    .split('\0')
    .filter(Boolean)
    .map((line) => {
      const [meta, path] = line.split('\t') as [string, string];
      const [, type, oid] = meta.split(' ') as [string, string, string];
      return { type, oid, path };
    })
    .filter((e) => e.type === 'blob');
  const blobs = readBlobs(
    repo.top,
    entries.map((e) => e.oid),
  );
  const inventoryBlob = entries.find((e) => e.path === repo.inventory);
  if (!inventoryBlob) return emptyRevision(label);
  const loaded = parseInventory(blobs.get(inventoryBlob.oid)!.toString('utf8'), `${rev}:${repo.inventory}`);
  printWarnings(loaded.warnings);
  // The revision's templates go to a temporary folder, where loadTemplates reads them like any other.
  const dir = explicit ?? dirs.find((d) => entries.some((e) => e.path.startsWith(`${d}/`) && e.path.endsWith('.njk')));
  const builtin =
    dir !== undefined && existsSync(join(repo.top, dir)) && sameDir(join(repo.top, dir), builtinTemplatesDir);
  const tmp = mkdtempSync(join(tmpdir(), 'fwgen-diff-'));
  try {
    let userDir: string | undefined;
    if (dir !== undefined && !builtin) {
      userDir = join(tmp, 'templates');
      mkdirSync(userDir, { recursive: true });
      for (const e of entries.filter((x) => x.path.startsWith(`${dir}/`))) {
        const to = join(userDir, e.path.slice(dir.length + 1));
        mkdirSync(dirname(to), { recursive: true });
        writeFileSync(to, blobs.get(e.oid)!);
      }
    }
    return rendered(label, loaded.inventory, userDir, repo.label);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function sameDir(a: string, b: string): boolean {
  try {
    return statSync(a).ino === statSync(b).ino && statSync(a).dev === statSync(b).dev;
  } catch {
    return false;
  }
}

/** Blob contents by object id, read with one `git cat-file --batch`. */
function readBlobs(top: string, oids: readonly string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (oids.length === 0) return out;
  const r = git(top, ['cat-file', '--batch'], `${oids.join('\n')}\n`);
  let at = 0;
  const buf = r.out;
  while (at < buf.length) {
    const eol = buf.indexOf(10, at);
    const [oid, , size] = buf.subarray(at, eol).toString().split(' ') as [string, string, string];
    const start = eol + 1;
    out.set(oid, buf.subarray(start, start + Number(size)));
    at = start + Number(size) + 1;
  }
  return out;
}

function workingTree(opts: DiffOptions): Revision {
  if (!existsSync(opts.inventory)) return emptyRevision('working tree');
  const loaded = loadInventory(opts.inventory);
  printWarnings(loaded.warnings);
  return rendered(
    'working tree',
    loaded.inventory,
    findUserTemplatesDir(loaded.inventory.dir, opts.templates),
    opts.inventory,
  );
}

function rendered(label: string, inv: Inventory, templatesDir: string | undefined, inventoryLabel: string): Revision {
  const templates = loadTemplates(templatesDir);
  const meta = { inventory: inventoryLabel, version: VERSION };
  const built = buildRulesets(resolveProject(inv, templates), templates, meta);
  const fleet = fleetRulesOf(inv, built);
  const files = new Map(renderRulesets(built, meta).map((f) => [f.path, f]));
  return { label, fleet, files };
}

const EMPTY: Inventory = {
  file: '',
  dir: '.',
  rulesPath: '/etc/iptables.up.rules',
  management: [],
  monitoring: [],
  trust: 'fleet',
  sets: 'none',
  preserve: [],
  roles: [],
  hosts: [],
  ipv6: 'leave',
  hasIpv6: false,
};

function emptyRevision(label: string): Revision {
  return { label, fleet: { inventory: EMPTY, rulesets: new Map(), sets: new Map() }, files: new Map(), missing: true };
}

// ---- comparing rendered bytes ------------------------------------------------------------------------------

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const samePart = new WeakMap<Buffer, WeakMap<Buffer, boolean>>();

/** Whether two rendered files hold the same bytes, part by part (shared blocks compared once). */
function sameBytes(a: RenderedFile | undefined, b: RenderedFile | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.size !== b.size) return false;
  if (a.parts.length === b.parts.length && a.parts.every((p, i) => p.length === b.parts[i]!.length)) {
    return a.parts.every((p, i) => {
      const q = b.parts[i]!;
      let inner = samePart.get(p);
      if (!inner) samePart.set(p, (inner = new WeakMap()));
      let same = inner.get(q);
      if (same === undefined) inner.set(q, (same = p.equals(q)));
      return same;
    });
  }
  return Buffer.concat(a.parts as Buffer[]).equals(Buffer.concat(b.parts as Buffer[]));
}
