import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatProblem, WorkFailedError } from '../errors.js';
import { formatQuery, runQuery } from '../access/query.js';
import { loadInventoryCached } from '../inventory/inventory-cache.js';
import { RULES_FILE, SETS_FILE } from '../render/rendered-files.js';
import { VERSION } from './version.js';

export interface QueryOptions {
  inventory: string;
  out: string;
  from: string;
  to: string;
  port?: string;
  in?: string;
  json?: boolean;
}

/** `fwgen query`: whether SRC may reach DST (on a port) by the rendered rules; exit 0 allowed, 1 not. */
export async function queryCommand(opts: QueryOptions): Promise<void> {
  // The loaded inventory is cached in .fwgen/cache (beside the deploy log): a query on a large fleet
  // then spends its time on the rules, not on parsing the inventory's YAML again.
  const loaded = await loadInventoryCached(opts.inventory, join('.fwgen', 'cache'), VERSION);
  for (const w of loaded.warnings) process.stderr.write(`${formatProblem(w)}\n`);
  const read = (rel: string) => {
    const path = join(opts.out, rel);
    return existsSync(path) ? { path, text: readFileSync(path, 'utf8') } : undefined;
  };
  const report = runQuery(
    {
      inventory: loaded.inventory,
      inventoryFile: opts.inventory,
      inventoryText: readFileSync(opts.inventory, 'utf8'),
      files: { rules: (role, family) => read(`${role}/${RULES_FILE[family]}`), sets: () => read(SETS_FILE) },
    },
    { from: opts.from, to: opts.to, ...(opts.port ? { port: opts.port } : {}), ...(opts.in ? { in: opts.in } : {}) },
  );
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatQuery(report).join('\n')}\n`);
  if (report.verdict !== 'allowed') {
    const on = opts.port ? ` on ${opts.port}` : '';
    throw new WorkFailedError(`${opts.from} -> ${opts.to}${on}: ${report.verdict}`);
  }
}
