/**
 * `fwgen ship` against a real fleet: lab hosts in network namespaces, each with its own sshd,
 * /etc and kernel ruleset; fwgen runs in the root namespace as the deployer (the lab controller).
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_INTERNAL, runFwgenHosts, savedLines, type HostsRun } from '../support/run-cli.js';
import { CONTROLLER, createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.3';

const fwgen = (cwd: string, args: string[], env: Record<string, string> = {}, entry?: string): Promise<HostsRun> =>
  runFwgenHosts(cwd, args, env, entry);
type Run = HostsRun;

const outcomes = (r: Run) => Object.fromEntries(r.results.map((x) => [x.host, x.outcome]));
const normalize = savedLines;

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('fwgen ship against a fleet of real sshd hosts', () => {
  let lab: Lab;
  let project: string;
  let badKnownHosts: string;

  const inventory = (o: { dbPorts?: string; management?: string; trust?: string; extraRoles?: string } = {}) => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${o.management ?? `${NET}.240/28`}]
trust: ${o.trust ?? 'fleet'}
roles:
  web:
    public: true
    hosts: { web1: ${NET}.11, web2: ${NET}.12 }
  db:
    ${o.dbPorts ? `ports: [${o.dbPorts}]` : ''}
    allow: [{ from: [web], ports: [tcp/5432] }]
    hosts: { db1: ${NET}.21 }
${o.extraRoles ?? ''}`;

  const writeInventory = (text: string) => writeFileSync(join(project, 'inventory/inventory.yaml'), text);
  const render = async () => expect((await fwgen(project, ['render'])).code).toBe(0);
  const ship = (...args: string[]) =>
    fwgen(project, ['ship', '--json', '--timeout', '4', '--connect-timeout', '3', ...args]);
  const unsafeShip = (...args: string[]) =>
    fwgen(
      project,
      ['ship', '--json', '--connect-timeout', '3', ...args],
      { FWGEN_INTERNAL: JSON.stringify({ skipLockoutCheck: true }) },
      CLI_INTERNAL,
    );
  const live = (host: string) => lab.execOk(host, ['iptables-save', '-t', 'filter']);
  const rulesFile = (host: string) => lab.execOk(host, ['cat', '/etc/iptables.up.rules']);
  const backups = async (host: string) =>
    (await lab.execOk(host, ['sh', '-c', 'ls -1 /etc/ | grep "^iptables.up.rules.bak" || true']))
      .split('\n')
      .filter(Boolean);

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fws',
      hosts: [
        { name: 'web1', ipv4: `${NET}.11`, sshd: true, listen: [80, 443, 5432] },
        { name: 'web2', ipv4: `${NET}.12`, sshd: true, listen: [80, 443, 5432] },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true, listen: [80, 5432, 8080] },
        { name: 'extra', ipv4: `${NET}.31`, sshd: true },
        { name: 'outside', ipv4: `${NET}.99` },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-ship-'));
    mkdirSync(join(project, 'inventory'));
    writeInventory(inventory());
    await render();
    badKnownHosts = join(project, 'bad_known_hosts');
    writeFileSync(badKnownHosts, `${NET}.31 ${lab.hosts.get('web1')!.hostKeyPub!.split(' ').slice(0, 2).join(' ')}\n`);
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('a first ship applies every role; live rules match the rendered files; probes behave', async () => {
    const r = await ship('--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied', web1: 'applied', web2: 'applied' });
    for (const [host, role] of [
      ['web1', 'web'],
      ['web2', 'web'],
      ['db1', 'db'],
    ]) {
      const rendered = readFileSync(join(project, 'rendered', role, 'iptables.up.rules'), 'utf8');
      expect(normalize(await live(host))).toEqual(normalize(rendered));
      expect(await rulesFile(host)).toBe(rendered);
    }
    expect(await lab.probe('outside', `${NET}.11`, 80)).toBe('open');
    expect(await lab.probe('outside', `${NET}.21`, 80)).toBe('refused');
    expect(await lab.probe('outside', `${NET}.21`, 5432)).toBe('refused');
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
    expect(r.json).toMatchObject({ action: 'ship', succeeded: true, totals: { hosts: 3, applied: 3 } });
    // Persistence by default: the first ship made the rules load at boot, and said so once.
    for (const row of r.results) expect(row.boot).toMatchObject({ status: 'installed', ok: true });
    const state = JSON.parse(await lab.execOk('db1', ['cat', '/etc/iptables.up.rules.fwgen-state.json']));
    expect(state).toMatchObject({ role: 'db', host: 'db1' });
  });

  it('on a host that never had rules, a lockout is rolled back to an open host, not to nothing', async () => {
    // `extra` has no tables at all yet: its live backup is empty, so the switch must restore accept-all.
    writeInventory(
      inventory({
        management: '192.0.2.0/24',
        trust: 'none',
        extraRoles: `  fresh:\n    hosts: { extra: ${NET}.31 }\n`,
      }),
    );
    await render();
    expect(await lab.execOk('extra', ['iptables-save'])).toBe('');
    const r = await unsafeShip('--host', 'extra', '--timeout', '3');
    expect(outcomes(r)).toEqual({ extra: 'rolled-back' });
    expect(await lab.probe(CONTROLLER, `${NET}.31`, 22)).toBe('open');
    expect(await lab.execOk('extra', ['iptables-save', '-t', 'filter'])).not.toMatch(/REJECT|DROP/);
    writeInventory(inventory());
    await render();
  }, 60_000);

  it('a second ship with no change reports every host unchanged; without --json the summary is on stdout', async () => {
    const r = await ship('--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'unchanged', web1: 'unchanged', web2: 'unchanged' });
    // The boot hook is in place: no boot step, nothing said about boot again.
    expect(r.results.map((x) => x.boot)).toEqual([null, null, null]);
    const text = await fwgen(project, ['ship', '--role', 'all', '--connect-timeout', '3']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^HOST +ROLE +OUTCOME +TIME +BOOT +REASON$/m);
    expect(text.stdout).toContain('3 host(s): 0 applied, 3 unchanged, 0 rolled-back, 0 failed');
    expect(text.stderr).toMatch(/^shipping 3 host\(s\), 10 at a time \(run \S+\)$/m);
    expect(text.stderr).not.toContain('HOST');
  });

  it('drift in the live rules is not "unchanged": the host is re-applied', async () => {
    await lab.execOk('web2', ['iptables', '-I', 'INPUT', '-p', 'tcp', '--dport', '9999', '-j', 'ACCEPT']);
    const r = await ship('--role', 'web');
    expect(outcomes(r)).toEqual({ web1: 'unchanged', web2: 'applied' });
    expect(await live('web2')).not.toContain('9999');
  });

  it('--dry-run shows the diff and changes nothing', async () => {
    writeInventory(inventory({ dbPorts: 'tcp/8080' }));
    await render();
    const before = await rulesFile('db1');
    const r = await ship('--role', 'db', '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'would-apply' });
    expect(r.results[0].diff).toContain('+-A FWGEN-INPUT -p tcp -m tcp --dport 8080');
    // Without --json: the role's change once, with the hosts it applies to.
    const text = await fwgen(project, ['ship', '--role', 'db', '--dry-run', '--connect-timeout', '3']);
    expect(text.stdout).toContain('role db:\n  would apply to 1 host(s): db1 (rules file differs)\n');
    expect(text.stdout).toContain('+-A FWGEN-INPUT -p tcp -m tcp --dport 8080');
    expect(await rulesFile('db1')).toBe(before);
  });

  it('a changed inventory ships and leaves a timestamped backup of the previous file', async () => {
    const before = await rulesFile('db1');
    const backupsBefore = await backups('db1');
    expect(await lab.probe('outside', `${NET}.21`, 8080)).toBe('refused');
    const r = await ship('--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied', web1: 'unchanged', web2: 'unchanged' });
    expect(await lab.probe('outside', `${NET}.21`, 8080)).toBe('open');
    const added = (await backups('db1')).filter((b) => !backupsBefore.includes(b));
    const stamp = r.results[0].backup!;
    expect(stamp).toMatch(/^\d{8}T\d{6}Z$/);
    expect(added.sort()).toEqual([
      `iptables.up.rules.bak.${stamp}`,
      `iptables.up.rules.bak.${stamp}.live`,
      `iptables.up.rules.bak.${stamp}.undo4`,
    ]);
    expect(await lab.execOk('db1', ['cat', `/etc/iptables.up.rules.bak.${stamp}`])).toBe(before);
  });

  it('backups lists them, and rollback restores the previous ruleset (with confirmation)', async () => {
    const listed = await fwgen(project, ['backups', '--host', 'db1', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = (JSON.parse(listed.stdout) as { backups: { host: string; ts: string; size: number | null }[] })
      .backups;
    expect(rows.length).toBeGreaterThanOrEqual(2);
    expect(typeof rows[0].size).toBe('number');
    const r = await fwgen(project, ['rollback', '--host', 'db1', '--json', '--timeout', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied' });
    // It names the backup it restored, as a field and in words.
    expect(r.results[0].restored).toBe(rows[0].ts);
    expect(r.results[0].reason).toContain(`restored backup ${rows[0].ts}`);
    expect(r.stderr).toMatch(/^rolling back 1 host\(s\)/m);
    expect(await lab.probe('outside', `${NET}.21`, 8080)).toBe('refused');
    expect(await rulesFile('db1')).not.toContain('--dport 8080');
    // Ship it forward again, so later tests start from the rendered state.
    expect(outcomes(await ship('--role', 'db'))).toEqual({ db1: 'applied' });
  });

  it('refuses (exit 2) rules whose template drops the SSH replies in OUTPUT, naming the rule', async () => {
    writeInventory(inventory());
    mkdirSync(join(project, 'templates/roles'), { recursive: true });
    const drop = '-A FWGEN-OUTPUT -p tcp -m tcp --sport 22 -j DROP';
    const template = `{% extends "base.rules.njk" %}{% block extra %}${drop}\n{% endblock %}`;
    writeFileSync(join(project, 'templates/roles/db.njk'), template);
    await render();
    const before = await rulesFile('db1');
    const r = await ship('--role', 'db');
    expect(r.code, r.stderr).toBe(2);
    const refusal = `db1: the new rules would not admit SSH from ${NET}.254 to port 22`;
    expect(r.stderr).toContain(`${refusal} (decided by table filter, chain OUTPUT, replies: ${drop})`);
    expect(await rulesFile('db1')).toBe(before);
    rmSync(join(project, 'templates'), { recursive: true });
    await render();
  });

  it('refuses (exit 2) to ship rules that would not admit this machine, touching nothing', async () => {
    writeInventory(inventory({ dbPorts: 'tcp/8080', management: '192.0.2.0/24', trust: 'none' }));
    await render();
    const before = await rulesFile('db1');
    const r = await ship('--role', 'db');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /refusing to ship: it would lock this machine out\ndb1: the new rules would not admit SSH from 198\.18\.3\.254 to port 22/,
    );
    expect(await rulesFile('db1')).toBe(before);
  });

  it('a ruleset that rejects the deployer is rolled back by the host itself within the timeout, and reported', async () => {
    const beforeLive = await live('db1');
    const beforeFile = await rulesFile('db1');
    const started = Date.now();
    // The lockout check is bypassed (test-only hook) to get such rules onto the host at all.
    const r = await unsafeShip('--role', 'db', '--timeout', '4');
    expect(r.code).toBe(1);
    expect(outcomes(r)).toEqual({ db1: 'rolled-back' });
    expect(r.results[0].reason).toMatch(
      /new SSH connection after applying failed.*restored its previous rules after 4s/,
    );
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(normalize(await live('db1'))).toEqual(normalize(beforeLive));
    expect(await rulesFile('db1')).toBe(beforeFile);
    expect(
      await lab.execOk('db1', ['sh', '-c', 'ls -d /etc/iptables.up.rules.fwgen-lock 2>/dev/null || echo unlocked']),
    ).toBe('unlocked\n');
    expect(await lab.execOk('db1', ['cat', '/etc/iptables.up.rules.fwgen-rollbacks'])).toMatch(
      /rolled back ship .*: not confirmed within 4s/,
    );
  }, 60_000);

  it('concurrent ships of the same host do not interleave: one holds the lock, the others are refused', async () => {
    // A larger ruleset keeps the lock held long enough for the runs to overlap.
    const cidrs = Array.from({ length: 250 }, (_, i) => `192.0.2.${i + 1}/32`).join(', ');
    writeInventory(
      inventory({ extraRoles: '' }).replace(
        'allow: [{ from: [web], ports: [tcp/5432] }]',
        `allow: [{ from: [web], ports: [tcp/5432] }, { from: [${cidrs}], ports: [tcp/9100, tcp/9101, tcp/9102] }]`,
      ),
    );
    await render();
    const backupsBefore = (await backups('db1')).length;
    const runs = await Promise.all([1, 2, 3].map(() => ship('--role', 'db', '--force')));
    const results = runs.map((r) => r.results[0]);
    const applied = results.filter((x) => x.outcome === 'applied');
    const refused = results.filter((x) => x.outcome !== 'applied');
    expect(applied.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    // Refused on the lock, or (a run that read the host before another one applied) on the changed rules.
    for (const x of refused)
      expect(x).toMatchObject({
        outcome: 'failed',
        reason: expect.stringMatching(
          /locked by another fwgen run: .* since .*clears by|live IPv4 rules changed since they were read/,
        ),
      });
    expect((await backups('db1')).length).toBe(backupsBefore + 3 * applied.length);
    expect(await rulesFile('db1')).toBe(readFileSync(join(project, 'rendered/db/iptables.up.rules'), 'utf8'));
    expect(
      await lab.execOk('db1', ['sh', '-c', 'ls /etc | grep -c "fwgen-lock\\|fwgen-stage\\|fwgen-armed" || true']),
    ).toBe('0\n');
  }, 60_000);

  it('a ruleset the kernel rejects fails at --test; the host rules and file are untouched', async () => {
    writeInventory(inventory());
    mkdirSync(join(project, 'templates/roles'), { recursive: true });
    writeFileSync(
      join(project, 'templates/roles/db.njk'),
      '{% extends "base.rules.njk" %}{% block extra %}-A FWGEN-INPUT -m nosuchmatch --frob 1 -j ACCEPT\n{% endblock %}',
    );
    await render();
    const beforeLive = await live('db1');
    const beforeFile = await rulesFile('db1');
    const r = await ship('--role', 'db');
    expect(r.code).toBe(1);
    expect(outcomes(r)).toEqual({ db1: 'failed' });
    expect(r.results[0].reason).toMatch(/iptables-restore --test rejected the new rules/);
    expect(normalize(await live('db1'))).toEqual(normalize(beforeLive));
    expect(await rulesFile('db1')).toBe(beforeFile);
    rmSync(join(project, 'templates'), { recursive: true });
    await render();
  });

  it('an unreachable host, a wrong host key and a refused sudo each fail that host alone, clearly', async () => {
    // extra: sudo as a user without NOPASSWD; its known_hosts is right.
    await lab.execOk('extra', [
      'sh',
      '-c',
      `useradd -M -d /root/deploy -s /bin/sh deploy && usermod -p '*' deploy && mkdir -p /root/deploy/.ssh && cp /root/.ssh/authorized_keys /root/deploy/.ssh/ && chown -R deploy /root/deploy && chmod 755 /root`,
    ]);
    writeInventory(
      inventory({
        extraRoles: `  batch:
    hosts:
      extra: { address: ${NET}.31, ssh: { user: deploy, sudo: true } }
  cache:
    hosts:
      cache1: { address: ${NET}.32, ssh: { host: ${NET}.31, known_hosts: ${badKnownHosts} } }
`,
      }),
    );
    await render();
    await lab.stopSshd('web2');
    try {
      const r = await ship('--role', 'all', '--force');
      expect(r.code).toBe(1);
      const by = Object.fromEntries(r.results.map((x) => [x.host, x]));
      expect(by.web2.outcome).toBe('failed');
      expect(by.web2.reason).toMatch(/cannot connect to root@198\.18\.3\.12/);
      expect(by.cache1.outcome).toBe('failed');
      expect(by.cache1.reason).toMatch(/host key for 198\.18\.3\.31 does not match/);
      expect(by.extra.outcome).toBe('failed');
      expect(by.extra.reason).toMatch(/sudo -n refused: .*password is required/);
      expect(by.web1.outcome).toBe('applied');
      expect(by.db1.outcome).toBe('applied');
    } finally {
      await lab.startSshd('web2');
    }
  }, 60_000);

  it('the first ship installed a boot hook that restores the rules file; --persist is still accepted', async () => {
    const hook = await lab.execOk('web1', ['cat', '/etc/network/if-pre-up.d/fwgen-iptables']);
    expect(hook).toMatch(/iptables-restore.*\/etc\/iptables\.up\.rules/);
    const again = await ship('--host', 'web1', '--persist');
    expect(again.code, again.stderr).toBe(0);
    expect(again.results[0]).toMatchObject({ outcome: 'unchanged', boot: null });
    // The hook gone (removed by hand): the next ship puts it back, whatever the rules.
    await lab.execOk('web1', ['rm', '/etc/network/if-pre-up.d/fwgen-iptables']);
    const back = await ship('--host', 'web1');
    expect(back.results[0]).toMatchObject({ outcome: 'unchanged', boot: { status: 'installed', ok: true } });
  });

  it('ships under passwordless sudo', async () => {
    await lab.execOk('extra', [
      'sh',
      '-c',
      'echo "deploy ALL=(root) NOPASSWD: ALL" > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy',
    ]);
    const r = await ship('--host', 'extra');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ extra: 'applied' });
    expect(await rulesFile('extra')).toBe(readFileSync(join(project, 'rendered/batch/iptables.up.rules'), 'utf8'));
  });
});
