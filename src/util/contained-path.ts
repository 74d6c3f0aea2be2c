import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { UsageError } from '../errors.js';

/**
 * Refuses to go on when a symbolic link on the way from `root` down to `path` (the path itself
 * included) leads outside `root`. A repository can hold links (`templates -> /home/me/.ssh`,
 * `rendered/web -> /etc`), and fwgen would otherwise write, or read and print, through them. Links that
 * stay inside `root` are followed; parts that do not exist yet end the walk (fwgen creates them). A
 * `path` outside `root` is only checked for being a link itself. `what` says what is written, for the
 * message; `checked` skips paths already checked (many files in one folder).
 */
export function checkLinksStayInside(root: string, path: string, what: string, checked?: Set<string>): void {
  const top = resolve(root);
  const target = resolve(path);
  const rel = relative(top, target);
  const steps = rel === '' ? [] : rel.split(sep);
  const inside = !(rel.startsWith('..') || isAbsolute(rel));
  let topReal: string | undefined;
  const realTop = (): string => (topReal ??= realpathOrSelf(top));
  let at = inside ? top : dirname(target);
  for (const step of inside ? steps : [basename(target)]) {
    at = join(at, step);
    if (checked?.has(at)) continue;
    const kind = linkKind(at);
    if (kind === 'missing') return;
    if (kind === 'link') {
      const real = linkTarget(at);
      if (real === undefined || !within(realTop(), real)) {
        const to = real ?? `${resolve(dirname(at), readlinkSync(at))} (which does not exist)`;
        throw new UsageError(
          `${what}: ${at} is a symbolic link to ${to}, outside ${top}; ` +
            'fwgen does not follow links that leave the repository',
          'replace the link with a real folder or file, or point it inside the repository',
        );
      }
    }
    checked?.add(at);
  }
}

function linkKind(path: string): 'missing' | 'link' | 'other' {
  try {
    return lstatSync(path).isSymbolicLink() ? 'link' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
}

/** Where a link finally leads, or undefined when that does not exist (writing would create it). */
function linkTarget(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

function realpathOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

const within = (folder: string, path: string): boolean => path === folder || path.startsWith(`${folder}${sep}`);
