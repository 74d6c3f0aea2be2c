import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TemplateError } from '../errors.js';

/** Template sources by name (`base.rules.njk`, `roles/web.njk`), with the file each came from. */
export interface TemplateSet {
  readonly sources: ReadonlyMap<string, { readonly src: string; readonly path: string }>;
}

/** The templates shipped inside the package. */
export const builtinTemplatesDir = fileURLToPath(new URL('../../templates', import.meta.url));

/** Reads the built-in templates, then the user's folder (if any) over them, by name. */
export function loadTemplates(userDir: string | undefined): TemplateSet {
  const sources = new Map<string, { src: string; path: string }>();
  for (const dir of [builtinTemplatesDir, userDir]) {
    if (!dir || !existsSync(dir)) continue;
    for (const file of listNjk(dir)) {
      const name = relative(dir, file).split('\\').join('/');
      sources.set(name, { src: readFileSync(file, 'utf8'), path: file });
    }
  }
  if (!sources.has('base.rules.njk')) {
    throw new TemplateError(`built-in templates are missing from ${builtinTemplatesDir}`, 'reinstall fwgen');
  }
  return { sources };
}

/** The user's templates folder: `--templates`, else `templates/` beside the inventory file or beside its folder. */
export function findUserTemplatesDir(inventoryDir: string, explicit?: string): string | undefined {
  if (explicit) {
    if (!existsSync(explicit)) throw new TemplateError(`templates folder ${explicit} does not exist`);
    return explicit;
  }
  for (const candidate of [join(inventoryDir, 'templates'), join(inventoryDir, '..', 'templates')]) {
    if (existsSync(candidate) && statSync(candidate).isDirectory()) {
      return resolve(candidate) === resolve(builtinTemplatesDir) ? undefined : candidate;
    }
  }
  return undefined;
}

function listNjk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.njk'))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort();
}
