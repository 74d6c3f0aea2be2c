import { completedEntries, formatAudit, readAudit } from '../audit/audit-log.js';
import { UsageError } from '../errors.js';

/** `fwgen log`: the deploy log, readable (or as JSON lines). */
export function logCommand(opts: { auditLog: string; last?: string; json?: boolean }): void {
  const last = opts.last === undefined ? undefined : Number(opts.last);
  if (last !== undefined && (!Number.isInteger(last) || last < 1))
    throw new UsageError(`--last ${opts.last} is not a positive whole number`);
  const entries = completedEntries(readAudit(opts.auditLog));
  const shown = last === undefined ? entries : entries.slice(-last);
  if (entries.length === 0) process.stderr.write(`${opts.auditLog}: no entries yet\n`);
  for (const e of shown) process.stdout.write(opts.json ? `${JSON.stringify(e)}\n` : `${formatAudit(e)}\n`);
}
