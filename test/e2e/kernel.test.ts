/**
 * The kernel is the judge: rendered files are loaded with the real iptables-restore into lab hosts
 * (network namespaces), and real TCP connections show what passes and what is rejected. Every probe
 * runs twice: with `sets: none` (one rule per CIDR) and `sets: ipset` (the sets file loaded with
 * `ipset restore` first, rules matching sets).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProject } from '../../src/cli/project.js';
import { parseSets } from '../../src/model/sets.js';
import { renderedText, SETS_FILE } from '../../src/render/render-role.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';

const PORTS = [22, 80, 443, 5432, 8080, 9100];

type Mode = 'none' | 'ipset';

function dedent(text: string): string {
  const lines = text.split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

function renderInventory(yaml: string, mode: Mode = 'none'): Map<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'fwgen-kernel-'));
  try {
    writeFileSync(join(dir, 'inventory.yaml'), `sets: ${mode}\n${dedent(yaml)}`);
    const project = renderProject({ inventory: join(dir, 'inventory.yaml'), out: join(dir, 'rendered') });
    return new Map(project.files.map((f) => [f.path, renderedText(f)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const normalize = (s: string): string[] =>
  s
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'));

/** Loads the sets file into a host (ipset mode) and checks that `ipset save` shows the same members. */
async function loadSets(lab: Lab, host: string, files: Map<string, string>): Promise<void> {
  const sets = files.get(SETS_FILE);
  if (sets === undefined) return;
  await lab.execOk(host, ['ipset', 'restore'], { input: sets });
  const saved = parseSets(await lab.execOk(host, ['ipset', 'save'])).sets;
  expect(saved.map((s) => [s.name, s.members])).toEqual(parseSets(sets).sets.map((s) => [s.name, s.members]));
}

/** Loads a rules file into a host: --test first, then for real; returns what iptables-save shows. */
async function load(lab: Lab, host: string, rules: string, v6 = false): Promise<string> {
  const [restore, save] = v6 ? ['ip6tables-restore', 'ip6tables-save'] : ['iptables-restore', 'iptables-save'];
  const test = await lab.exec(host, [restore, '--test'], { input: rules });
  expect(test, test.stderr).toMatchObject({ code: 0 });
  await lab.execOk(host, [restore], { input: rules });
  return lab.execOk(host, [save, '-t', 'filter']);
}

