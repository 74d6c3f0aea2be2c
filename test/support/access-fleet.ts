// A fleet rendered in memory from inventory text (and role templates), for tests of src/access: the
// rulesets diff judges, and the files they print (what query reads).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fleetRulesOf, type FleetRules } from '../../src/access/fleet.js';
import { resolveProject } from '../../src/cli/project.js';
import { parseInventory } from '../../src/inventory/load-inventory.js';
import { buildRulesets, renderedText, renderRulesets } from '../../src/render/render-role.js';
import { loadTemplates } from '../../src/render/templates.js';

export interface RenderedFleet {
  readonly fleet: FleetRules;
  /** Rendered files by path (`db/iptables.up.rules`, `sets/ipset.rules`). */
  readonly files: Map<string, string>;
}

/** Renders an inventory (and templates by name, e.g. `roles/web.njk`) in memory. */
export function renderFleet(yaml: string, templates: Record<string, string> = {}): RenderedFleet {
  const inv = parseInventory(yaml, 'inventory.yaml').inventory;
  const dir = Object.keys(templates).length > 0 ? mkdtempSync(join(tmpdir(), 'fwgen-access-tpl-')) : undefined;
  try {
    for (const [name, text] of Object.entries(templates)) {
      mkdirSync(dirname(join(dir!, name)), { recursive: true });
      writeFileSync(join(dir!, name), text);
    }
    const set = loadTemplates(dir);
    const meta = { inventory: 'inventory/inventory.yaml', version: 'test' };
    const built = buildRulesets(resolveProject(inv, set), set, meta);
    const files = new Map(renderRulesets(built, meta).map((f) => [f.path, renderedText(f)]));
    return { fleet: fleetRulesOf(inv, built), files };
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes the common leading indentation of a template literal. */
export function dedent(text: string): string {
  const lines = text.split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(indent)).join('\n');
}
