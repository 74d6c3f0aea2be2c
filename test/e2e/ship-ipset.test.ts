/**
 * `fwgen ship` in ipset mode against real sshd hosts: sets travel with the rules in one transaction,
 * are swapped in whole, backed up, restored by rollback and by the dead-man switch.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Check } from '../../src/doctor/checks.js';
import { parseSets } from '../../src/model/sets.js';
import { CLI_INTERNAL, parseJson, runFwgen, runFwgenHosts, savedLines, type HostsRun } from '../support/run-cli.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.133';

type Run = HostsRun;

const fwgen = (cwd: string, args: string[], env: Record<string, string> = {}, entry?: string): Promise<Run> =>
  runFwgenHosts(cwd, args, env, entry);

const outcomes = (r: Run) => Object.fromEntries(r.results.map((x) => [x.host, x.outcome]));
const normalize = savedLines;
const members = (saved: string) => Object.fromEntries(parseSets(saved).sets.map((s) => [s.name, s.members]));

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ipset, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('fwgen ship with sets: ipset against real sshd hosts', () => {
  let lab: Lab;
  let project: string;

  const inventory = (o: { management?: string; trust?: string; dbFrom?: string } = {}) => `
sets: ipset
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${o.management ?? `${NET}.240/28`}]
trust: ${o.trust ?? 'fleet'}
roles:
  web:
    hosts: { web1: ${NET}.11, web2: ${NET}.12 }
  db:
    allow: [{ from: [${o.dbFrom ?? 'web'}], ports: [tcp/5432] }]
    hosts: { db1: ${NET}.21 }
`;
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
  /** doctor's `boot` check of one host; names resolve from an empty table, so no DNS query leaves this machine. */
  const bootCheck = async (host: string) => {
    const r = await runFwgen(
      project,
      ['doctor', '--json', '--connect-timeout', '3', '--host', host],
      { FWGEN_INTERNAL: JSON.stringify({ dns: {} }) },
      CLI_INTERNAL,
    );
    const found = parseJson(r.stdout, [] as Check[]).filter((c) => c.host === host && c.name === 'boot');
    expect(found, r.stderr).toHaveLength(1);
    return found[0]!;
  };
  const liveSets = (host: string) => lab.execOk(host, ['ipset', 'save']);
  const rendered = (path: string) => readFileSync(join(project, 'rendered', path), 'utf8');

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwip',
      hosts: [
        { name: 'web1', ipv4: `${NET}.11`, sshd: true, listen: [5432] },
        { name: 'web2', ipv4: `${NET}.12`, sshd: true, listen: [5432] },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true, listen: [5432, 8080] },
        { name: 'outside', ipv4: `${NET}.99`, extraIpv4: [`${NET}.50`] },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-ship-ipset-'));
    mkdirSync(join(project, 'inventory'));
    writeInventory(inventory());
    await render();
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('a first ship loads the sets before the rules that match them; live sets and rules match rendered/', async () => {
    const r = await ship('--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied', web1: 'applied', web2: 'applied' });
    const all = members(rendered('sets/ipset.rules'));
    expect(members(await liveSets('db1'))).toEqual({
      'fwgen-db-a1-4': all['fwgen-db-a1-4'],
      'fwgen-fleet-4': all['fwgen-fleet-4'],
      'fwgen-mgmt-4': all['fwgen-mgmt-4'],
    });
    expect(all['fwgen-db-a1-4']).toEqual([`${NET}.11`, `${NET}.12`]);
    // web's rules match no allow set: its hosts get only the sets they use.
    expect(Object.keys(members(await liveSets('web1')))).toEqual(['fwgen-fleet-4', 'fwgen-mgmt-4']);
    expect(normalize(await lab.execOk('db1', ['iptables-save', '-t', 'filter']))).toEqual(
      normalize(rendered('db/iptables.up.rules')),
    );
    expect(await lab.execOk('db1', ['cat', '/etc/iptables.up.rules.ipset'])).toContain(`add fwgen-db-a1-4 ${NET}.11\n`);
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
    expect(await lab.probe('outside', `${NET}.21`, 5432)).toBe('refused');
    expect(await lab.probe('outside', `${NET}.21`, 8080)).toBe('refused');
  }, 60_000);

  it('a second ship is unchanged; a set member removed by hand is drift, and the next ship puts it back', async () => {
    expect(outcomes(await ship('--role', 'all'))).toEqual({ db1: 'unchanged', web1: 'unchanged', web2: 'unchanged' });
    await lab.execOk('db1', ['ipset', 'del', 'fwgen-db-a1-4', `${NET}.11`]);
    const st = await fwgen(project, ['status', '--json', '--connect-timeout', '3', '--host', 'db1']);
    expect(st.code).toBe(1);
    const row = JSON.parse(st.stdout)[0] as { state: string; drift: string[]; reason: string };
    expect(row).toMatchObject({ state: 'drifted', drift: [`-add fwgen-db-a1-4 ${NET}.11`] });
    expect(row.reason).toMatch(/live ipset members differ from rendered\/sets\/ipset\.rules/);
    const r = await ship('--role', 'db');
    expect(outcomes(r)).toEqual({ db1: 'applied' });
    expect(members(await liveSets('db1'))['fwgen-db-a1-4']).toEqual([`${NET}.11`, `${NET}.12`]);
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
  }, 60_000);

  it('a changed set is swapped in whole; the old members are backed up and dropped, no staging set is left', async () => {
    writeInventory(inventory({ dbFrom: `web, ${NET}.50` }));
    await render();
    const r = await ship('--role', 'db');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied' });
    expect(members(await liveSets('db1'))['fwgen-db-a1-4']).toEqual([`${NET}.11`, `${NET}.12`, `${NET}.50`]);
    expect(await lab.probe('outside', `${NET}.21`, 5432, { source: `${NET}.50` })).toBe('open');
    expect(await liveSets('db1')).not.toContain('fwgen~');
    const backup = await lab.execOk('db1', ['cat', `/etc/iptables.up.rules.bak.${r.results[0]!.backup}.sets`]);
    expect(members(backup)['fwgen-db-a1-4']).toEqual([`${NET}.11`, `${NET}.12`]);
  }, 60_000);

  it('the boot hook the first ship installed loads the sets before the rules, and it restores both', async () => {
    const r = await ship('--host', 'db1', '--persist');
    expect(r.code, r.stderr).toBe(0);
    const hook = await lab.execOk('db1', ['cat', '/etc/network/if-pre-up.d/fwgen-iptables']);
    expect(hook.indexOf('ipset restore -exist < /etc/iptables.up.rules.ipset')).toBeGreaterThan(0);
    expect(hook.indexOf('ipset restore')).toBeLessThan(hook.indexOf('iptables-restore'));
    // A reboot, as the kernel sees it: no rules, no sets; then the hook runs (once per interface).
    await lab.execOk('db1', ['sh', '-c', 'iptables -F; iptables -X; ipset destroy']);
    expect(await liveSets('db1')).toBe('');
    await lab.execOk('db1', ['sh', '/etc/network/if-pre-up.d/fwgen-iptables']);
    await lab.execOk('db1', ['sh', '/etc/network/if-pre-up.d/fwgen-iptables']);
    expect(members(await liveSets('db1'))['fwgen-db-a1-4']).toEqual([`${NET}.11`, `${NET}.12`, `${NET}.50`]);
    expect(normalize(await lab.execOk('db1', ['iptables-save', '-t', 'filter']))).toEqual(
      normalize(rendered('db/iptables.up.rules')),
    );
    expect(await lab.probe('outside', `${NET}.21`, 5432, { source: `${NET}.50` })).toBe('open');
  }, 60_000);

  it("--persist rewrites fwgen's own hook that an older fwgen wrote without the sets; the next --persist finds it present", async () => {
    const HOOK = '/etc/network/if-pre-up.d/fwgen-iptables';
    const reboot = async () => {
      await lab.execOk('db1', ['sh', '-c', 'iptables -F; iptables -X; ipset destroy']);
      await lab.execOk('db1', ['sh', HOOK]);
      await lab.execOk('db1', ['sh', HOOK]);
    };
    const current = await lab.execOk('db1', ['cat', HOOK]);
    // The hook as fwgen wrote it before ipset mode: the same without the line that loads the sets.
    const old = current
      .split('\n')
      .filter((l) => !l.includes('ipset restore'))
      .join('\n');
    expect(old).not.toBe(current);
    await lab.execOk('db1', ['sh', '-c', `cat > ${HOOK}`], { input: old });
    // An older fwgen left no boot marker (this one leaves its own, and skips the boot step while it is there).
    await lab.execOk('db1', ['rm', '/etc/iptables.up.rules.fwgen-boot']);
    // A stub ifup, so that if-pre-up.d hooks count as run at boot (ifupdown is not installed here).
    await lab.execOk('db1', [
      'sh',
      '-c',
      'mkdir -p /root/sbin && printf "#!/bin/sh\\nexit 0\\n" > /root/sbin/ifup && chmod 755 /root/sbin/ifup && mount --bind /root/sbin /usr/local/sbin',
    ]);
    // What that hook does at boot: the rules match sets that do not exist yet, so none load.
    await reboot();
    expect(await lab.execOk('db1', ['iptables-save', '-t', 'filter'])).not.toContain('FWGEN');
    expect(await lab.probe('outside', `${NET}.21`, 8080)).toBe('open');
    expect(await bootCheck('db1')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining(`${HOOK} loads /etc/iptables.up.rules at boot, but not first the ipsets`),
      fix: '`fwgen ship --host db1` rewrites it',
    });
    // Back as the ship left it, by hand, so that the next ship finds the host unchanged.
    await lab.execOk('db1', [
      'sh',
      '-c',
      'ipset restore -exist < /etc/iptables.up.rules.ipset && iptables-restore --noflush < /etc/iptables.up.rules',
    ]);

    const r = await ship('--host', 'db1', '--persist');
    expect(r.code, r.stderr).toBe(0);
    expect(r.results).toMatchObject([
      {
        host: 'db1',
        outcome: 'unchanged',
        reason: 'fwgen rules and rules file already match',
        boot: {
          status: 'updated',
          ok: true,
          path: HOOK,
          detail: `boot hook updated: ${HOOK} (it differed from what this fwgen writes)`,
        },
      },
    ]);
    expect(await lab.execOk('db1', ['cat', HOOK])).toBe(current);
    expect((await lab.execOk('db1', ['stat', '-c', '%a', HOOK])).trim()).toBe('755');
    expect(await bootCheck('db1')).toMatchObject({ level: 'ok' });
    await reboot();
    expect(members(await liveSets('db1'))['fwgen-db-a1-4']).toEqual([`${NET}.11`, `${NET}.12`, `${NET}.50`]);
    expect(normalize(await lab.execOk('db1', ['iptables-save', '-t', 'filter']))).toEqual(
      normalize(rendered('db/iptables.up.rules')),
    );
    expect(await lab.probe('outside', `${NET}.21`, 8080)).toBe('refused');

    const again = await ship('--host', 'db1', '--persist');
    // This fwgen's marker is there: no boot step, nothing said.
    expect(again.results).toMatchObject([
      { host: 'db1', outcome: 'unchanged', reason: 'fwgen rules and rules file already match', boot: null },
    ]);
  }, 90_000);

  it('rollback restores the previous sets with the previous rules', async () => {
    const r = await fwgen(project, ['rollback', '--host', 'db1', '--json', '--timeout', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied' });
    expect(members(await liveSets('db1'))['fwgen-db-a1-4']).toEqual([`${NET}.11`, `${NET}.12`]);
    expect(await lab.probe('outside', `${NET}.21`, 5432, { source: `${NET}.50` })).toBe('refused');
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
    expect(await liveSets('db1')).not.toContain('fwgen~');
  }, 60_000);

  it('sets that lock the deployer out are swapped back by the dead-man switch, with the rules', async () => {
    writeInventory(inventory({ management: '192.0.2.0/28', dbFrom: `${NET}.50` }));
    await render();
    const beforeSets = await liveSets('db1');
    const beforeRules = await lab.execOk('db1', ['iptables-save', '-t', 'filter']);
    const r = await unsafeShip('--role', 'db', '--timeout', '4');
    expect(outcomes(r)).toEqual({ db1: 'rolled-back' });
    expect(r.results[0]!.reason).toMatch(/restored its previous rules after 4s/);
    expect(members(await liveSets('db1'))).toEqual(members(beforeSets));
    expect(await liveSets('db1')).not.toContain('fwgen~');
    expect(normalize(await lab.execOk('db1', ['iptables-save', '-t', 'filter']))).toEqual(normalize(beforeRules));
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
    expect(await lab.execOk('db1', ['cat', '/etc/iptables.up.rules.fwgen-rollbacks'])).toMatch(
      /rolled back ship .*: not confirmed within 4s/,
    );
  }, 60_000);

  it('the lockout check looks the deployer up in the management set: the same change is refused up front', async () => {
    const r = await ship('--role', 'db');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/would not admit SSH from 198\.18\.133\.254 to port 22/);
    writeInventory(inventory());
    await render();
    expect(outcomes(await ship('--role', 'db'))).toEqual({ db1: 'applied' });
  }, 60_000);
});
