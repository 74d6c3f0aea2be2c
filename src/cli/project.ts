import { dirname, relative, resolve } from 'node:path';
import { InputError, UsageError, formatProblem, type Problem } from '../errors.js';
import { loadInventory, type LoadedInventory } from '../inventory/load-inventory.js';
import type { Inventory, Role } from '../inventory/model.js';
import type { RolePolicy } from '../resolve/policy.js';
import { renderPolicies, type RenderedFile } from '../render/render-role.js';
import { findUserTemplatesDir, loadTemplates, type TemplateSet } from '../render/templates.js';
import { resolvePolicies } from '../resolve/resolve-policy.js';
import { planOutput, type FileChange } from '../output/write-rendered.js';
import { VERSION } from './version.js';

export { VERSION };

export interface ProjectOptions {
  inventory: string;
  out: string;
  templates?: string;
  /** Comma-separated role names, or undefined / 'all' for every role. */
  role?: string;
}

/** An inventory rendered in memory and compared with the output folder; nothing written yet. */
export interface RenderedProject {
  loaded: LoadedInventory;
  roles?: ReadonlySet<string>;
  files: RenderedFile[];
  changes: FileChange[];
}

/** Loads, validates, resolves and renders; compares with `out`. Writes nothing. */
export function renderProject(opts: ProjectOptions): RenderedProject {
  const loaded = loadInventory(opts.inventory);
  const inv = loaded.inventory;
  const roles = selectRoles(
    opts.role,
    inv.roles.map((r) => r.name),
  );
  const templates = loadTemplates(findUserTemplatesDir(inv.dir, opts.templates));
  // The sets file holds the sets of every role: in ipset mode every role is rendered, the others' files dropped.
  const only = inv.sets === 'ipset' ? undefined : roles;
  const policies = resolveProject(inv, templates, only, loaded.locate);
  const meta = { inventory: inventoryLabel(opts.inventory, opts.out), version: VERSION };
  const all = renderPolicies(policies, templates, meta);
  const files = roles && !only ? all.filter((f) => f.role === '' || roles.has(f.role)) : all;
  return { loaded, roles, files, changes: planOutput(files, opts.out, roles) };
}

/** Checks each role's template and resolves the policies that use them (what render and diff render). */
export function resolveProject(
  inv: Inventory,
  templates: TemplateSet,
  only?: ReadonlySet<string>,
  locate?: Parameters<typeof resolvePolicies>[3],
): RolePolicy[] {
  checkRoleTemplates(inv.roles, templates);
  return resolvePolicies(inv, (role) => chooseTemplate(role, templates), only, locate);
}

/** Parses `--role all|A,B`; unknown names are a usage error. */
export function selectRoles(spec: string | undefined, known: readonly string[]): ReadonlySet<string> | undefined {
  if (spec === undefined || spec === 'all') return undefined;
  const wanted = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = wanted.filter((r) => !known.includes(r));
  if (unknown.length > 0 || wanted.length === 0) {
    throw new UsageError(
      `unknown role ${unknown.map((u) => `"${u}"`).join(', ') || '""'} (expected all or one of: ${known.join(', ')})`,
    );
  }
  return new Set(wanted);
}

/** Every `template:` must name a template that exists; all missing ones are reported at once. */
function checkRoleTemplates(roles: readonly Role[], templates: TemplateSet): void {
  const known = [...templates.sources.keys()].sort();
  const problems: Problem[] = roles.flatMap((role) =>
    role.template && role.templateAt && !templates.sources.has(role.template)
      ? [{ ...role.templateAt, severity: 'error' as const, message: missingTemplate(role.name, role.template, known) }]
      : [],
  );
  const hint = 'add the template file, or remove the template: line to use base.rules.njk';
  if (problems.length > 0) throw new InputError(problems, hint);
}

function missingTemplate(role: string, template: string, known: readonly string[]): string {
  const where = 'a .njk file in the templates/ folder beside the inventory, or in --templates DIR';
  return `role "${role}": template "${template}" not found (expected ${where}; found: ${known.join(', ')})`;
}

/** A role uses `template:` if set (checked above), else `roles/<role>.njk` if present, else the base template. */
function chooseTemplate(role: Role, templates: TemplateSet): string {
  if (role.template) return role.template;
  const own = `roles/${role.name}.njk`;
  return templates.sources.has(own) ? own : 'base.rules.njk';
}

/** The inventory path as headers show it: relative to the project (the folder holding the output folder). */
export function inventoryLabel(inventory: string, out: string): string {
  // The label goes into a comment line of every file: keep it to characters that cannot end the line.
  return relative(dirname(resolve(out)), resolve(inventory))
    .split('\\')
    .join('/')
    .replace(/[^A-Za-z0-9._/@+~ -]/g, '?');
}

/** Prints warnings to stderr. */
export function printWarnings(warnings: readonly Problem[]): void {
  for (const w of warnings) process.stderr.write(`${formatProblem(w)}\n`);
}
