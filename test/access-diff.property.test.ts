// Property tests of `fwgen diff` over random inventories and random edits, judged on what ships (the
// rendered files parsed back, as `fwgen query` reads them):
// - every change diff reports (and every access change that comes with a host's membership line) has
//   a witness connection whose verdict differs between BASE and HEAD, the way the change says;
// - for sampled connections whose verdict differs, diff reports a change that covers them (source,
//   destination, port and interface), or the host's readdressing explains it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FULL, parseAddr, parseCidr, type Addr } from '../src/access/addresses.js';
import { describeDiff, type ChangeJson, type DiffReport } from '../src/access/describe.js';
import { diffAccess } from '../src/access/diff.js';
import { decide, type RulesetInput } from '../src/access/evaluate.js';
import { diffMembership } from '../src/access/membership.js';
import type { IfaceClass } from '../src/access/rule-match.js';
import { service } from '../src/access/services.js';
import type { Family, Inventory } from '../src/inventory/model.js';
import { parseRuleset } from '../src/model/parse.js';
import { parseSets } from '../src/model/sets.js';
import { renderFleet, type RenderedFleet } from './support/access-fleet.js';

// ---- random inventories ------------------------------------------------------------------------------------

interface Model {
  trust: 'fleet' | 'none';
  sets: 'none' | 'ipset';
  iface: boolean;
  management: boolean;
  monitoring: string[];
  roles: Record<
    string,
    { public: boolean; ports: string[]; allow: { from: string[]; ports: string[] }[]; hosts: Record<string, string[]> }
  >;
}

