import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writevSync,
} from 'node:fs';
import { join } from 'node:path';
import { WorkFailedError } from '../errors.js';
import { formatManifest, parseManifest, type Manifest } from './manifest.js';
import type { RoleAction, RolePlan } from './publish-plan.js';
import { signFiles, verifySignature, type SignKey } from './sign.js';

/** Where a role's manifest is published, relative to the tree: `roles/ROLE/manifest` (and `.sig`). */
export function manifestPath(role: string): string {
  return `roles/${role}/manifest`;
}

/** Where a file is published: `blobs/SHA256`, its name its content's hash (cache it forever). */
export function blobPath(sha256: string): string {
  return `blobs/${sha256}`;
}

/** The manifests a tree holds for these roles (missing or unreadable ones are absent: a new release). */
export function readPublished(out: string, roles: readonly string[]): Map<string, Manifest> {
  const found = new Map<string, Manifest>();
  for (const role of roles) {
    let text: string;
    try {
      text = readFileSync(join(out, manifestPath(role)), 'utf8');
    } catch {
      continue;
    }
    const m = parseManifest(text);
    if (typeof m !== 'string' && m.role === role) found.set(role, m);
  }
  return found;
}

/** What publish did for one role. */
export interface PublishedRole {
  readonly role: string;
  readonly action: RoleAction;
  readonly serial: number;
  readonly expires: number;
}

export interface PublishReport {
  readonly roles: readonly PublishedRole[];
  readonly blobsWritten: number;
  readonly bytesWritten: number;
}

/**
 * Writes a publish plan into the tree: the blobs not there yet, then every new manifest beside its
 * signature (one ssh-keygen for all), checked against the trusted keys before any goes live. Each
 * file appears by rename: a web server serving the tree never sends half a file. The signature goes
 * live before its manifest; an agent that fetched the old manifest and the new signature in between
 * fetches both again.
 */
export async function writeRelease(
  out: string,
  plans: readonly RolePlan[],
  key: SignKey,
  signers: readonly string[],
): Promise<PublishReport> {
  const changed = plans.filter((p) => p.action !== 'kept');
  let blobsWritten = 0;
  let bytesWritten = 0;
  mkdirSync(join(out, 'blobs'), { recursive: true });
  const written = new Set<string>();
  for (const p of changed) {
    for (const f of p.files) {
      const path = join(out, blobPath(f.sha256));
      if (written.has(f.sha256) || sizeOf(path) === f.size) continue;
      writeAtomic(path, f.parts);
      written.add(f.sha256);
      blobsWritten++;
      bytesWritten += f.size;
    }
  }
  const next = changed.map((p) => {
    const dir = join(out, 'roles', p.role);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'manifest.next');
    writeAtomic(path, [Buffer.from(formatManifest(p.manifest), 'utf8')]);
    return path;
  });
  try {
    await signFiles(key, next);
    if (next.length > 0) {
      const why = await verifySignature(readFileSync(next[0]), readFileSync(`${next[0]}.sig`, 'utf8'), signers);
      if (why) throw new WorkFailedError(`the new signature does not verify against agent.signers: ${why}`);
    }
  } catch (err) {
    for (const n of next) (rmSync(n, { force: true }), rmSync(`${n}.sig`, { force: true }));
    throw err;
  }
  for (const n of next) {
    const live = n.slice(0, -'.next'.length);
    stampRelease(n, readFileSync(n, 'utf8'));
    renameSync(`${n}.sig`, `${live}.sig`);
    renameSync(n, live);
    bytesWritten += statSync(live).size + statSync(`${live}.sig`).size;
  }
  return {
    roles: plans.map((p) => ({
      role: p.role,
      action: p.action,
      serial: p.manifest.serial,
      expires: p.manifest.expires,
    })),
    blobsWritten,
    bytesWritten,
  };
}

/**
 * Dates a manifest (and its signature) by its release, not by when the file was written: web servers
 * make the ETag and Last-Modified that agents revalidate with from the time and size (nginx: both in
 * hex), so two releases written within one second, of one size, would look alike; a serial never repeats.
 */
export function stampRelease(path: string, manifest: string): void {
  const m = parseManifest(manifest);
  if (typeof m === 'string') return;
  const t = Math.max(m.serial, m.created);
  for (const f of [path, `${path}.sig`]) if (existsSync(f)) utimesSync(f, t, t);
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

function writeAtomic(path: string, parts: readonly Buffer[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    let rest = parts.filter((p) => p.length > 0);
    while (rest.length > 0) {
      // writev takes at most IOV_MAX buffers and may write less than asked: go on from where it stopped.
      let n = writevSync(fd, rest.slice(0, 512) as Buffer[]);
      while (n > 0 && rest.length > 0 && n >= rest[0].length) n -= rest.shift()!.length;
      if (n > 0) rest[0] = rest[0].subarray(n);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
