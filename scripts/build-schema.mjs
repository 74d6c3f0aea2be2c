// Compiles schema/inventory.schema.json into a standalone ajv validator (dist/inventory/schema-validate.cjs),
// so `fwgen render` does not pay for compiling the schema on every run.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';

const schema = JSON.parse(readFileSync(new URL('../schema/inventory.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, code: { source: true } });
const code = standaloneCode(ajv, ajv.compile(schema));
const out = new URL('../dist/inventory/', import.meta.url);
mkdirSync(out, { recursive: true });
writeFileSync(new URL('schema-validate.cjs', out), code);
