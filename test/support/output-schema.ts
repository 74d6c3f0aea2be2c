import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { Ajv as AjvClass, ErrorObject } from 'ajv';

/** The kinds of `--json` output schema/output.schema.json documents (its definitions). */
export type OutputKind = 'run' | 'forget' | 'status' | 'backups' | 'doctor' | 'render' | 'validate' | 'logEntry';

const require = createRequire(import.meta.url);
const Ajv = (require('ajv') as { default: typeof AjvClass }).default;
const schema = JSON.parse(readFileSync(resolve('schema/output.schema.json'), 'utf8')) as { $id: string };
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
ajv.addSchema(schema);

/** The problems of `value` against the documented shape of `kind` (empty when it matches). */
export function outputProblems(kind: OutputKind, value: unknown): string[] {
  const validate = ajv.getSchema(`${schema.$id}#/definitions/${kind}`);
  if (!validate) throw new Error(`schema/output.schema.json has no definition ${kind}`);
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
