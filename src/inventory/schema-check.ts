import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ErrorObject } from 'ajv';
import { formatPath, type PathSegment } from './yaml-positions.js';

/** A schema violation located by JSON path, before positions are attached. */
export interface SchemaIssue {
  path: PathSegment[];
  /** Point at the key rather than the value (unknown keys, bad names). */
  atKey: boolean;
  message: string;
}

type Validate = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

/** Path of the published JSON Schema, inside the package. */
export const schemaPath = new URL('../../schema/inventory.schema.json', import.meta.url);

const require = createRequire(import.meta.url);
let compiled: Validate | undefined;

/** The build compiles the schema ahead of time (scripts/build-schema.mjs); from source, compile it now. */
function validator(): Validate {
  if (compiled) return compiled;
  try {
    compiled = require('./schema-validate.cjs') as Validate;
  } catch {
    const AjvModule = require('ajv') as { default: new (o: object) => { compile(s: object): Validate } };
    const ajv = new AjvModule.default({ allErrors: true, verbose: true, strict: true });
    compiled = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object);
  }
  return compiled;
}

/** Validates parsed inventory data against the JSON Schema; returns every issue found. */
export function checkSchema(data: unknown): SchemaIssue[] {
  const validate = validator();
  if (validate(data)) return [];
  return (validate.errors ?? []).filter((e) => e.keyword !== 'if' && e.keyword !== 'propertyNames').map(toIssue);
}

function toIssue(e: ErrorObject): SchemaIssue {
  const path = parsePointer(e.instancePath);
  const expected = (e.parentSchema as { description?: string } | undefined)?.description;
  const where = formatPath(path, 'the inventory');
  const exp = expected ? ` (expected ${expected})` : '';
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
      const guess = allowed.find((a) => similar(a, key));
      return {
        path: [...path, key],
        atKey: true,
        message: `unknown key ${JSON.stringify(key)} in ${where} (${guess ? `did you mean "${guess}"? ` : ''}expected one of: ${allowed.join(', ')})`,
      };
    }
    case 'required': {
      const key = (e.params as { missingProperty: string }).missingProperty;
      return { path, atKey: false, message: `missing key ${JSON.stringify(key)} in ${where}${exp}` };
    }
    case 'pattern':
    case 'enum':
    case 'minimum':
    case 'maximum':
    case 'maxLength':
      if (e.propertyName !== undefined) {
        return {
          path: [...path, e.propertyName],
          atKey: true,
          message: `invalid name ${JSON.stringify(e.propertyName)} in ${where}${exp}`,
        };
      }
      return { path, atKey: false, message: `${where}: ${JSON.stringify(e.data)} is not valid${exp}` };
    case 'type':
      return {
        path,
        atKey: false,
        message: `${where}: found ${describe(e.data)}${exp || ` (expected ${String((e.params as { type: unknown }).type)})`}`,
      };
    case 'minItems':
      return { path, atKey: false, message: `${where}: empty list${exp}` };
    case 'maxItems':
      return { path, atKey: false, message: `${where}: too many items${exp}` };
    default:
      return { path, atKey: false, message: `${where}: ${e.message ?? 'invalid'}${exp}` };
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'an empty file';
  if (v === null) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function parsePointer(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

/** Same length within one edit, or one letter added or missing: catches the usual typos. */
function similar(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1 || a === b) return false;
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return a.slice(i + 1) === b.slice(i + 1) || a.slice(i + 1) === b.slice(i) || a.slice(i) === b.slice(i + 1);
}
