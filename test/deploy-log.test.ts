// What the deploy log tells after the fact: what each host last received (ship's "left behind" hint and
// `--role changed`), which hosts left the inventory with fwgen still on them (status's orphans), and how
// the log reads (`fwgen log`).
import { describe, expect, it } from 'vitest';
import { formatAudit, shortCommit, type AuditEntry, type AuditHost } from '../src/audit/audit-log.js';
import type { Host } from '../src/inventory/model.js';
import { lastReceived, rolesBehind, shipCommandFor } from '../src/ship/left-behind.js';
import { shipDigest } from '../src/ship/plan.js';
import { forgetEntry } from '../src/ship/remove-plan.js';
import { orphanedHosts } from '../src/status/orphans.js';

const entry = (action: AuditEntry['action'], hosts: Partial<AuditHost>[], run = 'r'): AuditEntry => ({
  time: '2026-11-21T10:00:00.000Z',
  action,
  run,
  who: 'me@here',
  inventory: 'inventory/inventory.yaml',
  commit: '0123456789abcdef0123456789abcdef01234567+dirty',
  hosts: hosts.map((h) => ({ host: 'x', role: 'web', outcome: 'applied', reason: '', ...h })),
});

const host = (name: string, role: string): Host => ({
  name,
  role,
  addresses: [],
  ssh: { host: name, user: 'root', port: 22, knownHosts: '/dev/null', sudo: false },
});

describe('what each host last received', () => {
  it('is the digest of its last ship that put the rules in place; a rollback or remove makes it unknown', () => {
    const log = [
      entry('ship', [
        { host: 'web1', rules: 'd1' },
        { host: 'web2', rules: 'd1' },
        { host: 'db1', rules: 'e1' },
      ]),
      entry('ship', [
        { host: 'web1', rules: 'd2' },
        { host: 'web2', outcome: 'rolled-back' },
        { host: 'db1', outcome: 'failed' },
      ]),
      entry('rollback', [{ host: 'db2', restored: '20261121T000000Z' }]),
      entry('remove', [{ host: 'web3' }]),
    ];
    expect(Object.fromEntries(lastReceived(log))).toEqual({ web1: 'd2', web2: 'd1', db1: 'e1', db2: null, web3: null });
    // A run whose controller was killed still counts, from its host lines.
    expect(lastReceived([entry('host', [{ host: 'web9', rules: 'd9' }], 'killed')]).get('web9')).toBe('d9');
  });

  it('roles behind: hosts whose last rules differ from rendered/ now, and hosts the log never saw', () => {
    const hosts = [host('web1', 'web'), host('web2', 'web'), host('db1', 'db'), host('cache1', 'cache')];
    const digests = new Map([
      ['web', 'd2'],
      ['db', 'e2'],
      ['cache', 'c1'],
    ]);
    const last = new Map<string, string | null>([
      ['web1', 'd2'],
      ['web2', 'd1'],
      ['db1', 'e1'],
    ]);
    const behind = rolesBehind(hosts, digests, last);
    expect(behind).toEqual([
      { role: 'web', hosts: ['web2'], unknown: [], whole: false },
      { role: 'db', hosts: ['db1'], unknown: [], whole: true },
      { role: 'cache', hosts: [], unknown: ['cache1'], whole: true },
    ]);
    // Part of a role behind: the hosts by name; whole roles: the roles.
    expect(shipCommandFor(behind)).toBe('fwgen ship --host web2 db1');
    expect(shipCommandFor(behind.filter((b) => b.role !== 'web'))).toBe('fwgen ship --role db');
    expect(shipCommandFor([])).toBeUndefined();
    expect(rolesBehind(hosts.slice(0, 1), digests, last)).toEqual([]);
  });

  it('the digest covers every file a host gets, and nothing else', () => {
    const v4 = Buffer.from('*filter\nCOMMIT\n');
    const d = shipDigest(v4, undefined, undefined);
    expect(d).toMatch(/^[0-9a-f]{16}$/);
    expect(shipDigest(Buffer.from('*filter\nCOMMIT\n'), undefined, undefined)).toBe(d);
    expect(shipDigest(v4, v4, undefined)).not.toBe(d);
    expect(shipDigest(v4, undefined, v4)).not.toBe(shipDigest(v4, v4, undefined));
  });
});

describe('orphaned hosts', () => {
  it('are hosts fwgen put rules on that the inventory no longer has, until removed or forgotten', () => {
    const log = [
      entry('ship', [{ host: 'old1' }, { host: 'old2' }, { host: 'web1' }, { host: 'gone', outcome: 'failed' }], 'r1'),
      entry('remove', [{ host: 'old2' }], 'r2'),
      entry('rollback', [{ host: 'old3' }], 'r3'),
    ];
    const orphans = orphanedHosts(log, new Set(['web1']));
    expect(orphans.map((o) => [o.host, o.state, o.lastShip?.run])).toEqual([
      ['old1', 'orphaned', 'r1'],
      ['old3', 'orphaned', 'r3'],
    ]);
    expect(orphans[0]).toMatchObject({ backups: null, armed: null, role: 'web' });
    expect(orphans[0].reason).toContain('Removing fwgen from a host');
    const forgotten = forgetEntry(['old1'], { run: 'r4', who: 'me', inventory: 'i', commit: null }, 't');
    expect(forgotten).toMatchObject({ action: 'remove', hosts: [{ host: 'old1', outcome: 'forgotten' }] });
    expect(orphanedHosts([...log, forgotten], new Set(['web1'])).map((o) => o.host)).toEqual(['old3']);
    // Back in the inventory: not an orphan.
    expect(orphanedHosts(log, new Set(['web1', 'old1', 'old3']))).toEqual([]);
  });
});

describe('fwgen log lines', () => {
  it('keep the +dirty mark of the commit', () => {
    expect(shortCommit('0123456789abcdef0123456789abcdef01234567+dirty')).toBe('0123456789ab+dirty');
    expect(shortCommit(null)).toBe('unknown');
    expect(formatAudit(entry('ship', [{ host: 'web1' }]))).toContain('@ 0123456789ab+dirty: 1 applied');
  });

  it('show a host key --accept-new recorded, and a host whose rules do not load at boot', () => {
    const key: AuditEntry = {
      ...entry('host-key', []),
      hostKey: {
        name: '[198.18.0.1]:2222',
        keyType: 'ssh-ed25519',
        fingerprint: 'SHA256:abc',
        knownHosts: '/root/.ssh/known_hosts',
      },
    };
    expect(formatAudit(key)).toBe(
      '2026-11-21T10:00:00.000Z  host-key run r by me@here: accepted ssh-ed25519 SHA256:abc for [198.18.0.1]:2222 into /root/.ssh/known_hosts',
    );
    expect(formatAudit(entry('ship', [{ host: 'web1', boot: 'unsupported' }]))).toContain(
      'web1 (web) applied, but its rules do not load at boot (boot: unsupported)',
    );
  });
});
