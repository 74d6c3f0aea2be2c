/**
 * `fwgen query` against the kernel. The rendered files of the example inventory and of a group-model
 * inventory (roles as groups, trust none, allow rules between them, a role template), in both
 * `sets: none` and `sets: ipset`, are loaded into lab hosts (network namespaces); then real TCP
 * connections are made. Every probe's result must equal query's verdict (open = allowed, refused =
 * denied), and among fwgen's rules in FWGEN-INPUT the one whose packet counter moved must be the rule
 * query named (the established, log and neighbour discovery rules aside: they count the other packets).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAddr } from '../../src/access/addresses.js';
import { runQuery, type QueryReport } from '../../src/access/query.js';
import { parseRule } from '../../src/model/parse.js';
import { emitRule } from '../../src/model/emit.js';
import { createLab, labPrereqs, type Lab, type LabHostSpec } from '../support/lab.js';
import { dedent, renderFleet } from '../support/access-fleet.js';

type Mode = 'none' | 'ipset';

interface Probe {
  /** The lab host the connection starts from, and the address it binds (default: the host's own). */
  readonly from: string;
  readonly source?: string;
  /** The inventory host it goes to (a lab host of the same name). */
  readonly to: string;
  readonly port: number;
  readonly v6?: boolean;
}

interface Scenario {
  readonly name: string;
  readonly yaml: string;
  readonly templates?: Record<string, string>;
  /** Lab hosts: inventory hosts by name (their rules loaded), and the prober `outside`. */
  readonly hosts: LabHostSpec[];
  /** Networks the destinations reach on-link (sources bound to the prober's extra addresses). */
  readonly routes: string[];
  readonly probes: Probe[];
}

const EXAMPLE_YAML = dedent(`
  defaults: { interface: eth1 }
  management: [203.0.113.0/28]
  monitoring:
    - { from: [metrics], ports: [tcp/9100] }
  trust: fleet
  roles:
    web:
      public: true
      hosts:
        web1: 198.51.100.11
        web2: { address: 198.51.100.12, ssh: { port: 2222 } }
        web3: { address: [198.51.100.13, 2001:db8:100::13] }
    db:
      allow:
        - { from: [web, worker], ports: [tcp/5432] }
        - { from: [192.0.2.0/24], ports: [tcp/9100, udp/161] }
      hosts:
        db1: 198.51.100.21
        db6: 2001:db8::21
    worker:
      ports: [tcp/8080]
      hosts: { w1: 198.51.100.31, w2: 198.51.100.32 }
    metrics:
      allow:
        - { from: [management-vpn], ports: [tcp/3000] }
      hosts:
        metrics1: 198.51.100.41
        management-vpn: { address: [198.51.100.42, 2001:db8:100::42] }
`);

const LISTEN = [22, 80, 443, 2222, 3000, 5432, 5433, 6000, 8080, 8085, 9100];

// The example inventory as it ships in inventory/inventory.yaml (ssh settings aside): four destinations,
// and a prober whose extra addresses stand for other hosts of the fleet, the management network, the
// allowed network and strangers.
const EXAMPLE: Scenario = {
  name: 'the example inventory',
  yaml: EXAMPLE_YAML,
  hosts: [
    { name: 'web1', ipv4: '198.51.100.11', listen: LISTEN },
    { name: 'db1', ipv4: '198.51.100.21', listen: LISTEN },
    { name: 'w1', ipv4: '198.51.100.31', listen: LISTEN },
    { name: 'metrics1', ipv4: '198.51.100.41', listen: LISTEN },
    {
      name: 'outside',
      ipv4: '198.51.100.200',
      extraIpv4: ['198.51.100.7', '198.51.100.12', '198.51.100.32', '198.51.100.42', '203.0.113.5', '192.0.2.7'],
    },
  ],
  routes: ['203.0.113.0/24', '192.0.2.0/24'],
  probes: [
    ...['web1', 'db1', 'w1', 'metrics1'].flatMap((to) =>
      ['198.51.100.7', '198.51.100.12', '198.51.100.32', '198.51.100.42', '203.0.113.5', '192.0.2.7'].flatMap(
        (source) =>
          (
            ({ web1: [80, 22, 8080], db1: [5432, 9100, 22], w1: [8080, 5432], metrics1: [3000, 9100] }) as Record<
              string,
              number[]
            >
          )[to]!.map((port) => ({ from: 'outside', source, to, port })),
      ),
    ),
    // Hosts of the fleet from their own namespaces.
    { from: 'w1', to: 'db1', port: 6000 },
    { from: 'db1', to: 'web1', port: 22 },
  ],
};

