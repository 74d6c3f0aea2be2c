import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmdirSync,
  rmSync,
  unlinkSync,
  writevSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { RenderedFile } from '../render/render-role.js';
import { RULES_FILE, SETS_FILE, renderedText } from '../render/render-role.js';
import { checkLinksStayInside } from '../util/contained-path.js';

export type ChangeStatus = 'added' | 'updated' | 'removed' | 'unchanged';

/** What writing one file would do. */
export interface FileChange {
  readonly path: string;
  readonly status: ChangeStatus;
  /** The new content; absent for removals. */
  readonly file?: RenderedFile;
}

const OWNED = new Set([...Object.values(RULES_FILE), SETS_FILE.split('/')[1]!]);

/** Compares rendered files with the output folder. `roles` limits removals to those roles' folders. */
export function planOutput(files: readonly RenderedFile[], outDir: string, roles?: ReadonlySet<string>): FileChange[] {
  const checkLinks = linkChecker(outDir, files);
  const scratch = { buf: Buffer.alloc(0) };
  const changes: FileChange[] = files.map((file) => ({
    path: file.path,
    status: compareWithDisk(file, join(outDir, file.path), scratch, checkLinks),
    file,
  }));
  const wanted = new Set(files.map((f) => f.path));
  for (const path of listOwnedFiles(outDir)) {
    if (wanted.has(path) || (roles && !roles.has(path.split('/')[0]))) continue;
    changes.push({ path, status: 'removed' });
  }
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Writes added/updated files (atomically, via rename) and deletes removed ones. */
export async function applyOutput(changes: readonly FileChange[], outDir: string): Promise<void> {
  // Synchronous calls: the files are written to the page cache, and a thread-pool hop per call costs
  // more than the copy (201 small files of ipset mode: ~40 ms async, a few ms like this).
  const made = new Set<string>();
  for (const c of changes) {
    const target = join(outDir, c.path);
    if ((c.status === 'added' || c.status === 'updated') && c.file) {
      const dir = dirname(target);
      if (!made.has(dir)) mkdirSync(dir, { recursive: true });
      made.add(dir);
      // A new file (wx: never an existing one, nor a link planted under that name).
      const tmp = `${target}.tmp-${process.pid}`;
      rmSync(tmp, { force: true });
      const fd = openSync(tmp, 'wx', 0o644);
      try {
        writeAll(fd, c.file.parts);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, target);
    } else if (c.status === 'removed') {
      unlinkSync(target);
    }
  }
  for (const c of changes) if (c.status === 'removed') removeIfEmpty(dirname(join(outDir, c.path)));
}

/** Writes every part; writev may write less than asked, so it continues where it stopped. */
function writeAll(fd: number, parts: readonly Buffer[]): void {
  let rest = parts.filter((p) => p.length > 0);
  while (rest.length > 0) {
    let written = writevSync(fd, rest);
    const next: Buffer[] = [];
    for (const p of rest) {
      if (written >= p.length) written -= p.length;
      else {
        next.push(written > 0 ? p.subarray(written) : p);
        written = 0;
      }
    }
    rest = next;
  }
}

/** The file's current text on disk ('' when missing) and its new text ('' when removed). */
export function changeTexts(c: FileChange, outDir: string): { before: string; after: string } {
  const path = join(outDir, c.path);
  return { before: existsSync(path) ? readFileSync(path, 'utf8') : '', after: c.file ? renderedText(c.file) : '' };
}

/**
 * No rendered file is read or written through a link out of the project (the folder holding the output
 * folder). Checked here: the output folder and the links among its folders (one listing); each file's own
 * link is found when it is opened (O_NOFOLLOW), so the common case costs no call per file. Returns the
 * check for one path.
 */
function linkChecker(outDir: string, files: readonly RenderedFile[]): (path: string) => void {
  const project = dirname(resolve(outDir));
  const check = (path: string): void => checkLinksStayInside(project, path, 'rendered files');
  check(outDir);
  const used = new Set(files.map((f) => f.path.split('/')[0]!));
  if (existsSync(outDir)) {
    for (const e of readdirSync(outDir, { withFileTypes: true })) {
      if (e.isSymbolicLink() && used.has(e.name)) check(join(outDir, e.name));
    }
  }
  return check;
}

/** Compares without building the whole text: size first, then part by part against one reused buffer. */
function compareWithDisk(
  file: RenderedFile,
  path: string,
  scratch: { buf: Buffer },
  checkLinks: (path: string) => void,
): ChangeStatus {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'added';
    if (code !== 'ELOOP') throw err;
    // The file is a link: read it only if it stays inside the project.
    checkLinks(path);
    fd = openSync(path, 'r');
  }
  try {
    if (fstatSync(fd).size !== file.size) return 'updated';
    if (scratch.buf.length < file.size) scratch.buf = Buffer.allocUnsafe(file.size);
    let read = 0;
    while (read < file.size) {
      const n = readSync(fd, scratch.buf, read, file.size - read, read);
      if (n === 0) return 'updated';
      read += n;
    }
    let offset = 0;
    for (const part of file.parts) {
      if (scratch.buf.compare(part, 0, part.length, offset, offset + part.length) !== 0) return 'updated';
      offset += part.length;
    }
    return 'unchanged';
  } finally {
    closeSync(fd);
  }
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

function removeIfEmpty(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
}
