/**
 * Dual stack: a ship applies fwgen's change to both families in one run, an unchanged re-ship is
 * recognised on both, and the dead-man switch puts both families back. Real sshd, real kernel.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { CLI_INTERNAL, runFwgen, runFwgenHosts } from '../support/run-cli.js';

const NET = '198.18.92';
const NET6 = '2001:db8:92::';

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('ship on a dual-stack host', () => {
  let lab: Lab;
  let project: string;
  const inventory = (o: { ports?: string; management?: string } = {}) => `
defaults:
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${o.management ?? `${NET}.240/28, 2001:db8:ffff::/48`}]
trust: none
roles:
  app:
    ports: [${o.ports ?? 'tcp/8080'}]
    hosts: { dual: { address: [${NET}.10, "${NET6}10"], ssh: { host: ${NET}.10 } } }
`;
  const fwgen = async (args: string[], env: Record<string, string> = {}, entry?: string) => {
    return runFwgenHosts(project, args, env, entry);
  };
  const setInventory = async (text: string) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), text);
    expect((await runFwgen(project, ['render'])).code).toBe(0);
  };
  const saved = async (tool: string) =>
    (await lab.execOk('dual', [tool, '-t', 'filter'])).split('\n').filter((l) => l && !l.startsWith('#'));

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fw6',
      hosts: [
        { name: 'dual', ipv4: `${NET}.10`, ipv6: `${NET6}10`, sshd: true, listen: [8080] },
        { name: 'peer', ipv4: `${NET}.20`, ipv6: `${NET6}20` },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-ship6-'));
    mkdirSync(join(project, 'inventory'));
    await setInventory(inventory());
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('applies both families, installs both files, and a re-ship is unchanged', async () => {
    const r = await fwgen(['ship', '--role', 'all', '--json', '--timeout', '5']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.results.map((x) => x.outcome)).toEqual(['applied']);
    expect(await saved('ip6tables-save')).toContain('-A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT');
    expect(await saved('ip6tables-save')).toContain(
      '-A FWGEN-INPUT -p tcp -m tcp --dport 8080 -m comment --comment "fwgen app ports tcp/8080" -j ACCEPT',
    );
    expect(await lab.execOk('dual', ['cat', '/etc/ip6tables.up.rules'])).toBe(
      readFileSync(join(project, 'rendered/app/ip6tables.up.rules'), 'utf8'),
    );
    expect(await lab.probe('peer', `${NET6}10`, 8080)).toBe('open');
    expect(await lab.probe('peer', `${NET6}10`, 22)).toBe('refused');
    expect((await fwgen(['ship', '--role', 'all', '--json'])).results.map((x) => x.outcome)).toEqual(['unchanged']);
  });

  it('the dead-man switch restores both families when the confirmation cannot get in', async () => {
    const before4 = await saved('iptables-save');
    const before6 = await saved('ip6tables-save');
    await setInventory(inventory({ ports: 'tcp/9090', management: '192.0.2.0/24' }));
    const r = await fwgen(
      ['ship', '--role', 'all', '--json', '--timeout', '3', '--connect-timeout', '2'],
      { FWGEN_INTERNAL: JSON.stringify({ skipLockoutCheck: true }) },
      CLI_INTERNAL,
    );
    expect(
      r.results.map((x) => x.outcome),
      r.stderr,
    ).toEqual(['rolled-back']);
    expect(await saved('iptables-save')).toEqual(before4);
    expect(await saved('ip6tables-save')).toEqual(before6);
    expect(await lab.probe('peer', `${NET6}10`, 8080)).toBe('open');
  }, 60_000);
});