it('has the prerequisites of the kernel tests (root, ip, iptables-restore, socat, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe.each([
  { mode: 'none' as Mode, tag: '' },
  { mode: 'ipset' as Mode, tag: 's' },
])('sets: $mode', ({ mode, tag }) => {
  describe(`kernel (sets: ${mode}): trust fleet, public role, management SSH, IPv6`, () => {
    let lab: Lab;
    let files: Map<string, string>;

    beforeAll(async () => {
      lab = await createLab({
        prefix: `fwk${tag}`,
        hosts: [
          { name: 'web1', ipv4: '198.18.1.11', prefix4: 16, ipv6: '2001:db8:18::11', listen: PORTS },
          { name: 'db1', ipv4: '198.18.1.21', prefix4: 16, ipv6: '2001:db8:18::21', listen: PORTS },
          // Not in the inventory; its extra addresses act as the management network and an allowed CIDR.
          {
            name: 'outside',
            ipv4: '198.18.9.9',
            prefix4: 16,
            ipv6: '2001:db8:18::99',
            extraIpv4: ['198.18.5.5', '198.18.7.7'],
          },
        ],
        controller: false,
      });
      files = renderInventory(
        `
  defaults: { interface: eth1 }
  management: [198.18.5.0/28]
  trust: fleet
  roles:
    web: { public: true, hosts: { web1: [198.18.1.11, "2001:db8:18::11"] } }
    db:
      allow: [{ from: [198.18.7.0/24], ports: [tcp/9100] }]
      hosts: { db1: [198.18.1.21, "2001:db8:18::21"] }
  `,
        mode,
      );
      for (const [host, role] of [
        ['web1', 'web'],
        ['db1', 'db'],
      ]) {
        await loadSets(lab, host, files);
        const saved = await load(lab, host, files.get(`${role}/iptables.up.rules`)!);
        expect(normalize(saved)).toEqual(normalize(files.get(`${role}/iptables.up.rules`)!));
        const saved6 = await load(lab, host, files.get(`${role}/ip6tables.up.rules`)!, true);
        expect(normalize(saved6)).toEqual(normalize(files.get(`${role}/ip6tables.up.rules`)!));
      }
    }, 120_000);

    afterAll(async () => lab?.destroy(), 60_000);

    it('a public role accepts 80/443 from anywhere, and nothing else from a stranger', async () => {
      expect(await lab.probe('outside', '198.18.1.11', 80)).toBe('open');
      expect(await lab.probe('outside', '198.18.1.11', 443)).toBe('open');
      expect(await lab.probe('outside', '198.18.1.11', 8080)).toBe('refused');
      expect(await lab.probe('outside', '198.18.1.21', 80)).toBe('refused');
    });

    it('fleet members get in on the interface, on any port; a non-member is rejected', async () => {
      for (const port of [5432, 8080]) {
        expect(await lab.probe('web1', '198.18.1.21', port)).toBe('open');
        expect(await lab.probe('outside', '198.18.1.21', port)).toBe('refused');
      }
    });

    it('an allow rule admits exactly its sources on exactly its ports', async () => {
      expect(await lab.probe('outside', '198.18.1.21', 9100, { source: '198.18.7.7' })).toBe('open');
      expect(await lab.probe('outside', '198.18.1.21', 5432, { source: '198.18.7.7' })).toBe('refused');
      expect(await lab.probe('outside', '198.18.1.21', 9100)).toBe('refused');
    });

    it('the management network reaches SSH, and only SSH', async () => {
      expect(await lab.probe('outside', '198.18.1.21', 22, { source: '198.18.5.5' })).toBe('open');
      expect(await lab.probe('outside', '198.18.1.21', 8080, { source: '198.18.5.5' })).toBe('refused');
      expect(await lab.probe('outside', '198.18.1.21', 22)).toBe('refused');
    });

    it('IPv6: neighbour discovery works, fleet members get in, others are rejected', async () => {
      expect(await lab.probe('web1', '2001:db8:18::21', 8080)).toBe('open');
      expect(await lab.probe('outside', '2001:db8:18::21', 8080)).toBe('refused');
      expect(await lab.probe('outside', '2001:db8:18::11', 443)).toBe('open');
    });
  });

  describe(`kernel (sets: ${mode}): trust none, allow rules from roles, hosts and CIDRs`, () => {
    let lab: Lab;

    beforeAll(async () => {
      lab = await createLab({
        prefix: `fwn${tag}`,
        hosts: [
          { name: 'app1', ipv4: '198.18.2.11', prefix4: 16 },
          { name: 'app2', ipv4: '198.18.2.12', prefix4: 16 },
          { name: 'cron1', ipv4: '198.18.2.31', prefix4: 16 },
          { name: 'db1', ipv4: '198.18.2.21', prefix4: 16, listen: PORTS },
          { name: 'outside', ipv4: '198.18.9.9', prefix4: 16, extraIpv4: ['198.18.7.7', '198.18.5.5'] },
        ],
        controller: false,
      });
      const files = renderInventory(
        `
  defaults: { interface: eth1 }
  management: [198.18.5.0/28]
  trust: none
  roles:
    app: { hosts: { app1: 198.18.2.11, app2: 198.18.2.12 } }
    cron: { hosts: { cron1: 198.18.2.31 } }
    db:
      allow:
        - { from: [app], ports: [tcp/5432] }
        - { from: [cron1, 198.18.7.0/24], ports: [tcp/9100] }
      hosts: { db1: 198.18.2.21 }
  `,
        mode,
      );
      await loadSets(lab, 'db1', files);
      await load(lab, 'db1', files.get('db/iptables.up.rules')!);
    }, 120_000);

    afterAll(async () => lab?.destroy(), 60_000);

    it('a role source reaches exactly its port', async () => {
      expect(await lab.probe('app1', '198.18.2.21', 5432)).toBe('open');
      expect(await lab.probe('app2', '198.18.2.21', 5432)).toBe('open');
      expect(await lab.probe('app1', '198.18.2.21', 9100)).toBe('refused');
      expect(await lab.probe('app1', '198.18.2.21', 8080)).toBe('refused');
    });

    it('a host source and a CIDR source reach exactly their port', async () => {
      expect(await lab.probe('cron1', '198.18.2.21', 9100)).toBe('open');
      expect(await lab.probe('cron1', '198.18.2.21', 5432)).toBe('refused');
      expect(await lab.probe('outside', '198.18.2.21', 9100, { source: '198.18.7.7' })).toBe('open');
      expect(await lab.probe('outside', '198.18.2.21', 5432, { source: '198.18.7.7' })).toBe('refused');
    });

    it('without fleet trust, fleet members reach nothing they were not allowed', async () => {
      expect(await lab.probe('cron1', '198.18.2.21', 8080)).toBe('refused');
      expect(await lab.probe('outside', '198.18.2.21', 22, { source: '198.18.5.5' })).toBe('open');
      expect(await lab.probe('outside', '198.18.2.21', 22)).toBe('refused');
    });
  });

  describe(`kernel (sets: ${mode}): aggregated fleet, allow and management rules admit exactly the merged addresses`, () => {
    let lab: Lab;
    let db: string;
    let files: Map<string, string>;

    beforeAll(async () => {
      lab = await createLab({
        prefix: `fwa${tag}`,
        hosts: [
          { name: 'web1', ipv4: '198.18.3.12', prefix4: 16 },
          { name: 'web2', ipv4: '198.18.3.13', prefix4: 16 },
          { name: 'db1', ipv4: '198.18.3.21', prefix4: 16, listen: PORTS },
          // Neighbours of every merged CIDR, inside and just outside it.
          {
            name: 'outside',
            ipv4: '198.18.9.9',
            prefix4: 16,
            extraIpv4: ['198.18.3.14', '198.18.5.9', '198.18.5.16', '198.18.7.7', '198.18.7.200', '198.18.6.7'],
          },
        ],
        controller: false,
      });
      files = renderInventory(
        `
  defaults: { interface: eth1 }
  management: [198.18.5.0/29, 198.18.5.8/29]
  trust: fleet
  roles:
    web: { hosts: { web1: 198.18.3.12, web2: 198.18.3.13 } }
    db:
      allow: [{ from: [198.18.7.0/25, 198.18.7.128/25], ports: [tcp/9100] }]
      hosts: { db1: 198.18.3.21 }
  `,
        mode,
      );
      db = files.get('db/iptables.up.rules')!;
      await loadSets(lab, 'db1', files);
      expect(normalize(await load(lab, 'db1', db))).toEqual(normalize(db));
    }, 120_000);

    afterAll(async () => lab?.destroy(), 60_000);

    it('renders the merged CIDRs: one rule each (sets: none), or one set per list and one rule per set', () => {
      if (mode === 'none') {
        expect(db).toContain(
          '-A FWGEN-INPUT -s 198.18.3.12/31 -i eth1 -m comment --comment "fwgen fleet 2 hosts of web" -j ACCEPT',
        );
        expect(db).toContain(
          '-A FWGEN-INPUT -s 198.18.5.0/28 -p tcp -m tcp --dport 22 -m comment --comment "fwgen management ssh" -j ACCEPT',
        );
        expect(db).toContain(
          '-A FWGEN-INPUT -s 198.18.7.0/24 -p tcp -m tcp --dport 9100 -m comment --comment "fwgen db allow#1 from 2 sources of 198.18.7.0/25 198.18.7.128/25" -j ACCEPT',
        );
        return;
      }
      const sets = files.get(SETS_FILE)!;
      expect(sets).toContain(
        'create fwgen-fleet-4 hash:net family inet hashsize 1024 maxelem 65536\nadd fwgen-fleet-4 198.18.3.12/31\nadd fwgen-fleet-4 198.18.3.21\n',
      );
      expect(sets).toContain(
        'create fwgen-mgmt-4 hash:net family inet hashsize 1024 maxelem 65536\nadd fwgen-mgmt-4 198.18.5.0/28\n',
      );
      expect(sets).toContain(
        'create fwgen-db-a1-4 hash:net family inet hashsize 1024 maxelem 65536\nadd fwgen-db-a1-4 198.18.7.0/24\n',
      );
      expect(db).toContain(
        '-A FWGEN-INPUT -i eth1 -m set --match-set fwgen-fleet-4 src -m comment --comment "fwgen fleet 3 hosts of db web" -j ACCEPT',
      );
      expect(db).toContain(
        '-A FWGEN-INPUT -p tcp -m tcp --dport 22 -m set --match-set fwgen-mgmt-4 src -m comment --comment "fwgen management ssh" -j ACCEPT',
      );
      expect(db).not.toContain(' -s 198.18.');
    });

    it('both hosts of a merged fleet CIDR get in; the next address does not', async () => {
      expect(await lab.probe('web1', '198.18.3.21', 8080)).toBe('open');
      expect(await lab.probe('web2', '198.18.3.21', 8080)).toBe('open');
      expect(await lab.probe('outside', '198.18.3.21', 8080, { source: '198.18.3.14' })).toBe('refused');
    });

    it('both halves of merged allow and management networks get in, on their ports only', async () => {
      expect(await lab.probe('outside', '198.18.3.21', 9100, { source: '198.18.7.7' })).toBe('open');
      expect(await lab.probe('outside', '198.18.3.21', 9100, { source: '198.18.7.200' })).toBe('open');
      expect(await lab.probe('outside', '198.18.3.21', 9100, { source: '198.18.6.7' })).toBe('refused');
      expect(await lab.probe('outside', '198.18.3.21', 5432, { source: '198.18.7.7' })).toBe('refused');
      expect(await lab.probe('outside', '198.18.3.21', 22, { source: '198.18.5.9' })).toBe('open');
      expect(await lab.probe('outside', '198.18.3.21', 22, { source: '198.18.5.16' })).toBe('refused');
    });
  });
});