const V4 = Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`);
const V6 = Array.from({ length: 12 }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);
const NETS = ['192.0.2.0/25', '198.51.100.0/28', '2001:db8:5::/64', '192.0.2.128/26'];
const PORTS = ['tcp/5432', 'tcp/22', 'udp/161', 'tcp/1000-2000', 'tcp/8080', 'udp/53', 'tcp/9000-9010'];

const modelArb: fc.Arbitrary<Model> = fc
  .record({
    trust: fc.constantFrom<'fleet' | 'none'>('fleet', 'none'),
    sets: fc.constantFrom<'none' | 'ipset'>('none', 'ipset'),
    iface: fc.boolean(),
    management: fc.boolean(),
    roles: fc.array(
      fc.record({
        public: fc.boolean(),
        ports: fc.subarray(PORTS, { maxLength: 2 }),
        hosts: fc.integer({ min: 1, max: 3 }),
        v6: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
        allow: fc.array(
          fc.record({
            from: fc.array(fc.nat(20), { minLength: 1, maxLength: 3 }),
            ports: fc.subarray(PORTS, { minLength: 1, maxLength: 2 }),
          }),
          { maxLength: 2 },
        ),
      }),
      { minLength: 2, maxLength: 4 },
    ),
    monitoring: fc.subarray(['192.0.2.10', 'h0', 'r1'], { maxLength: 1 }),
  })
  .map((r) => {
    let a4 = 0;
    let a6 = 0;
    let h = 0;
    const roles: Model['roles'] = {};
    r.roles.forEach((role, i) => {
      const hosts: Record<string, string[]> = {};
      for (let k = 0; k < role.hosts; k++)
        hosts[`h${h++}`] = [V4[a4++]!, ...(role.v6[k] && a6 < V6.length ? [V6[a6++]!] : [])];
      roles[`r${i}`] = { public: role.public, ports: role.ports, allow: [], hosts };
    });
    const names = [...Object.keys(roles), ...Object.values(roles).flatMap((x) => Object.keys(x.hosts)), ...NETS];
    r.roles.forEach((role, i) => {
      roles[`r${i}`]!.allow = role.allow.map((al) => ({
        from: [...new Set(al.from.map((n) => names[n % names.length]!))],
        ports: al.ports,
      }));
    });
    return { trust: r.trust, sets: r.sets, iface: r.iface, management: r.management, monitoring: r.monitoring, roles };
  });

type Edit = (m: Model, pick: number) => void;

const hostsOf = (m: Model) =>
  Object.entries(m.roles).flatMap(([role, r]) => Object.keys(r.hosts).map((h) => ({ role, h })));
const usedV4 = (m: Model) => new Set(Object.values(m.roles).flatMap((r) => Object.values(r.hosts).flat()));
const freeV4 = (m: Model, pick: number) => V4.filter((a) => !usedV4(m).has(a))[pick % 5]!;
const forget = (m: Model, name: string) => {
  for (const r of Object.values(m.roles)) {
    r.allow = r.allow.map((a) => ({ ...a, from: a.from.filter((f) => f !== name) })).filter((a) => a.from.length > 0);
  }
  m.monitoring = m.monitoring.filter((f) => f !== name);
};

const EDITS: Record<string, Edit> = {
  addHost: (m, p) => {
    const role = Object.keys(m.roles)[p % Object.keys(m.roles).length]!;
    m.roles[role]!.hosts[`n${p}`] = [freeV4(m, p)];
  },
  removeHost: (m, p) => {
    const all = hostsOf(m).filter(({ role }) => Object.keys(m.roles[role]!.hosts).length > 1);
    if (all.length === 0) return;
    const { role, h } = all[p % all.length]!;
    delete m.roles[role]!.hosts[h];
    forget(m, h);
  },
  moveHost: (m, p) => {
    const all = hostsOf(m).filter(({ role }) => Object.keys(m.roles[role]!.hosts).length > 1);
    if (all.length === 0) return;
    const { role, h } = all[p % all.length]!;
    const to = Object.keys(m.roles).filter((r) => r !== role)[p % (Object.keys(m.roles).length - 1)]!;
    m.roles[to]!.hosts[h] = m.roles[role]!.hosts[h]!;
    delete m.roles[role]!.hosts[h];
  },
  readdress: (m, p) => {
    const { role, h } = hostsOf(m)[p % hostsOf(m).length]!;
    m.roles[role]!.hosts[h] = [freeV4(m, p), ...m.roles[role]!.hosts[h]!.slice(1)];
  },
  rename: (m, p) => {
    const { role, h } = hostsOf(m)[p % hostsOf(m).length]!;
    m.roles[role]!.hosts[`x${h}`] = m.roles[role]!.hosts[h]!;
    delete m.roles[role]!.hosts[h];
    forget(m, h);
  },
  togglePublic: (m, p) => {
    const r = Object.values(m.roles)[p % Object.keys(m.roles).length]!;
    r.public = !r.public;
  },
  ports: (m, p) => {
    const r = Object.values(m.roles)[p % Object.keys(m.roles).length]!;
    const port = PORTS[p % PORTS.length]!;
    r.ports = r.ports.includes(port) ? r.ports.filter((x) => x !== port) : [...r.ports, port];
  },
  addAllow: (m, p) => {
    const names = [...Object.keys(m.roles), ...hostsOf(m).map((x) => x.h), ...NETS];
    const r = Object.values(m.roles)[p % Object.keys(m.roles).length]!;
    r.allow.push({ from: [names[p % names.length]!], ports: [PORTS[(p >> 2) % PORTS.length]!] });
  },
  removeAllow: (m, p) => {
    const r = Object.values(m.roles).find((x) => x.allow.length > 0);
    r?.allow.splice(p % r.allow.length, 1);
  },
  trust: (m) => void (m.trust = m.trust === 'fleet' ? 'none' : 'fleet'),
  sets: (m) => void (m.sets = m.sets === 'none' ? 'ipset' : 'none'),
  iface: (m) => void (m.iface = !m.iface),
  management: (m) => void (m.management = !m.management),
};

const editArb = fc.array(fc.tuple(fc.constantFrom(...Object.keys(EDITS)), fc.nat(1000)), {
  minLength: 1,
  maxLength: 3,
});

function yamlOf(m: Model): string {
  // YAML is a superset of JSON: the inventory as JSON is an inventory.
  return JSON.stringify({
    ...(m.iface ? { defaults: { interface: 'eth1' } } : {}),
    ...(m.management ? { management: ['203.0.113.0/28'] } : {}),
    ...(m.monitoring.length > 0 ? { monitoring: [{ from: m.monitoring, ports: ['tcp/9100'] }] } : {}),
    trust: m.trust,
    sets: m.sets,
    roles: Object.fromEntries(
      Object.entries(m.roles).map(([name, r]) => [
        name,
        {
          public: r.public,
          ...(r.ports.length > 0 ? { ports: r.ports } : {}),
          ...(r.allow.length > 0 ? { allow: r.allow } : {}),
          hosts: Object.fromEntries(Object.entries(r.hosts).map(([h, a]) => [h, a.length === 1 ? a[0] : a])),
        },
      ]),
    ),
  });
}

// ---- what ships, read back -----------------------------------------------------------------------------------

class Shipped {
  private readonly cache = new Map<string, RulesetInput>();
  private readonly sets: ReadonlyMap<string, readonly string[]>;
  constructor(readonly r: RenderedFleet) {
    const text = r.files.get('sets/ipset.rules');
    this.sets = new Map(text ? parseSets(text).sets.map((s) => [s.name, s.members]) : []);
  }
  get inv(): Inventory {
    return this.r.fleet.inventory;
  }
  input(role: string, family: Family): RulesetInput {
    const key = `${role}/${family === 'ipv4' ? 'iptables' : 'ip6tables'}.up.rules`;
    let i = this.cache.get(key);
    if (!i) {
      const text = this.r.files.get(key);
      const ruleset = text ? parseRuleset(text).ruleset : { tables: [] };
      this.cache.set(key, (i = { ruleset, family, sets: this.sets }));
    }
    return i;
  }
  /** The verdict for a connection to a host (by name) of this revision. */
  verdict(host: string, from: string, port: string, iface: string): string | undefined {
    const h = this.inv.hosts.find((x) => x.name === host);
    const src = parseAddr(from)!;
    const net = h?.addresses.find((a) => a.family === src.family);
    if (!h || !net) return undefined;
    const [proto, n] = port.split('/') as ['tcp' | 'udp', string];
    const place = { family: src.family, local: parseCidr(net.cidr)!.lo, iface: { name: iface } as IfaceClass };
    return decide(this.input(h.role, src.family), place, { remote: src.value, service: service(proto, Number(n)) })
      .verdict;
  }
}

function diffOf(a: Shipped, b: Shipped): DiffReport {
  return describeDiff({
    base: a.r.fleet,
    head: b.r.fleet,
    baseLabel: 'base',
    headLabel: 'head',
    diff: diffAccess(a.r.fleet, b.r.fleet),
    membership: diffMembership(a.inv, b.inv),
    renderedFilesChanged: 0,
  });
}

const EXPECTED: Record<ChangeJson['change'], (before?: string, after?: string) => boolean> = {
  added: (b, a) => b === 'deny' && a === 'accept',
  removed: (b, a) => b === 'accept' && a === 'deny',
  undetermined: (b, a) => b !== a && (b === 'undetermined' || a === 'undetermined'),
};

/** Addresses a JSON source stands for, in one revision. */
function covers(src: string, addr: Addr, family: Family, inv: Inventory): boolean {
  const hostAddrs = (names: string[]) =>
    inv.hosts
      .filter((h) => names.includes(h.name) || names.includes(h.role) || names.includes('fleet'))
      .flatMap((h) => h.addresses.filter((a) => a.family === family).map((a) => parseCidr(a.cidr)!.lo));
  if (src === 'any') return true;
  if (src.startsWith('any except ')) {
    const except = src.slice('any except '.length).split(' ');
    return !except.some((e) => covers(e, addr, family, inv));
  }
  const net = parseCidr(src);
  if (net) return net.family === family && net.lo <= addr && addr < net.hi;
  return hostAddrs([src]).includes(addr);
}

function portCovers(range: string, port: string): boolean {
  const [p, spec] = range.split('/') as [string, string];
  const [q, n] = port.split('/') as [string, string];
  const [lo, hi = lo] = spec.split('-').map(Number) as [number, number?];
  return p === q && lo <= Number(n) && Number(n) <= hi!;
}

const SOURCES = ['192.0.2.7', '192.0.2.130', '203.0.113.5', '198.51.100.250', '2001:db8:5::1', '2001:db8::99'];
const SAMPLE_PORTS = [
  'tcp/22',
  'tcp/80',
  'tcp/443',
  'tcp/5432',
  'tcp/8080',
  'udp/53',
  'udp/161',
  'tcp/9005',
  'tcp/1500',
  'tcp/9100',
  'tcp/60000',
];

describe('diff over random inventories and edits', () => {
  it('every reported change has a witness whose verdict differs; every differing sample is covered', () => {
    fc.assert(
      fc.property(modelArb, editArb, (model, edits) => {
        const head: Model = structuredClone(model);
        for (const [name, pick] of edits) EDITS[name]!(head, pick);
        const a = new Shipped(renderFleet(yamlOf(model)));
        const b = new Shipped(renderFleet(yamlOf(head)));
        const report = diffOf(a, b);
        const all = [...report.changes, ...report.membership.flatMap((m) => m.access)];
        for (const c of all) {
          const w = c.witness;
          const before = a.verdict(w.to, w.from, w.port, w.in);
          const after = b.verdict(w.to, w.from, w.port, w.in);
          expect(EXPECTED[c.change](before, after), `${JSON.stringify(c)}: base ${before}, head ${after}`).toBe(true);
        }
        // Sampled connections to hosts in the same role in both revisions.
        const moved = new Set(
          report.membership.flatMap((m) => ('was' in m && m.was ? [...m.was, ...m.addresses] : [])),
        );
        const sources = [
          ...new Set([...a.inv.hosts, ...b.inv.hosts].flatMap((h) => h.addresses.map((x) => x.cidr.split('/')[0]!))),
          ...SOURCES,
        ];
        for (const dst of b.inv.hosts) {
          if (a.inv.hosts.find((h) => h.name === dst.name)?.role !== dst.role) continue;
          for (const from of sources) {
            const fam = parseAddr(from)!.family;
            for (const port of SAMPLE_PORTS) {
              for (const iface of ['eth1', 'eth0']) {
                const before = a.verdict(dst.name, from, port, iface);
                const after = b.verdict(dst.name, from, port, iface);
                if (before === undefined || after === undefined || before === after || moved.has(from)) continue;
                const kind =
                  after === 'undetermined' || before === 'undetermined'
                    ? 'undetermined'
                    : after === 'accept'
                      ? 'added'
                      : 'removed';
                const names = kind === 'removed' ? a.inv : b.inv;
                const addr = parseAddr(from)!.value;
                const hit = all.some(
                  (c) =>
                    c.change === kind &&
                    (c.to.includes(dst.role) || c.to.includes(dst.name)) &&
                    portCovers(c.port, port) &&
                    (c.in === 'any' || c.in === iface || (c.in === 'other' && iface !== 'eth1')) &&
                    c.from.some((s) => covers(s, addr, fam, names)),
                );
                expect(
                  hit,
                  `${from} -> ${dst.name} ${port} via ${iface}: base ${before}, head ${after}, not covered by\n${report.lines.join('\n')}\n${yamlOf(model)}\n${yamlOf(head)}`,
                ).toBe(true);
              }
            }
          }
        }
        void FULL;
      }),
      { numRuns: 60 },
    );
  });
});
