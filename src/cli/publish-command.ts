import { inventoryCommit } from '../audit/inventory-commit.js';
import { WorkFailedError } from '../errors.js';
import { publishRelease } from '../publish/publish-release.js';
import type { PublishReport } from '../publish/publish-tree.js';
import { loadSignKey } from '../publish/sign.js';
import { inventoryLabel, printWarnings, renderProject } from './project.js';

export interface PublishOptions {
  inventory: string;
  rendered: string;
  templates?: string;
  out: string;
  signKey: string;
  json?: boolean;
}

/** `fwgen publish`: rendered/ must be current; signs a release of every role that changed into the tree. */
export async function publishCommand(opts: PublishOptions): Promise<void> {
  const project = renderProject({ inventory: opts.inventory, out: opts.rendered, templates: opts.templates });
  printWarnings(project.loaded.warnings);
  const stale = project.changes.filter((c) => c.status !== 'unchanged');
  if (stale.length > 0) {
    throw new WorkFailedError(
      `${opts.rendered}/ does not match the inventory (${stale.map((c) => `${c.status}: ${c.path}`).join(', ')}); refusing to publish`,
      'run `fwgen render`, review and commit, then publish',
    );
  }
  const inv = project.loaded.inventory;
  const report = await publishRelease({
    inv,
    files: project.files,
    out: opts.out,
    key: await loadSignKey(opts.signKey),
    now: Math.floor(Date.now() / 1000),
    commit: inventoryCommit(inv.dir) ?? '-',
    inventoryLabel: inventoryLabel(opts.inventory, opts.rendered).replace(/ /g, '_'),
  });
  process.stderr.write(formatReport(report, opts.out));
  if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

/** One line per role (`ROLE SERIAL new|refreshed|kept expires ...`), then what was written. */
export function formatReport(r: PublishReport, out: string): string {
  const iso = (s: number): string => new Date(s * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const rows = r.roles.map((x) => [x.role, String(x.serial), x.action, `expires ${iso(x.expires)}`]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) => row.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join('  '));
  const count = (a: string): number => r.roles.filter((x) => x.action === a).length;
  const mb = (r.bytesWritten / 1e6).toFixed(1);
  return (
    `${lines.join('\n')}\n` +
    `published ${r.roles.length} role(s) into ${out}/: ${count('new')} new, ${count('refreshed')} refreshed, ` +
    `${count('kept')} kept; ${r.blobsWritten} blob(s) written (${mb} MB)\n`
  );
}
