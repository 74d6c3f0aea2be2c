/**
 * The loaded inventory kept in a cache file, so that a command that only reads names (`fwgen query`)
 * need not parse a 10,000-host inventory's YAML again: most of such a query's time. The file is named
 * by a hash of fwgen's version, the inventory's path and its text, so an edited inventory (or another
 * fwgen) never meets an old entry; it is written only after the inventory loaded without error, and
 * any entry that cannot be read is parsed anew.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Problem } from '../errors.js';
import type { LoadedInventory, Locate } from './load-inventory.js';
import { YamlLocator } from './yaml-positions.js';
import type { Host, Inventory, Net, Role, SshSettings } from './model.js';

/** Entries kept in the cache folder: the newest ones (one per inventory in use, and a few more). */
const KEEP = 8;

/** Hosts as `[name, role, ssh index, cidr, key, ...]`: the ssh settings, mostly alike, stored once. */
type HostRow = [string, string, number, ...string[]];

interface Stored {
  readonly inventory: Omit<Inventory, 'hosts' | 'roles'>;
  readonly roles: (Omit<Role, 'hosts'> & { hosts: string[] })[];
  readonly hosts: HostRow[];
  readonly ssh: SshSettings[];
  readonly warnings: Problem[];
}

/**
 * Like loadInventory, through a cache in `dir` (created when missing; never required). The loader (the
 * YAML parser and the schema check) is loaded only when the cache has no entry.
 */
export async function loadInventoryCached(file: string, dir: string, version: string): Promise<LoadedInventory> {
  const loader = () => import('./load-inventory.js');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return (await loader()).loadInventory(file); // the same error, worded once
  }
  const key = createHash('sha256').update(`${version}\0${file}\0`).update(text).digest('hex').slice(0, 32);
  const path = join(dir, `inventory-${key}.json`);
  const cached = read(path, text);
  if (cached) return cached;
  const loaded = (await loader()).parseInventory(text, file);
  write(dir, path, loaded);
  return loaded;
}

function read(path: string, text: string): LoadedInventory | undefined {
  let stored: Stored;
  try {
    stored = JSON.parse(readFileSync(path, 'utf8')) as Stored;
  } catch {
    return undefined;
  }
  // Positions, for problems later stages find, parse the text only when asked (as loadInventory's do).
  let locator: YamlLocator | undefined;
  const locate: Locate = (p) => (locator ??= new YamlLocator(text)).value(p);
  return { ...decode(stored), locate };
}

/** Writes the entry (atomically: a reader sees all or nothing) and drops the oldest beyond KEEP. */
function write(dir: string, path: string, loaded: LoadedInventory): void {
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(encode(loaded)));
    renameSync(tmp, path);
    const entries = readdirSync(dir)
      .filter((n) => /^inventory-[0-9a-f]+\.json$/.test(n))
      .map((n) => ({ n, t: statSync(join(dir, n)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const old of entries.slice(KEEP)) rmSync(join(dir, old.n), { force: true });
  } catch {
    // A cache that cannot be written (a read-only checkout) only costs time.
  }
}

function encode({ inventory, warnings }: Omit<LoadedInventory, 'locate'>): Stored {
  const ssh: SshSettings[] = [];
  const index = new Map<string, number>();
  const hosts = inventory.hosts.map((h): HostRow => {
    const k = JSON.stringify(h.ssh);
    let i = index.get(k);
    if (i === undefined) index.set(k, (i = ssh.push(h.ssh) - 1));
    return [h.name, h.role, i, ...h.addresses.flatMap((a) => [a.cidr, a.key])];
  });
  const { hosts: _hosts, roles, ...rest } = inventory;
  return {
    inventory: rest,
    roles: roles.map((r) => ({ ...r, hosts: r.hosts.map((h) => h.name) })),
    hosts,
    ssh,
    warnings,
  };
}

function decode(s: Stored): Omit<LoadedInventory, 'locate'> {
  const byName = new Map<string, Host>();
  const hosts = s.hosts.map(([name, role, i, ...nets]): Host => {
    const addresses: Net[] = [];
    for (let k = 0; k < nets.length; k += 2) {
      addresses.push({ family: nets[k + 1]!.startsWith('4:') ? 'ipv4' : 'ipv6', cidr: nets[k]!, key: nets[k + 1]! });
    }
    const host: Host = { name, role, addresses, ssh: s.ssh[i]! };
    byName.set(name, host);
    return host;
  });
  const roles = s.roles.map((r): Role => ({ ...r, hosts: r.hosts.map((n) => byName.get(n)!) }));
  return { inventory: { ...s.inventory, roles, hosts }, warnings: s.warnings };
}
