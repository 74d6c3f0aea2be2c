import { shadowedRuleChecks } from '../doctor/inventory-checks.js';
import { formatProblem, WorkFailedError } from '../errors.js';
import type { Inventory } from '../inventory/model.js';
import { applyOutput, type FileChange } from '../output/write-rendered.js';
import { printWarnings, renderProject, type ProjectOptions } from './project.js';

export interface RenderOptions extends ProjectOptions {
  check?: boolean;
  json?: boolean;
}

/** `fwgen render`: writes rendered/ (or, with --check, only compares and fails when stale); the changes on stdout. */
export async function renderCommand(opts: RenderOptions): Promise<void> {
  const project = renderProject(opts);
  printWarnings(project.loaded.warnings);
  for (const w of shadowWarnings(project.loaded.inventory)) process.stderr.write(`${w}\n`);
  const { changes } = project;
  const out = (s: string) => {
    if (!opts.json) process.stdout.write(s);
  };
  if (opts.json)
    process.stdout.write(
      `${JSON.stringify(
        changes.map(({ path, status }) => ({ path, status })),
        null,
        2,
      )}\n`,
    );
  if (opts.check) return reportCheck(changes, opts.out, out);
  await applyOutput(changes, opts.out);
  for (const c of changes) if (c.status !== 'unchanged') out(`${c.status.padEnd(9)} ${opts.out}/${c.path}\n`);
  out(`rendered ${plural(project.files.length, 'file')} into ${opts.out}/: ${summarize(changes)}\n`);
}

/** `fwgen validate`: the inventory and templates checked, nothing written; the verdict on stdout. */
export function validateCommand(opts: { inventory: string; templates?: string; json?: boolean }): void {
  const project = renderProject({ ...opts, out: 'rendered' });
  const { inventory: inv } = project.loaded;
  const warnings = [...project.loaded.warnings.map(formatProblem), ...shadowWarnings(inv)];
  if (opts.json) {
    const json = { inventory: opts.inventory, valid: true, roles: inv.roles.length, hosts: inv.hosts.length, warnings };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  for (const w of warnings) process.stderr.write(`${w}\n`);
  process.stdout.write(
    `${opts.inventory}: valid (${plural(inv.roles.length, 'role')}, ${plural(inv.hosts.length, 'host')}${
      warnings.length > 0 ? `, ${plural(warnings.length, 'warning')}` : ''
    })\n`,
  );
}

async function reportCheck(changes: readonly FileChange[], out: string, print: (s: string) => void): Promise<void> {
  const stale = changes.filter((c) => c.status !== 'unchanged');
  if (stale.length === 0) {
    print(`${out}/ is up to date (${plural(changes.length, 'file')})\n`);
    return;
  }
  // The diff library is loaded only when there is a difference to show.
  const { diffChange } = await import('../output/diff-change.js');
  const label = { added: 'missing', updated: 'stale', removed: 'extra', unchanged: '' } as const;
  for (const c of stale) print(`${label[c.status]}: ${out}/${c.path}\n${diffChange(c, out)}\n`);
  throw new WorkFailedError(
    `${out}/ is out of date: ${plural(stale.length, 'file')} ${stale.length === 1 ? 'differs' : 'differ'} from the inventory`,
    'run `fwgen render` and commit the result',
  );
}

/** `1 file`, `2 files`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function summarize(changes: readonly FileChange[]): string {
  const count = (s: FileChange['status']) => changes.filter((c) => c.status === s).length;
  return `${count('added')} added, ${count('updated')} updated, ${count('removed')} removed, ${count('unchanged')} unchanged`;
}

/** doctor's "shadowed by fleet trust" findings, as warnings where the rules are made (render, validate). */
function shadowWarnings(inv: Inventory): string[] {
  return shadowedRuleChecks(inv).map((c) => `${inv.file}: warning: ${c.detail} (fix: ${c.fix})`);
}
