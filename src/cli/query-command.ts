import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkFailedError } from '../errors.js';
import { formatQuery, runQuery } from '../access/query.js';
import { loadInventory } from '../inventory/load-inventory.js';
import { RULES_FILE, SETS_FILE } from '../render/render-role.js';
import { printWarnings } from './project.js';

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
  const loaded = loadInventory(opts.inventory);
  printWarnings(loaded.warnings);
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
