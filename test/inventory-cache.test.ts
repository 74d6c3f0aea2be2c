// The inventory cache of `fwgen query`: what it returns is what loadInventory returns; an entry is
// found by the inventory's text, never by its name alone; a broken entry is parsed anew; an invalid
// inventory is never cached; the folder keeps the newest entries only.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { loadInventoryCached } from '../src/inventory/inventory-cache.js';
import { loadInventory } from '../src/inventory/load-inventory.js';
import { generateInventory } from '../bench/gen-inventory.mjs';

const dir = mkdtempSync(join(tmpdir(), 'fwgen-inventory-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cache = join(dir, 'cache');
const entries = () => readdirSync(cache).filter((n) => n.endsWith('.json'));
/** What a loaded inventory says (its position finder aside: a function). */
const data = (l: { inventory: unknown; warnings: unknown }) => ({ inventory: l.inventory, warnings: l.warnings });

describe('loadInventoryCached', () => {
  it('returns what loadInventory returns, from the cache the second time, hosts shared with their roles', async () => {
    const file = join(dir, 'big.yaml');
    generateInventory(file, { hosts: 1000, roles: 40 });
    const first = await loadInventoryCached(file, cache, 'v1');
    expect(entries()).toHaveLength(1);
    const again = await loadInventoryCached(file, cache, 'v1');
    expect(data(again)).toEqual(data(loadInventory(file)));
    expect(data(first)).toEqual(data(again));
    // Positions are found as loadInventory finds them.
    expect(again.locate(['roles', 'role3', 'hosts'])).toEqual(loadInventory(file).locate(['roles', 'role3', 'hosts']));
    for (const role of again.inventory.roles) {
      for (const h of role.hosts) expect(again.inventory.hosts.find((x) => x.name === h.name)).toBe(h);
    }
    // It really reads the entry: one edited by hand comes back.
    const entry = join(cache, entries()[0]!);
    writeFileSync(entry, readFileSync(entry, 'utf8').replace('"role0"', '"renamed"'));
    expect((await loadInventoryCached(file, cache, 'v1')).inventory.roles.map((r) => r.name)).toContain('renamed');
  });

  it('the example with its warnings and dual-stack hosts; another version is another entry', async () => {
    const file = 'inventory/inventory.yaml';
    const c = join(dir, 'example');
    expect(data(await loadInventoryCached(file, c, 'v1'))).toEqual(data(loadInventory(file)));
    expect(data(await loadInventoryCached(file, c, 'v1'))).toEqual(data(loadInventory(file)));
    await loadInventoryCached(file, c, 'v2');
    expect(readdirSync(c)).toHaveLength(2);
  });

  it('an edited inventory is parsed anew; a broken entry is parsed anew', async () => {
    const file = join(dir, 'small.yaml');
    writeFileSync(file, 'roles:\n  web: { hosts: { w1: 192.0.2.1 } }\n');
    await loadInventoryCached(file, join(dir, 'c2'), 'v1');
    writeFileSync(file, 'roles:\n  web: { hosts: { w1: 192.0.2.1, w2: 192.0.2.2 } }\n');
    expect((await loadInventoryCached(file, join(dir, 'c2'), 'v1')).inventory.hosts.map((h) => h.name)).toEqual([
      'w1',
      'w2',
    ]);
    for (const n of readdirSync(join(dir, 'c2'))) writeFileSync(join(dir, 'c2', n), '{ not json');
    expect(data(await loadInventoryCached(file, join(dir, 'c2'), 'v1'))).toEqual(data(loadInventory(file)));
  });

  it('an invalid inventory throws as loadInventory does and is not cached', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'roles:\n  web: { hosts: { w1: not-an-address } }\n');
    await expect(loadInventoryCached(file, join(dir, 'c3'), 'v1')).rejects.toBeInstanceOf(InputError);
    expect(() => readdirSync(join(dir, 'c3'))).toThrow();
    await expect(loadInventoryCached(join(dir, 'missing.yaml'), join(dir, 'c3'), 'v1')).rejects.toThrow(
      /cannot read inventory/,
    );
  });

  it('keeps the newest 8 entries', async () => {
    const file = join(dir, 'many.yaml');
    for (let i = 0; i < 12; i++) {
      writeFileSync(file, `roles:\n  web: { hosts: { w1: 192.0.2.${i + 1} } }\n`);
      await loadInventoryCached(file, join(dir, 'c4'), 'v1');
    }
    expect(readdirSync(join(dir, 'c4'))).toHaveLength(8);
  });
});
