// The inventory line query names for a rule: found by indentation in block-style YAML (fast), it is
// the line the `yaml` package's positions give, for every entry a rule can come from.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InventoryLines } from '../src/access/inventory-lines.js';
import { parseInventory } from '../src/inventory/load-inventory.js';
import { YamlLocator, type PathSegment } from '../src/inventory/yaml-positions.js';
import { generateInventory } from '../bench/gen-inventory.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Every path a rule's origin can point at in an inventory. */
function entries(text: string): PathSegment[][] {
  const inv = parseInventory(text, 'inventory.yaml').inventory;
  const paths: PathSegment[][] = [['trust'], ['management']];
  inv.management.forEach((_, i) => paths.push(['management', i]));
  inv.monitoring.forEach((_, i) => paths.push(['monitoring', i]));
  for (const r of inv.roles) {
    paths.push(['roles', r.name, 'public']);
    r.ports.forEach((_, i) => paths.push(['roles', r.name, 'ports', i]));
    r.allow.forEach((_, i) => paths.push(['roles', r.name, 'allow', i]));
    for (const h of r.hosts) paths.push(['roles', r.name, 'hosts', h.name]);
  }
  return paths;
}

function compare(text: string): void {
  const fast = new InventoryLines(text);
  const slow = new YamlLocator(text);
  const paths = entries(text);
  expect(paths.length).toBeGreaterThan(5);
  for (const p of paths) expect(fast.lineOf(p), p.join('.')).toBe(slow.key(p).line);
}

describe('InventoryLines', () => {
  it('the example inventory: every entry on the line the yaml package says', () => {
    compare(readFileSync('inventory/inventory.yaml', 'utf8'));
  });

  it('a generated 1,000-host inventory, and one with a compact top-level list and comments', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwgen-lines-'));
    try {
      generateInventory(join(dir, 'inventory.yaml'), { hosts: 1000, roles: 40 });
      compare(readFileSync(join(dir, 'inventory.yaml'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    compare(
      [
        '# comment',
        'management:',
        '- 203.0.113.0/28   # office',
        '- 198.51.100.0/24',
        'roles:',
        '    # a comment at another indent',
        '    "web":',
        '        ports:',
        '            - tcp/8080',
        '            - tcp/8443',
        '        hosts:',
        '            web1: 192.0.2.1',
        '            web2:',
        '                address: 192.0.2.2',
        'trust: fleet',
        '',
      ].join('\n'),
    );
  });

  it('flow style falls back to the positions of the whole file', () => {
    compare(
      '{ trust: fleet, management: [203.0.113.0/28], roles: { web: { ports: [tcp/80], hosts: { w: 192.0.2.1 } } } }\n',
    );
  });

  it('values as written: the management list and a role`s ports', () => {
    const lines = new InventoryLines(readFileSync('inventory/inventory.yaml', 'utf8'));
    expect(lines.valueAt(['management'])).toEqual(['203.0.113.0/28', '2001:db8:ffff::/48']);
    expect(lines.valueAt(['roles', 'worker', 'ports'])).toEqual(['tcp/8080']);
  });
});
