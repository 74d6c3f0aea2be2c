// The sentences of `fwgen diff`: one inventory edited one way at a time, the report's lines pinned.
// Sources are named after hosts, a whole role by its name, every host as the fleet, anyone; hosts that
// join, leave, move or change address get their own line; port ranges are split where they changed.
import { describe, expect, it } from 'vitest';
import { describeDiff, type DiffReport } from '../src/access/describe.js';
import { diffAccess } from '../src/access/diff.js';
import { formatDiff } from '../src/access/format.js';
import { diffMembership } from '../src/access/membership.js';
import { dedent, renderFleet } from './support/access-fleet.js';

const BASE = dedent(`
  defaults: { interface: eth1 }
  management: [203.0.113.0/28]
  trust: fleet
  roles:
    web:
      public: true
      hosts: { web1: 198.51.100.11, web2: 198.51.100.12, web3: [198.51.100.13, "2001:db8::13"] }
    db:
      allow:
        - { from: [web], ports: [tcp/5432] }
      hosts: { db1: 198.51.100.21, db2: 198.51.100.22 }
    worker:
      ports: [tcp/8000-8100]
      hosts: { w1: 198.51.100.31, w2: 198.51.100.32, w3: 198.51.100.33 }
`);

function report(head: string, templates: Record<string, string> = {}, base = BASE): DiffReport {
  if (Object.keys(templates).length === 0) expect(head, 'the edit changed the inventory').not.toBe(base);
  const a = renderFleet(base);
  const b = renderFleet(head, templates);
  const changed = [...new Set([...a.files.keys(), ...b.files.keys()])].filter((p) => a.files.get(p) !== b.files.get(p));
  return describeDiff({
    base: a.fleet,
    head: b.fleet,
    baseLabel: 'main',
    headLabel: 'HEAD',
    diff: diffAccess(a.fleet, b.fleet),
    membership: diffMembership(a.fleet.inventory, b.fleet.inventory),
    renderedFilesChanged: changed.length,
  });
}

const edit = (from: string, to: string) => {
  expect(BASE).toContain(from);
  return BASE.replace(from, to);
};

