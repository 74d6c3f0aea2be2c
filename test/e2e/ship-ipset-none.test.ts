/**
 * Back from `sets: ipset` to `sets: none` against real sshd hosts: the sets fwgen left in the kernel and
 * the sets file beside the rules are drift, and the next ship drops them in a transaction that a
 * rollback undoes (the sets come back with the rules that match them).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFwgenHosts, savedLines, type HostsRun } from '../support/run-cli.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.134';

type Run = HostsRun;

const outcomes = (r: Run) => Object.fromEntries(r.results.map((x) => [x.host, x.outcome]));

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ipset, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('sets: none after sets: ipset, against real sshd hosts', () => {
  let lab: Lab;
  let project: string;

  const inventory = (sets: 'ipset' | 'none') => `
sets: ${sets}
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
roles:
  web:
    hosts: { web1: ${NET}.11 }
  db:
    allow: [{ from: [web], ports: [tcp/5432] }]
    hosts: { db1: ${NET}.21 }
`;
  const fwgen = (args: string[]): Promise<Run> => runFwgenHosts(project, args, {});
  const render = async (sets: 'ipset' | 'none') => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(sets));
    expect((await fwgen(['render'])).code).toBe(0);
  };
  const ship = (...args: string[]) => fwgen(['ship', '--json', '--timeout', '4', '--connect-timeout', '3', ...args]);
  const fwgenSets = async (host: string) =>
    (await lab.execOk(host, ['ipset', 'list', '-n'])).split('\n').filter((n) => n.startsWith('fwgen'));
  const setsFileExists = async (host: string) =>
    (await lab.exec(host, ['test', '-e', '/etc/iptables.up.rules.ipset'])).code === 0;

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwin',
      hosts: [
        { name: 'web1', ipv4: `${NET}.11`, sshd: true },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true, listen: [5432] },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-ipset-none-'));
    mkdirSync(join(project, 'inventory'));
    await render('ipset');
    const r = await ship('--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(await fwgenSets('db1')).toEqual(['fwgen-db-a1-4', 'fwgen-fleet-4', 'fwgen-mgmt-4']);
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('status calls the sets left from ipset mode drift; --dry-run lists what would go', async () => {
    await render('none');
    // The live rules still match the sets: status shows both the rules and the sets as drift.
    const st = await fwgen(['status', '--json', '--connect-timeout', '3', '--host', 'db1']);
    expect(st.code).toBe(1);
    const row = JSON.parse(st.stdout)[0] as { state: string; drift: string[] };
    expect(row.state).toBe('drifted');
    expect(row.drift).toContain('+create fwgen-db-a1-4 hash:net family inet');
    expect(row.drift).toContain('+file /etc/iptables.up.rules.ipset');
    const dry = await ship('--host', 'db1', '--dry-run');
    expect(outcomes(dry)).toEqual({ db1: 'would-apply' });
    expect(dry.results[0]!.diff).toContain('destroy fwgen-fleet-4');
    expect(await fwgenSets('db1')).toHaveLength(3);
  }, 60_000);

  it('the ship drops the sets and the sets file; rules and traffic are as rendered; the next ship is unchanged', async () => {
    const r = await ship('--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied', web1: 'applied' });
    expect(await fwgenSets('db1')).toEqual([]);
    expect(await fwgenSets('web1')).toEqual([]);
    expect(await setsFileExists('db1')).toBe(false);
    const rendered = readFileSync(join(project, 'rendered/db/iptables.up.rules'), 'utf8');
    expect(savedLines(await lab.execOk('db1', ['iptables-save', '-t', 'filter']))).toEqual(savedLines(rendered));
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
    const st = await fwgen(['status', '--json', '--connect-timeout', '3']);
    expect(st.code, st.stdout).toBe(0);
    expect(outcomes(await ship('--role', 'all'))).toEqual({ db1: 'unchanged', web1: 'unchanged' });
  }, 60_000);

  it('rollback brings the sets back with the rules that match them', async () => {
    const r = await fwgen(['rollback', '--host', 'db1', '--json', '--timeout', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r)).toEqual({ db1: 'applied' });
    expect(await fwgenSets('db1')).toEqual(['fwgen-db-a1-4', 'fwgen-fleet-4', 'fwgen-mgmt-4']);
    expect(await lab.execOk('db1', ['iptables-save', '-t', 'filter'])).toContain('--match-set fwgen-db-a1-4 src');
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
  }, 60_000);
});
