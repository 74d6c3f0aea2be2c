import { execFileSync } from 'node:child_process';

/**
 * The git commit of the inventory's folder, `+dirty` when it has uncommitted changes; null outside
 * git. Two git processes: ask once per run.
 */
export function inventoryCommit(dir: string): string | null {
  try {
    const git = (args: string[]): string =>
      execFileSync('git', ['-C', dir, ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    const head = git(['rev-parse', 'HEAD']);
    return git(['status', '--porcelain', '--', '.']) !== '' ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}
