import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { Host, Inventory } from '../inventory/model.js';
import { remotePaths, sha256 } from '../remote/scripts.js';
import { preserveMatcher } from '../model/ownership.js';
import { parseRuleset } from '../model/parse.js';
import { setsMatched } from '../model/ruleset.js';
import { emitSets, parseSets } from '../model/sets.js';
import { RULES_FILE, SETS_FILE } from '../render/render-role.js';
import type { ShipJob } from './jobs.js';

/** One job per host, with the files rendered/ holds for its role (read once per role, shared by its hosts). */
export function planShip(inv: Inventory, hosts: readonly Host[], renderedDir: string): ShipJob[] {
  const paths = remotePaths(inv);
  const files = new Map<string, Pick<ShipJob, 'v4' | 'v6' | 'sets' | 'digest'>>();
  const setsOf = inv.sets === 'ipset' ? roleSets(renderedDir) : undefined;
  const filesOf = (role: string): Pick<ShipJob, 'v4' | 'v6' | 'sets' | 'digest'> => {
    let f = files.get(role);
    if (!f) {
      const v4Path = join(renderedDir, role, RULES_FILE.ipv4);
      const v6Path = join(renderedDir, role, RULES_FILE.ipv6);
      if (!existsSync(v4Path)) throw new UsageError(`${v4Path} is missing`, 'run `fwgen render`');
      const v4 = readFileSync(v4Path);
      const v6 = inv.hasIpv6 && existsSync(v6Path) ? readFileSync(v6Path) : undefined;
      const sets = setsOf?.(role, [v4, ...(v6 ? [v6] : [])]);
      f = { v4, v6, ...(sets ? { sets } : {}), digest: shipDigest(v4, v6, sets) };
      files.set(role, f);
    }
    return f;
  };
  const preserve = preserveMatcher(inv.preserve);
  return hosts.map((host) => ({ kind: 'ship', host, paths, preserve, ...filesOf(host.role) }));
}

/**
 * Pure: what a host of a role receives, as one short digest (the IPv4 file, the IPv6 file, the sets),
 * recorded per host in the deploy log: a role whose digest differs from its hosts' last has changed.
 */
export function shipDigest(v4: Buffer, v6: Buffer | undefined, sets: Buffer | undefined): string {
  const part = (b: Buffer | undefined) => (b ? sha256(b) : '-');
  return sha256(Buffer.from([part(v4), part(v6), part(sets)].join(' '))).slice(0, 16);
}

/** ipset mode: the sets of rendered/sets/ipset.rules that a role's rules match, as the host gets them. */
function roleSets(renderedDir: string): (role: string, files: readonly Buffer[]) => Buffer {
  const path = join(renderedDir, SETS_FILE);
  if (!existsSync(path))
    throw new UsageError(`${path} is missing (the inventory says sets: ipset)`, 'run `fwgen render`');
  const all = new Map(parseSets(readFileSync(path, 'utf8')).sets.map((s) => [s.name, s]));
  return (role, files) => {
    const names = files.flatMap((f) => setsMatched(parseRuleset(f.toString('utf8')).ruleset));
    const missing = names.filter((n) => !all.has(n));
    if (missing.length > 0) {
      throw new UsageError(`${path} has no set ${missing.join(', ')}, matched by role ${role}`, 'run `fwgen render`');
    }
    const header = [`# fwgen ipsets of role ${role}, from rendered/${SETS_FILE}.`];
    return Buffer.from(
      emitSets(
        [...new Set(names)].sort().map((n) => all.get(n)!),
        header,
      ),
      'utf8',
    );
  };
}

/** The digest of what each role's hosts get from `renderedDir` now; roles whose files are missing are left out. */
export function roleDigests(inv: Inventory, renderedDir: string): Map<string, string> {
  const firsts = inv.roles.flatMap((r) => (r.hosts[0] ? [r.hosts[0]] : []));
  const digests = (hosts: readonly Host[]) =>
    planShip(inv, hosts, renderedDir).map((j) => [j.host.role, j.digest!] as const);
  try {
    return new Map(digests(firsts));
  } catch {
    // Some role has no files in rendered/ (yet): the others, one at a time.
    return new Map(
      firsts.flatMap((h) => {
        try {
          return digests([h]);
        } catch {
          return [];
        }
      }),
    );
  }
}
