import type { Family, Host, Inventory } from '../inventory/model.js';
import type { Ruleset } from '../model/ruleset.js';
import type { RoleRuleset } from '../render/render-role.js';
import { parseCidr, type Addr, type AddrSet } from './addresses.js';
import { compileTable, type RulesetInput } from './evaluate.js';
import { contains } from './intervals.js';
import type { IfaceClass } from './rule-match.js';

/** What ships for a fleet: each role's rules per family, and the members of every rendered set. */
export interface FleetRules {
  readonly inventory: Inventory;
  readonly rulesets: ReadonlyMap<string, Partial<Record<Family, Ruleset>>>;
  readonly sets: ReadonlyMap<string, readonly string[]>;
}

/** A fleet's rules from the rulesets a render built (before printing them). */
export function fleetRulesOf(inventory: Inventory, built: readonly RoleRuleset[]): FleetRules {
  const rulesets = new Map<string, Partial<Record<Family, Ruleset>>>();
  const sets = new Map<string, readonly string[]>();
  for (const { policy, ruleset } of built) {
    rulesets.set(policy.role, { ...rulesets.get(policy.role), [policy.family]: ruleset });
    for (const s of ruleset.sets ?? []) sets.set(s.name, s.members);
  }
  return { inventory, rulesets, sets };
}

/** A role without rules for a family accepts everything on it: no rules were loaded. */
const NO_RULES: Ruleset = { tables: [] };

/** The rules a role's hosts of a family run, with the set members they match. */
export function rulesetFor(fleet: FleetRules, role: string, family: Family): RulesetInput {
  return { ruleset: fleet.rulesets.get(role)?.[family] ?? NO_RULES, family, sets: fleet.sets };
}

/** A host's address of a family, as a number. */
export function hostAddr(host: Host, family: Family): Addr | undefined {
  const net = host.addresses.find((a) => a.family === family);
  return net ? parseCidr(net.cidr)!.lo : undefined;
}

/** The interface names some rule of these rulesets matches (`-i`/`-o`), `lo` and wildcards left out. */
export function namedInterfaces(inputs: readonly RulesetInput[]): string[] {
  const names = new Set<string>();
  for (const input of inputs) {
    for (const table of input.ruleset.tables) {
      const ct = compileTable(table, input.family, input.sets);
      for (const rules of ct.chains.values()) {
        for (const r of rules) {
          for (const f of [r.frames.in, r.frames.out]) {
            for (const c of f.fixed)
              if (c.kind === 'iface' && c.name !== 'lo' && !c.name.endsWith('+')) names.add(c.name);
          }
        }
      }
    }
  }
  return [...names].sort();
}

/**
 * The interfaces worth telling apart for these rulesets: each name a rule matches, and "any other".
 * Without a name, one class: any interface.
 */
export function interfaceClasses(names: readonly string[]): IfaceClass[] {
  return [...names.map((name) => ({ name })), { except: names }];
}

/** The label of an interface class: its name, `other` (none of the named ones), or `any` when it is the only class. */
export function ifaceLabel(cls: IfaceClass, classes: readonly IfaceClass[]): string {
  if ('name' in cls) return cls.name;
  return classes.length === 1 ? 'any' : 'other';
}

/** The local address sets some rule matches (`-d`, a dst set): hosts alike for all of them are judged once. */
export function localSets(inputs: readonly RulesetInput[]): AddrSet[] {
  const sets: AddrSet[] = [];
  for (const input of inputs) {
    for (const table of input.ruleset.tables) {
      const ct = compileTable(table, input.family, input.sets);
      for (const rules of ct.chains.values()) {
        for (const r of rules) {
          for (const f of [r.frames.in, r.frames.out])
            if (f.local !== undefined && !sets.includes(f.local)) sets.push(f.local);
        }
      }
    }
  }
  return sets;
}

/** A key telling hosts apart by which local address sets hold their address. */
export function localKey(sets: readonly AddrSet[], addr: Addr): string {
  let key = '';
  for (const s of sets) key += contains(s, addr) ? '1' : '0';
  return key;
}