// Roles as groups: no fleet trust, every flow written as an allow rule between groups; dual stack;
// a role template adds a rule for a network of its own.
const GROUPS: Scenario = {
  name: 'a group-model inventory',
  yaml: dedent(`
    defaults: { interface: eth1 }
    management: [203.0.113.0/28]
    monitoring: [{ from: [mon], ports: [tcp/9100] }]
    trust: none
    roles:
      lb: { public: true, hosts: { lb1: [198.51.100.51, "2001:db8:51::51"] } }
      app:
        allow:
          - { from: [lb], ports: [tcp/8080-8090] }
        hosts: { app1: [198.51.100.61, "2001:db8:51::61"], app2: 198.51.100.62 }
      db:
        allow:
          - { from: [app], ports: [tcp/5432] }
          - { from: [192.0.2.0/25, lb1], ports: [tcp/5433, udp/161] }
        hosts: { db1: [198.51.100.71, "2001:db8:51::71"] }
      mon: { hosts: { mon1: [198.51.100.81, "2001:db8:51::81"] } }
  `),
  templates: {
    'roles/db.njk':
      '{% extends "base.rules.njk" %}{% block extra %}{% if family == "ipv4" %}' +
      '-A FWGEN-INPUT -s 192.0.2.128/25 -p tcp -m tcp --dport 6000 -j ACCEPT\n{% endif %}{% endblock %}',
  },
  hosts: [
    { name: 'lb1', ipv4: '198.51.100.51', ipv6: '2001:db8:51::51', listen: LISTEN },
    { name: 'app1', ipv4: '198.51.100.61', ipv6: '2001:db8:51::61', listen: LISTEN },
    { name: 'db1', ipv4: '198.51.100.71', ipv6: '2001:db8:51::71', listen: LISTEN },
    { name: 'mon1', ipv4: '198.51.100.81', ipv6: '2001:db8:51::81', listen: LISTEN },
    {
      name: 'outside',
      ipv4: '198.51.100.200',
      ipv6: '2001:db8:51::200',
      extraIpv4: ['198.51.100.62', '203.0.113.5', '192.0.2.7', '192.0.2.130'],
    },
  ],
  routes: ['203.0.113.0/24', '192.0.2.0/24'],
  probes: [
    ...[
      ['lb1', 'app1', [8085, 8091, 22]],
      ['app1', 'db1', [5432, 5433, 9100]],
      ['lb1', 'db1', [5433, 5432]],
      ['mon1', 'db1', [9100, 5432]],
      ['mon1', 'lb1', [9100, 80, 22]],
      ['db1', 'app1', [8080]],
    ].flatMap(([from, to, ports]) =>
      (ports as number[]).flatMap((port) => [
        { from: from as string, to: to as string, port },
        { from: from as string, to: to as string, port, v6: true },
      ]),
    ),
    ...['198.51.100.62', '203.0.113.5', '192.0.2.7', '192.0.2.130', '198.51.100.200'].flatMap((source) =>
      [
        ['db1', 5432],
        ['db1', 5433],
        ['db1', 6000],
        ['db1', 22],
        ['lb1', 443],
        ['app1', 8080],
      ].map(([to, port]) => ({ from: 'outside', source, to: to as string, port: port as number })),
    ),
  ],
};

