/**
 * `fwgen status` against a real fleet: lab hosts in network namespaces, each with its own sshd,
 * /etc and kernel ruleset. Drift and foreign chains are made by hand on the hosts, as an operator,
 * fail2ban or Docker would.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFwgen } from '../support/run-cli.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.70';
const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

interface Status {
  host: string;
  role: string;
  state: string;
  shipped?: { fwgen: string; commit: string | null; shippedAt: string; shippedBy: string };
  backups: number;
  foreign: string[];
  foreignRules: string[];
  drift: string[];
  reason?: string;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const fwgen = (cwd: string, args: string[]): Promise<Run> => runFwgen(cwd, args);

const states = (rows: Status[]) => Object.fromEntries(rows.map((r) => [r.host, r.state]));

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('fwgen status against a fleet of real sshd hosts', () => {
  let lab: Lab;
  let project: string;
  let commit: string;

  const inventory = (dbPorts = '') => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
roles:
  web:
    public: true
    hosts: { web1: ${NET}.11, web2: ${NET}.12 }
  db:
    ${dbPorts ? `ports: [${dbPorts}]` : ''}
    allow: [{ from: [web], ports: [tcp/5432] }]
    hosts: { db1: ${NET}.21 }
`;
  const writeInventory = (text: string) => writeFileSync(join(project, 'inventory/inventory.yaml'), text);
  const render = async () => expect((await fwgen(project, ['render'])).code).toBe(0);
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', project, '-c', 'user.name=fwgen test', '-c', 'user.email=test@example.org', ...args], {
      encoding: 'utf8',
    }).trim();
  const status = (...args: string[]) => fwgen(project, ['status', '--connect-timeout', '3', ...args]);
  const statusJson = async (...args: string[]): Promise<Run & { rows: Status[] }> => {
    const r = await status('--json', ...args);
    return { ...r, rows: JSON.parse(r.stdout) as Status[] };
  };

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwst',
      hosts: [
        { name: 'web1', ipv4: `${NET}.11`, sshd: true },
        { name: 'web2', ipv4: `${NET}.12`, sshd: true },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-status-'));
    mkdirSync(join(project, 'inventory'));
    writeInventory(inventory());
    await render();
    git('init', '-q');
    git('add', '-A');
    git('commit', '-q', '-m', 'inventory');
    commit = git('rev-parse', 'HEAD');
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('before any ship, every host is never-shipped (exit 1)', async () => {
    const r = await statusJson();
    expect(r.code, r.stderr).toBe(1);
    expect(states(r.rows)).toEqual({ db1: 'never-shipped', web1: 'never-shipped', web2: 'never-shipped' });
    for (const row of r.rows)
      expect(row).toMatchObject({
        backups: 0,
        foreign: [],
        reason: 'no fwgen state on the host, and its live rules differ from rendered/',
      });
    expect(r.rows[0].shipped).toBeUndefined();
    // With --json, stdout holds the JSON alone; the table is the text output's.
    expect(r.stderr).not.toMatch(/never-shipped\s+-/);
    expect(r.stderr).toMatch(/fwgen: 3 of 3 host\(s\) not in sync/);
    const text = await status();
    expect(text.stdout).toMatch(/^HOST\s+ROLE\s+STATE\s+FWGEN\s+COMMIT\s+SHIPPED\s+BACKUPS\s+NOTES$/m);
    expect(text.stdout).toMatch(/^web1\s+web\s+never-shipped\s+-\s+-\s+-\s+0\s+\(no fwgen state/m);
  });

  it('after `fwgen ship --role all`, every host is in sync (exit 0), with version, commit, time and backups', async () => {
    const shipped = await fwgen(project, ['ship', '--role', 'all', '--timeout', '4', '--connect-timeout', '3']);
    expect(shipped.code, shipped.stderr).toBe(0);
    const r = await status();
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(4); // a header row, then one line per host
    for (const [host, role] of [
      ['db1', 'db'],
      ['web1', 'web'],
      ['web2', 'web'],
    ]) {
      const line = lines.find((l) => l.startsWith(`${host} `));
      expect(line).toMatch(
        new RegExp(
          `^${host}\\s+${role}\\s+in-sync\\s+${VERSION.replace(/\./g, '\\.')}\\s+${commit.slice(0, 7)}\\s+\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\s+1$`,
        ),
      );
    }
    const j = await statusJson();
    expect(j.code).toBe(0);
    expect(j.rows.find((x) => x.host === 'db1')).toMatchObject({
      state: 'in-sync',
      backups: 1,
      drift: [],
      foreign: [],
      shipped: { fwgen: VERSION, commit, shippedBy: expect.stringContaining('@') },
    });
  });

  it('a rule inserted by hand makes that host drifted (exit 1); --diff shows the rule', async () => {
    await lab.execOk('web2', ['iptables', '-I', 'INPUT', '-s', '192.0.2.7', '-j', 'ACCEPT']);
    try {
      const r = await statusJson();
      expect(r.code).toBe(1);
      expect(states(r.rows)).toEqual({ db1: 'in-sync', web1: 'in-sync', web2: 'drifted' });
      const web2 = r.rows.find((x) => x.host === 'web2')!;
      expect(web2.reason).toBe('the live rules were changed on the host since the last ship');
      expect(web2.drift).toContain('+-A INPUT -s 192.0.2.7/32 -j ACCEPT');
      expect(r.stderr).toMatch(/not in sync: web2 drifted/);

      const plain = await status();
      expect(plain.stdout).not.toContain('192.0.2.7');
      const diff = await status('--diff');
      expect(diff.code).toBe(1);
      expect(diff.stdout).toMatch(
        /^web2\s+web\s+drifted\s.*\n(    .*\n)*    \+-A INPUT -s 192\.0\.2\.7\/32 -j ACCEPT\n/m,
      );
      expect(diff.stdout).toContain('    --- rendered/web/iptables.up.rules\n    +++ web2 live iptables-save\n');
    } finally {
      await lab.execOk('web2', ['iptables', '-D', 'INPUT', '-s', '192.0.2.7', '-j', 'ACCEPT']);
    }
    expect((await status()).code).toBe(0);
  });

  it('a fail2ban chain and its jump are foreign, not drift: still in sync, the chain listed', async () => {
    await lab.execOk('db1', [
      'sh',
      '-c',
      'iptables -N f2b-sshd && iptables -A f2b-sshd -j RETURN && iptables -I INPUT -p tcp --dport 22 -j f2b-sshd',
    ]);
    const r = await status('--diff');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^db1\s+db\s+in-sync\s.*\s1\s+foreign: f2b-sshd$/m);
    expect(r.stdout).toContain('    foreign rule: -A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n');
    const j = await statusJson('--host', 'db1');
    expect(j.rows).toHaveLength(1);
    expect(j.rows[0]).toMatchObject({
      state: 'in-sync',
      foreign: ['f2b-sshd'],
      foreignRules: ['-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd'],
      drift: [],
    });
  });

  it('--role selects the hosts of a role', async () => {
    const r = await statusJson('--role', 'web');
    expect(r.code).toBe(0);
    expect(states(r.rows)).toEqual({ web1: 'in-sync', web2: 'in-sync' });
  });

  it('a stale rendered/ is warned about but compared as it is; once re-rendered, the unshipped change shows as drift', async () => {
    writeInventory(inventory('tcp/8080'));
    try {
      const stale = await status('--role', 'db');
      expect(stale.code, stale.stderr).toBe(0);
      expect(stale.stderr).toMatch(
        /warning: rendered\/ does not match the inventory \(updated: db\/iptables\.up\.rules\); comparing the hosts with what rendered\/ holds/,
      );
      await render();
      const pending = await statusJson('--role', 'db', '--diff');
      expect(pending.code).toBe(1);
      expect(pending.rows[0]).toMatchObject({
        host: 'db1',
        state: 'drifted',
        reason: expect.stringMatching(/^not shipped yet/),
      });
      expect(pending.rows[0].drift).toContainEqual(
        expect.stringMatching(/^--A FWGEN-INPUT -p tcp -m tcp --dport 8080 /),
      );
    } finally {
      writeInventory(inventory());
      await render();
    }
  });

  it('a host whose sshd is down is unreachable (exit 1); the others are still checked', async () => {
    await lab.stopSshd('web1');
    try {
      const r = await statusJson();
      expect(r.code).toBe(1);
      expect(states(r.rows)).toEqual({ db1: 'in-sync', web1: 'unreachable', web2: 'in-sync' });
      expect(r.rows.find((x) => x.host === 'web1')!.reason).toMatch(/cannot connect to root@198\.18\.70\.11/);
      // Unknown is null in JSON, ? in the table.
      expect(r.rows.find((x) => x.host === 'web1')).toMatchObject({ backups: null, armed: null });
      const text = await status();
      expect(text.stdout).toMatch(/^web1\s+web\s+unreachable\s+-\s+-\s+-\s+\?\s+\(cannot connect/m);
    } finally {
      await lab.startSshd('web1');
    }
    expect((await status()).code).toBe(0);
  });
});
