import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import type { RenderedFile } from '../render/render-role.js';
import { RULES_FILE } from '../render/render-role.js';

export type ChangeStatus = 'added' | 'updated' | 'removed' | 'unchanged';

/** What writing one file would do; `before`/`after` are kept for diffs. */
export interface FileChange {
  readonly path: string;
  readonly status: ChangeStatus;
  readonly before?: Buffer;
  readonly after?: Buffer;
}

const OWNED = new Set(Object.values(RULES_FILE));

/** Compares rendered files with the output folder. `roles` limits removals to those roles' folders. */
export function planOutput(files: readonly RenderedFile[], outDir: string, roles?: ReadonlySet<string>): FileChange[] {
  const changes: FileChange[] = files.map((f) => {
    const after = Buffer.from(f.content, 'utf8');
    const before = readIfExists(join(outDir, f.path));
    const status: ChangeStatus = before === undefined ? 'added' : before.equals(after) ? 'unchanged' : 'updated';
    return { path: f.path, status, before, after };
  });
  const wanted = new Set(files.map((f) => f.path));
  for (const path of listOwnedFiles(outDir)) {
    const role = path.split('/')[0];
    if (wanted.has(path) || (roles && !roles.has(role))) continue;
    changes.push({ path, status: 'removed', before: readIfExists(join(outDir, path)) });
  }
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Writes added/updated files (atomically, via rename) and deletes removed ones. */
export function applyOutput(changes: readonly FileChange[], outDir: string): void {
  for (const c of changes) {
    const target = join(outDir, c.path);
    if (c.status === 'added' || c.status === 'updated') {
      mkdirSync(dirname(target), { recursive: true });
      const tmp = `${target}.tmp-${process.pid}`;
      writeFileSync(tmp, c.after!);
      renameSync(tmp, target);
    } else if (c.status === 'removed') {
      unlinkSync(target);
      removeIfEmpty(dirname(target));
    }
  }
}

/** A short unified diff of one change, at most `maxLines` lines. */
export function diffChange(c: FileChange, maxLines = 40): string {
  const patch = createTwoFilesPatch(`a/${c.path}`, `b/${c.path}`, c.before?.toString('utf8') ?? '', c.after?.toString('utf8') ?? '', '', '', { context: 1 });
  const lines = patch.split('\n').slice(2).filter((l) => l !== '');
  if (lines.length <= maxLines) return lines.join('\n');
  return [...lines.slice(0, maxLines), `... (${lines.length - maxLines} more diff lines)`].join('\n');
}

function listOwnedFiles(outDir: string): string[] {
  if (!existsSync(outDir)) return [];
  const out: string[] = [];
  for (const dir of readdirSync(outDir, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(join(outDir, dir.name))) if (OWNED.has(f)) out.push(`${dir.name}/${f}`);
  }
  return out;
}

function readIfExists(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function removeIfEmpty(dir: string): void {
  if (readdirSync(dir).length === 0) rmdirSync(dir);
}
