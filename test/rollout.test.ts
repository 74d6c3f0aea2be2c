import { describe, expect, it } from 'vitest';
import type { Host } from '../src/inventory/model.js';
import { completedEntries, formatAudit, type AuditEntry } from '../src/audit/audit-log.js';
import { parseWaves, planStages } from '../src/ship/rollout.js';
import type { HostJob } from '../src/ship/ship-host.js';

const job = (name: string, role: string): HostJob => ({
  kind: 'ship',
  host: { name, role, addresses: [], ssh: { host: name, user: 'root', port: 22, knownHosts: '', sudo: false } } as Host,
  paths: { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' },
  v4: Buffer.alloc(0),
  preserve: () => false,
});
const names = (jobs: readonly HostJob[]) => jobs.map((j) => j.host.name);

describe('staged rollout planning', () => {
  const fleet = [
    ...['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((n) => job(n, 'web')),
    ...['d1', 'd2'].map((n) => job(n, 'db')),
    job('c1', 'cache'),
  ];

  it('puts canaries on different roles, then cuts cumulative waves of the whole fleet', () => {
    const stages = planStages(fleet, 3, [10, 50, 100]);
    expect(stages.map((s) => s.name)).toEqual(['canary', 'wave 2 (50%)', 'wave 3 (100%)']);
    expect(names(stages[0].jobs)).toEqual(['c1', 'd1', 'w1']);
    expect(names(stages[1].jobs)).toEqual(['d2', 'w2']);
    expect(names(stages[2].jobs)).toEqual(['w3', 'w4', 'w5', 'w6']);
    expect(stages.flatMap((s) => names(s.jobs)).sort()).toEqual(names(fleet).sort());
  });

  it('without canaries the first wave starts the rollout', () => {
    const stages = planStages(fleet, 0, [34, 100]);
    expect(stages.map((s) => [s.name, s.jobs.length])).toEqual([
      ['wave 1 (34%)', 4],
      ['wave 2 (100%)', 5],
    ]);
  });

  it('rejects waves that do not grow or do not end at 100%', () => {
    expect(parseWaves('10%,50%,100%')).toEqual([10, 50, 100]);
    expect(() => parseWaves('50%,10%,100%')).toThrow(/must grow/);
    expect(() => parseWaves('10%,50%')).toThrow(/last wave must be 100%/);
    expect(() => parseWaves('10,100%')).toThrow(/not a share/);
  });
});

describe('audit log format', () => {
  it('summarizes an entry and names what went wrong', () => {
    const e: AuditEntry = {
      time: '2026-11-21T18:00:00.000Z',
      action: 'ship',
      run: 'r1',
      who: 'ops@deploy',
      inventory: 'inventory/inventory.yaml',
      commit: '0123456789abcdef',
      hosts: [
        { host: 'a', role: 'web', outcome: 'applied', reason: '', backup: 'T1' },
        { host: 'b', role: 'web', outcome: 'failed', reason: 'locked' },
      ],
      stages: ['canary', 'wave 1 (100%)'],
      halted: { stage: 'canary', failures: 1, untouched: ['c'] },
    };
    const text = formatAudit(e);
    expect(text).toContain(
      'ship     run r1 by ops@deploy, inventory inventory/inventory.yaml @ 0123456789ab: 1 applied, 0 unchanged, 0 rolled-back, 1 failed',
    );
    expect(text).toContain('stages: canary → wave 1 (100%)');
    expect(text).toContain('HALTED at canary after 1 failure(s); 1 host(s) untouched');
    expect(text).toContain('b (web) failed: locked');
  });
});

describe('audit log of a run whose controller was killed', () => {
  const base = { run: 'r1', who: 'ops', inventory: 'inventory/inventory.yaml', commit: null };
  const host = (h: string, outcome: string) => ({
    time: 't',
    action: 'host' as const,
    ...base,
    hosts: [{ host: h, role: 'web', outcome, reason: '', backup: 'B' }],
  });

  it('folds host lines into the closing line when there is one, and shows an interrupted run from its host lines', () => {
    const closed: AuditEntry = {
      time: 't',
      action: 'ship',
      ...base,
      hosts: [{ host: 'a', role: 'web', outcome: 'applied', reason: '' }],
    };
    expect(completedEntries([host('a', 'applied'), closed])).toEqual([closed]);
    const killed = completedEntries([
      closed,
      { ...host('b', 'applied'), run: 'r2' },
      { ...host('c', 'failed'), run: 'r2' },
    ]);
    expect(killed).toHaveLength(2);
    expect(killed[1]).toMatchObject({
      action: 'ship',
      run: 'r2',
      interrupted: true,
      hosts: [{ host: 'b' }, { host: 'c' }],
    });
    expect(formatAudit(killed[1])).toContain('INTERRUPTED');
  });
});