describe('policy changes', () => {
  it('a role collapses to its name (all its hosts), with the rule that grants it', () => {
    const r = report(
      edit(
        '{ from: [web], ports: [tcp/5432] }',
        '{ from: [web], ports: [tcp/5432] }\n      - { from: [worker], ports: [tcp/6379] }',
      ),
    );
    // On eth1 fleet trust admitted worker already: what is new is the other interfaces.
    expect(r.lines).toEqual([
      '+ worker (3 hosts) may reach db (2 hosts) on tcp/6379 via interfaces other than eth1 (db allow#2)',
    ]);
    expect(r.changes).toEqual([
      {
        change: 'added',
        from: ['worker'],
        to: ['db'],
        port: 'tcp/6379',
        in: 'other',
        rule: 'db allow#2',
        witness: { from: '198.51.100.31', to: 'db1', toAddress: '198.51.100.21', port: 'tcp/6379', in: 'eth0' },
      },
    ]);
  });

  it('a network that holds no host stays a CIDR', () => {
    const r = report(edit('{ from: [web], ports: [tcp/5432] }', '{ from: [web, 192.0.2.0/24], ports: [tcp/5432] }'));
    expect(r.lines).toEqual(['+ 192.0.2.0/24 may reach db (2 hosts) on tcp/5432 (db allow#1)']);
  });

  it('a port range split where it changed', () => {
    const r = report(edit('tcp/8000-8100', 'tcp/8000-8049'));
    expect(r.lines).toEqual([
      '- anyone except every inventory host (8) may no longer reach worker (3 hosts) on tcp/8050-8100 (was worker ports)',
      '- every inventory host (8) may no longer reach worker (3 hosts) on tcp/8050-8100 via interfaces other than eth1 (was worker ports)',
    ]);
  });

  it('what every address may now reach reads as anyone', () => {
    const r = report(edit('  db:\n', '  db:\n    public: true\n'));
    expect(r.lines).toEqual(['+ anyone may reach db (2 hosts) on tcp/80, tcp/443 (db public)']);
    expect(r.changes.map((c) => [c.from, c.port, c.in])).toEqual([
      [['any'], 'tcp/80', 'any'],
      [['any'], 'tcp/443', 'any'],
    ]);
  });

  it('every role: one sentence for a monitoring rule shipped with every role', () => {
    const r = report(edit('trust: fleet', 'trust: fleet\nmonitoring: [{ from: [192.0.2.10], ports: [tcp/9100] }]'));
    expect(r.lines).toEqual(['+ 192.0.2.10 may reach every role on tcp/9100 (monitoring#1)']);
    expect(r.changes[0]!.to).toEqual(['db', 'web', 'worker']);
  });

  it('the fleet: trust none takes every port from every inventory host on the internal interface', () => {
    expect(report(edit('trust: fleet', 'trust: none')).lines).toEqual([
      '- db (2 hosts) and worker (3 hosts) may no longer reach db (2 hosts) on tcp/5432 via eth1 (was fleet trust)',
      '- every inventory host (8) may no longer reach db (2 hosts) on every port except tcp/5432 via eth1 (was fleet trust)',
      '- every inventory host (8) may no longer reach web (3 hosts) on every port except tcp/80, tcp/443 via eth1 (was fleet trust)',
      '- every inventory host (8) may no longer reach worker (3 hosts) on every port except tcp/8000-8100 via eth1 (was fleet trust)',
    ]);
  });

  it('anyone except: what is taken from all but the fleet (which keeps it on eth1)', () => {
    expect(report(edit('public: true', 'public: false')).lines).toEqual([
      '- anyone except every inventory host (8) may no longer reach web (3 hosts) on tcp/80, tcp/443 (was web public)',
      '- every inventory host (8) may no longer reach web (3 hosts) on tcp/80, tcp/443 via interfaces other than eth1 (was web public)',
    ]);
  });

  it('a template rule it cannot read: undetermined, naming the rule and what is not understood', () => {
    const r = report(BASE, {
      'roles/db.njk':
        '{% extends "base.rules.njk" %}{% block extra %}-A FWGEN-INPUT -p tcp -m tcp --dport 9000 -m recent --rcheck --seconds 60 -j ACCEPT\n{% endblock %}',
    });
    const rule =
      'template rule "-A FWGEN-INPUT -p tcp -m tcp --dport 9000 -m ...": not understood: -m recent --rcheck --seconds';
    expect(r.lines).toEqual([
      `? anyone except every inventory host (8) may or may not reach db (2 hosts) on tcp/9000 (${rule})`,
      `? every inventory host (8) may or may not reach db (2 hosts) on tcp/9000 via interfaces other than eth1 (${rule})`,
    ]);
    expect(r.changes[0]).toMatchObject({ change: 'undetermined', port: 'tcp/9000' });
  });

  it('rules of a family no host of the role has change no access', () => {
    const r = report(
      edit(
        '{ from: [web], ports: [tcp/5432] }',
        '{ from: [web], ports: [tcp/5432] }\n      - { from: ["2001:db8:5::/64"], ports: [udp/53] }',
      ),
    );
    expect(r.lines).toEqual([
      '= no access changes: 1 rendered file change, but every connection is admitted or refused as before',
    ]);
    expect(r.changes).toEqual([]);
  });
});

