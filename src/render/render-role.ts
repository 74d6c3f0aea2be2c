import nunjucks from 'nunjucks';
import { TemplateError } from '../errors.js';
import type { Family } from '../inventory/model.js';
import type { RolePolicy } from '../resolve/policy.js';
import type { TemplateSet } from './templates.js';

/**
 * One rendered rules file; `path` is relative to the output folder. The content is kept as parts so
 * that the fleet block, identical in every role's file of a family, is one shared buffer.
 */
export interface RenderedFile {
  readonly role: string;
  readonly family: Family;
  readonly path: string;
  readonly parts: readonly Buffer[];
  readonly size: number;
}

/** The whole text of a rendered file. */
export function renderedText(file: RenderedFile): string {
  return Buffer.concat(file.parts as Buffer[], file.size).toString('utf8');
}

/** Stands in for the fleet block in a role's output until the shared buffer replaces it; NUL never comes from an inventory. */
const FLEET_MARK = '\u0000fwgen-fleet-rules\u0000';

/** Facts about the run that go into every file header. */
export interface RenderMeta {
  /** The inventory as named in headers, relative to the project: `inventory/inventory.yaml`. */
  readonly inventory: string;
  readonly version: string;
}

/** File name of each family's rules file, as `iptables-restore`/`ip6tables-restore` expect them. */
export const RULES_FILE: Record<Family, string> = { ipv4: 'iptables.up.rules', ipv6: 'ip6tables.up.rules' };

const FAMILY_CONTEXT = {
  ipv4: { family_label: 'IPv4', reject_with: 'icmp-port-unreachable', icmp_proto: 'icmp', icmp_echo_match: '-m icmp --icmp-type 8', ndp_types: [] as number[] },
  // Neighbour discovery (133-136) must pass or IPv6 stops working on the link; hop limit 255 proves it is link-local.
  ipv6: { family_label: 'IPv6', reject_with: 'icmp6-port-unreachable', icmp_proto: 'ipv6-icmp', icmp_echo_match: '-m icmp6 --icmpv6-type 128', ndp_types: [133, 134, 135, 136] },
} as const;

/** Renders every policy with its template: a pure function of policies, templates and meta. */
export function renderPolicies(policies: readonly RolePolicy[], templates: TemplateSet, meta: RenderMeta): RenderedFile[] {
  const env = makeEnvironment(templates);
  const fleetCache = new Map<readonly unknown[], Buffer>();
  return policies.map((policy) => {
    let fleet = fleetCache.get(policy.fleet);
    if (fleet === undefined) {
      fleet = Buffer.from(run(env, 'fleet.rules.njk', policy, { fleet: policy.fleet, interface: policy.interface ?? '' }), 'utf8');
      fleetCache.set(policy.fleet, fleet);
    }
    const text = run(env, policy.template, policy, contextOf(policy, meta, FLEET_MARK));
    const parts = text.split(FLEET_MARK).flatMap((piece, i) => (i === 0 ? [Buffer.from(piece, 'utf8')] : [fleet, Buffer.from(piece, 'utf8')]));
    const size = parts.reduce((n, b) => n + b.length, 0);
    return { role: policy.role, family: policy.family, path: `${policy.role}/${RULES_FILE[policy.family]}`, parts, size };
  });
}

function contextOf(p: RolePolicy, meta: RenderMeta, fleetRules: string): object {
  return {
    ...FAMILY_CONTEXT[p.family],
    version: meta.version,
    inventory: meta.inventory,
    role: p.role,
    family: p.family,
    hosts: p.hosts,
    interface: p.interface ?? '',
    loopback: p.loopback,
    management: p.management,
    ssh_ports: p.sshPorts,
    fleet: p.fleet,
    fleet_rules: fleetRules,
    public: p.public,
    public_ports: p.publicPorts,
    ports: p.ports,
    allow: p.allow,
  };
}

function run(env: nunjucks.Environment, name: string, policy: RolePolicy, ctx: object): string {
  try {
    return env.render(name, ctx);
  } catch (err) {
    throw new TemplateError(`rendering role ${policy.role} (${policy.family}) with ${name}: ${(err as Error).message.replace(/\s+/g, ' ').trim()}`, 'fix the template');
  }
}

function makeEnvironment(templates: TemplateSet): nunjucks.Environment {
  const loader = {
    getSource(name: string) {
      const t = templates.sources.get(name);
      return t ? { src: t.src, path: t.path, noCache: false } : null;
    },
  } as unknown as nunjucks.ILoader;
  return new nunjucks.Environment(loader, { autoescape: false, throwOnUndefined: true, trimBlocks: false, lstripBlocks: false });
}
