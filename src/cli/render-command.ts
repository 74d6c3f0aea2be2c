import { WorkFailedError } from '../errors.js';
import { applyOutput, type FileChange } from '../output/write-rendered.js';
import { printWarnings, renderProject, type ProjectOptions } from './project.js';

export interface RenderOptions extends ProjectOptions {
  check?: boolean;
  json?: boolean;
}

/** `fwgen render`: writes rendered/ (or, with --check, only compares and fails when stale). */
export async function renderCommand(opts: RenderOptions): Promise<void> {
  const project = renderProject(opts);
  printWarnings(project.loaded.warnings);
  const { changes } = project;
  if (opts.json)
    process.stdout.write(
      `${JSON.stringify(
        changes.map(({ path, status }) => ({ path, status })),
        null,
        2,
      )}\n`,
    );
  if (opts.check) return reportCheck(changes, opts.out);
  await applyOutput(changes, opts.out);
  for (const c of changes)
    if (c.status !== 'unchanged') process.stderr.write(`${c.status.padEnd(9)} ${opts.out}/${c.path}\n`);
  process.stderr.write(`rendered ${project.files.length} files into ${opts.out}/: ${summarize(changes)}\n`);
}

async function reportCheck(changes: readonly FileChange[], out: string): Promise<void> {
  const stale = changes.filter((c) => c.status !== 'unchanged');
  if (stale.length === 0) {
    process.stderr.write(`${out}/ is up to date (${changes.length} files)\n`);
    return;
  }
  // The diff library is loaded only when there is a difference to show.
  const { diffChange } = await import('../output/diff-change.js');
  const label = { added: 'missing', updated: 'stale', removed: 'extra', unchanged: '' } as const;
  for (const c of stale) process.stderr.write(`${label[c.status]}: ${out}/${c.path}\n${diffChange(c, out)}\n`);
  throw new WorkFailedError(
    `${out}/ is out of date: ${stale.length} file(s) differ from the inventory`,
    'run `fwgen render` and commit the result',
  );
}

function summarize(changes: readonly FileChange[]): string {
  const count = (s: FileChange['status']) => changes.filter((c) => c.status === s).length;
  return `${count('added')} added, ${count('updated')} updated, ${count('removed')} removed, ${count('unchanged')} unchanged`;
}