describe('membership changes', () => {
  it('a host joining: it gets its role`s rules, and what fleet trust and allow rules grant it', () => {
    const r = report(edit('w3: 198.51.100.33 }', 'w3: 198.51.100.33, w4: 198.51.100.34 }'));
    expect(r.lines).toEqual([
      "+ w4 joins worker (198.51.100.34): it gets worker's rules; it may reach every role on every port via eth1 (fleet trust)",
    ]);
    expect(r.changes).toEqual([]);
    expect(r.membership).toHaveLength(1);
    expect(r.membership[0]).toMatchObject({
      change: 'joined',
      host: 'w4',
      role: 'worker',
      addresses: ['198.51.100.34'],
    });
    expect(r.membership[0]!.access.every((c) => c.from[0] === 'w4' && c.in === 'eth1')).toBe(true);
    expect([...new Set(r.membership[0]!.access.map((c) => c.to[0]))].sort()).toEqual(['db', 'web', 'worker']);
  });

  it('a host joining a role that an allow rule names gets that too', () => {
    const r = report(edit('web2: 198.51.100.12,', 'web2: 198.51.100.12, web4: 198.51.100.14,'));
    expect(r.lines).toEqual([
      "+ web4 joins web (198.51.100.14): it gets web's rules; it may reach every role on every port via eth1 (fleet trust); it may reach db (2 hosts) on tcp/5432 (db allow#1)",
    ]);
  });

  it('a new role: its hosts share one line', () => {
    const r = report(edit('roles:\n', 'roles:\n  cache: { hosts: { c1: 198.51.100.41, c2: 198.51.100.42 } }\n'));
    expect(r.lines).toEqual([
      "+ c1 and c2 join cache: they get cache's rules; they may reach every role on every port via eth1 (fleet trust)",
    ]);
  });

  it('a host leaving', () => {
    expect(report(edit('w2: 198.51.100.32, ', '')).lines).toEqual([
      '- w2 leaves worker (198.51.100.32): its rules go; it could reach every role on every port via eth1 (by fleet trust)',
    ]);
  });

  it('a host moving between roles: what it gains and loses', () => {
    const moved = edit(', web3: [198.51.100.13, "2001:db8::13"] }', ' }').replace(
      'w3: 198.51.100.33 }',
      'w3: 198.51.100.33, web3: [198.51.100.13, "2001:db8::13"] }',
    );
    expect(report(moved).lines).toEqual([
      "~ web3 moves from web to worker (198.51.100.13, 2001:db8::13): it gets worker's rules instead of web's; it may no longer reach db (2 hosts) on tcp/5432 via interfaces other than eth1 (was db allow#1)",
    ]);
  });

  it('a readdressed host keeps its access: the old address loses what the new one gains', () => {
    const r = report(edit('w3: 198.51.100.33', 'w3: 198.51.100.35'));
    expect(r.lines).toEqual(['~ w3 is readdressed from 198.51.100.33 to 198.51.100.35: its access moves with it']);
    expect(r.membership[0]!.access).toEqual([]);
  });

  it('a renamed host changes no access; the rendered files (comments) change', () => {
    expect(report(edit('w1: 198.51.100.31', 'w9: 198.51.100.31')).lines).toEqual([
      '~ w1 is renamed w9 (same role and addresses)',
      '= no access changes: 3 rendered files change, but every connection is admitted or refused as before',
    ]);
  });
});

describe('formats', () => {
  const r = report(edit('w3: 198.51.100.33 }', 'w3: 198.51.100.33, w4: 198.51.100.34 }'));

  it('text: a summary line, then the sentences', () => {
    expect(formatDiff(r, 'text').split('\n')[0]).toBe(
      'main -> HEAD: 1 membership change, 0 access changes, 3 rendered files changed',
    );
  });

  it('md: a diff block GitHub colours by sign, cut at a line boundary with the fence closed', () => {
    const md = formatDiff(r, 'md');
    expect(md).toContain('```diff\n+ w4 joins worker');
    expect(md.trimEnd().endsWith('```')).toBe(true);
    const many = {
      ...r,
      lines: Array.from({ length: 500 }, (_, i) => `+ 192.0.2.${i % 250} may reach db on tcp/${i}`),
    };
    const cut = formatDiff(many, 'md', 4000);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(4000);
    expect(cut).toMatch(/\.\.\. \d+ more lines cut/);
    expect(cut.trimEnd().endsWith('```')).toBe(true);
    expect(cut.split('\n').filter((l) => l.startsWith('```')).length).toBe(2);
  });

  it('json: changes and membership, without the text lines', () => {
    const json = JSON.parse(formatDiff(r, 'json')) as Record<string, unknown>;
    expect(Object.keys(json).sort()).toEqual(['base', 'changes', 'head', 'membership', 'renderedFilesChanged']);
  });
});