it('has the prerequisites of the kernel tests (root, ip, iptables-restore, ipset, socat, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

/** Counters of the rules of FWGEN-INPUT that moved, as rule texts (without counters). */
function movedRules(saved: string): string[] {
  const QUIET = ['fwgen established', 'fwgen log denied', 'fwgen neighbour discovery'];
  return saved
    .split('\n')
    .filter((l) => /^\[\d+:\d+\] -A FWGEN-INPUT /.test(l) && !/^\[0:0\]/.test(l))
    .map((l) => emitRule(parseRule(l.replace(/^\[\d+:\d+\] /, ''))!))
    .filter((text) => !QUIET.some((q) => text.includes(`"${q}"`)));
}

describe.each(
  [EXAMPLE, GROUPS].flatMap((s, i) =>
    (['none', 'ipset'] as Mode[]).map((mode) => ({
      s,
      mode,
      prefix: `fwq${i}${mode[0]}`,
      label: `${s.name}, sets: ${mode}`,
    })),
  ),
)('query against the kernel: $label', ({ s, mode, prefix }) => {
  let lab: Lab;
  let rendered: ReturnType<typeof renderFleet>;
  const yaml = `sets: ${mode}\n${s.yaml}`;

  beforeAll(async () => {
    rendered = renderFleet(yaml, s.templates);
    lab = await createLab({ prefix, hosts: s.hosts, controller: false });
    const inv = rendered.fleet.inventory;
    for (const h of s.hosts.filter((x) => x.name !== 'outside')) {
      const role = inv.hosts.find((x) => x.name === h.name)!.role;
      for (const net of s.routes) await lab.execOk(h.name, ['ip', 'route', 'add', net, 'dev', 'eth1']);
      const sets = rendered.files.get('sets/ipset.rules');
      if (sets) await lab.execOk(h.name, ['ipset', 'restore'], { input: sets });
      await lab.execOk(h.name, ['iptables-restore'], { input: rendered.files.get(`${role}/iptables.up.rules`)! });
      const v6 = rendered.files.get(`${role}/ip6tables.up.rules`);
      if (v6) await lab.execOk(h.name, ['ip6tables-restore'], { input: v6 });
    }
  }, 120_000);

  afterAll(async () => lab?.destroy(), 60_000);

  it('every probe: the kernel does what query says, by the rule query names', async () => {
    const files = {
      rules: (role: string, family: string) => {
        const path = `${role}/${family === 'ipv4' ? 'iptables' : 'ip6tables'}.up.rules`;
        const text = rendered.files.get(path);
        return text === undefined ? undefined : { path: `rendered/${path}`, text };
      },
      sets: () => {
        const text = rendered.files.get('sets/ipset.rules');
        return text === undefined ? undefined : { path: 'rendered/sets/ipset.rules', text };
      },
    };
    const ctx = { inventory: rendered.fleet.inventory, inventoryFile: 'inventory.yaml', inventoryText: yaml, files };
    const hostOf = (name: string) => s.hosts.find((h) => h.name === name)!;
    // Probes to one host run one after another (its counters are zeroed for each); hosts in parallel.
    const byDst = new Map<string, Probe[]>();
    for (const p of s.probes) byDst.set(p.to, [...(byDst.get(p.to) ?? []), p]);
    const seen = { allowed: 0, denied: 0 };
    const failures: string[] = [];
    await Promise.all(
      [...byDst].map(async ([to, probes]) => {
        for (const p of probes) {
          const source = p.source ?? (p.v6 ? hostOf(p.from).ipv6! : hostOf(p.from).ipv4);
          const target = p.v6 ? hostOf(to).ipv6! : hostOf(to).ipv4;
          const q: QueryReport = runQuery(ctx, { from: source, to, port: `tcp/${p.port}`, in: 'eth1' });
          const pair = q.pairs.find((x) => parseAddr(x.toAddress)?.family === (p.v6 ? 'ipv6' : 'ipv4'))!;
          const { verdict, rule } = pair.answer;
          const [, save] = p.v6 ? ['ip6tables', 'ip6tables-save'] : ['iptables', 'iptables-save'];
          await lab.execOk(to, [p.v6 ? 'ip6tables' : 'iptables', '-t', 'filter', '-Z']);
          const result = await lab.probe(p.from, target, p.port, { source, timeoutMs: 3000 });
          const moved = movedRules(await lab.execOk(to, [save, '-c', '-t', 'filter']));
          const what = `${source} -> ${to} (${target}) tcp/${p.port}: query ${verdict} by ${rule?.text}; kernel ${result}, counted ${JSON.stringify(moved)}`;
          const expected = verdict === 'allowed' ? 'open' : 'refused';
          if (verdict === 'allowed' || verdict === 'denied') seen[verdict]++;
          if (result !== expected || moved.length !== 1 || moved[0] !== rule?.text) failures.push(what);
        }
      }),
    );
    expect(failures).toEqual([]);
    // Both answers were put to the test.
    expect(seen.allowed).toBeGreaterThan(5);
    expect(seen.denied).toBeGreaterThan(5);
  }, 120_000);
});
