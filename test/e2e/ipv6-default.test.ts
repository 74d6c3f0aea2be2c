/**
 * IPv6 is never left open by omission: an inventory with no IPv6 address, shipped to dual-stack hosts
 * (real sshd, real kernel, real TCP probes over both families). By default a port fwgen rejects over
 * IPv4 is rejected over IPv6 too, the role's open ports answer over both, and SSH over IPv4 still
 * works; `ipv6: leave` keeps IPv6 as the host has it (open). doctor warns about the open one.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { parseJson, runFwgen, runFwgenHosts } from '../support/run-cli.js';

const NET = '198.18.96';
const NET6 = '2001:db8:96::';

interface Check {
  host?: string;
  name: string;
  level: string;
  detail: string;
}

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('an IPv4-only inventory on dual-stack hosts', () => {
  let lab: Lab;
  const projects: string[] = [];

  /** A project whose inventory has only IPv4 addresses; `ipv6` adds the top-level key. */
  const project = async (host: string, ipv6?: string): Promise<string> => {
    const dir = mkdtempSync(join(tmpdir(), 'fwgen-ipv6-'));
    projects.push(dir);
    mkdirSync(join(dir, 'inventory'));
    writeFileSync(
      join(dir, 'inventory/inventory.yaml'),
      `${ipv6 ? `ipv6: ${ipv6}\n` : ''}defaults:
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
trust: none
roles:
  app:
    ports: [tcp/8080]
    hosts: { ${host}: ${lab.hosts.get(host)!.ipv4} }
`,
    );
    const r = await runFwgen(dir, ['render']);
    expect(r.code, r.stderr).toBe(0);
    return dir;
  };
  const doctorIpv6 = async (dir: string) => {
    const r = await runFwgen(dir, ['doctor', '--json']);
    return parseJson(r.stdout, [] as Check[]).find((c) => c.name === 'ipv6');
  };

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fw6d',
      hosts: [
        { name: 'dual', ipv4: `${NET}.10`, ipv6: `${NET6}10`, sshd: true, listen: [8080, 9090] },
        { name: 'left', ipv4: `${NET}.11`, ipv6: `${NET6}11`, sshd: true, listen: [8080, 9090] },
        { name: 'peer', ipv4: `${NET}.20`, ipv6: `${NET6}20` },
      ],
    });
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    for (const p of projects) rmSync(p, { recursive: true, force: true });
  }, 60_000);

  it('renders IPv6 rules although the inventory has no IPv6 address', async () => {
    const dir = await project('dual');
    const r = await runFwgen(dir, ['render', '--check']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('before the ship, doctor warns that IPv6 is open on the host', async () => {
    expect(await lab.probe('peer', `${NET6}10`, 9090)).toBe('open');
    expect(await doctorIpv6(projects[0])).toMatchObject({
      host: 'dual',
      level: 'warn',
      detail: expect.stringContaining(`global IPv6 address ${NET6}10`),
    });
  });

  it('after the ship, a port rejected over IPv4 is rejected over IPv6 too; open ports answer over both; SSH over IPv4 works', async () => {
    const r = await runFwgenHosts(projects[0], ['ship', '--role', 'all', '--json', '--timeout', '6']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.results.map((x) => x.outcome)).toEqual(['applied']);
    expect(await lab.probe('peer', `${NET}.10`, 9090)).toBe('refused');
    expect(await lab.probe('peer', `${NET6}10`, 9090)).toBe('refused');
    expect(await lab.probe('peer', `${NET}.10`, 8080)).toBe('open');
    expect(await lab.probe('peer', `${NET6}10`, 8080)).toBe('open');
    // SSH: over IPv4 from management (the new connection that confirmed the ship), not over IPv6.
    expect(await lab.probe('peer', `${NET6}10`, 22)).toBe('refused');
    const again = await runFwgenHosts(projects[0], ['ship', '--role', 'all', '--json']);
    expect(again.results.map((x) => x.outcome)).toEqual(['unchanged']);
    expect(await doctorIpv6(projects[0])).toMatchObject({ level: 'ok', detail: expect.stringContaining('by fwgen') });
  });

  it('ipv6: leave keeps IPv6 as the host has it: open, and doctor says so', async () => {
    const dir = await project('left', 'leave');
    const r = await runFwgenHosts(dir, ['ship', '--role', 'all', '--json', '--timeout', '6']);
    expect(r.results.map((x) => x.outcome)).toEqual(['applied']);
    expect(await lab.probe('peer', `${NET}.11`, 9090)).toBe('refused');
    expect(await lab.probe('peer', `${NET6}11`, 9090)).toBe('open');
    expect(await lab.execOk('left', ['ip6tables-save', '-t', 'filter'])).not.toContain('FWGEN');
    expect(await doctorIpv6(dir)).toMatchObject({
      level: 'warn',
      detail: expect.stringContaining('every port the IPv4 rules close is open over IPv6'),
    });
  });
});
