/**
 * fwgen next to the tools that real hosts run: a real dockerd with a published port, a real
 * fail2ban-server with a ban, and a host with hand-written rules. fwgen ships over real sshd and
 * must leave everything that is not its own exactly as it was; real TCP probes are the judge.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitText } from '../../src/model/emit.js';
import { parseRuleset } from '../../src/model/parse.js';
import { startDockerd, type DockerDaemon } from '../support/docker-daemon.js';
import { startFail2ban, type Fail2banDaemon } from '../support/fail2ban-daemon.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { CLI_INTERNAL, parseJson, runFwgen, runFwgenHosts } from '../support/run-cli.js';

const NET = '198.18.88';
const BANNED = `${NET}.41`;
const OTHER = `${NET}.42`;

interface Result {
  host: string;
  outcome: string;
  reason: string;
  removed?: string[];
}

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('coexistence with Docker, fail2ban and hand-written rules', () => {
  let lab: Lab;
  let project: string;
  let dockerd: DockerDaemon | undefined;
  let f2b: Fail2banDaemon | undefined;

  const inventory = (o: { containerPorts?: string; management?: string } = {}) => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${o.management ?? `${NET}.240/28`}]
trust: none
roles:
  containers:
    forward: leave
    ${o.containerPorts ? `ports: [${o.containerPorts}]` : ''}
    hosts: { dock: ${NET}.10 }
  guarded:
    ports: [tcp/8080, tcp/9090]
    hosts: { guard: ${NET}.20 }
  plain:
    hosts: { hand: ${NET}.30 }
`;
  const setInventory = async (text: string) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), text);
    const r = await runFwgen(project, ['render']);
    expect(r.code, r.stderr).toBe(0);
  };
  const fwgen = async (args: string[], env: Record<string, string> = {}, entry?: string) => {
    return runFwgenHosts(project, args, env, entry);
  };
  const ship = (...args: string[]) => fwgen(['ship', '--json', '--timeout', '5', '--connect-timeout', '3', ...args]);
  const outcome = (r: { results: Result[] }, host: string) => r.results.find((x) => x.host === host)?.outcome;
  const filter = (host: string) => lab.execOk(host, ['iptables-save', '-t', 'filter']);
  const status = async (host: string) => {
    const r = await fwgen(['status', '--host', host, '--json']);
    return { code: r.code, row: parseJson(r.stdout, [] as Record<string, unknown>[])[0] };
  };
  /** Docker's own part of the filter table: its chains' rules and its hooks, in order. */
  const dockerPart = (save: string) => save.split('\n').filter((l) => /DOCKER/.test(l) || /^:FORWARD/.test(l));

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwc',
      hosts: [
        { name: 'dock', ipv4: `${NET}.10`, sshd: true },
        { name: 'guard', ipv4: `${NET}.20`, sshd: true, listen: [8080, 9090] },
        { name: 'hand', ipv4: `${NET}.30`, sshd: true },
        { name: 'client', ipv4: `${NET}.40`, extraIpv4: [BANNED, OTHER] },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-coexist-'));
    mkdirSync(join(project, 'inventory'));
    await setInventory(inventory());
  }, 180_000);

  afterAll(async () => {
    await dockerd?.stop();
    await f2b?.stop();
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 120_000);

  describe('a Docker host with a published port (forward: leave)', () => {
    beforeAll(async () => {
      dockerd = await startDockerd(lab, 'dock');
      await dockerd.runHttpd({ name: 'web', hostPort: 8080 });
    }, 180_000);

    const published = () => lab.probe('client', `${NET}.10`, 8080);

    it("answers before the ship, and after it; Docker's chains, hooks and FORWARD policy are untouched", async () => {
      expect(await published()).toBe('open');
      const before = dockerPart(await filter('dock'));
      expect(before).toContain(':FORWARD DROP [0:0]');
      const r = await ship('--host', 'dock');
      expect(r.code, r.stderr).toBe(0);
      expect(outcome(r, 'dock')).toBe('applied');
      expect(await published()).toBe('open');
      expect(dockerPart(await filter('dock'))).toEqual(before);
      // fwgen's own rules do apply: a port nobody opened is rejected.
      expect(await lab.probe('client', `${NET}.10`, 22)).toBe('refused');
      const s = await status('dock');
      expect(s.code).toBe(0);
      expect(s.row).toMatchObject({ state: 'in-sync', foreign: expect.arrayContaining(['DOCKER', 'DOCKER-USER']) });
      // The live table, Docker's chains included, parses and prints back byte for byte.
      const full = await lab.execOk('dock', ['iptables-save']);
      expect(emitText(parseRuleset(full).ruleset)).toBe(full);
    });

    it('a second ship with nothing changed is "unchanged" although Docker has chains of its own', async () => {
      expect(outcome(await ship('--host', 'dock'), 'dock')).toBe('unchanged');
    });

    it('a changed re-ship, a rollback, and the dead-man switch firing all keep the published port', async () => {
      await setInventory(inventory({ containerPorts: 'tcp/7000' }));
      expect(outcome(await ship('--host', 'dock'), 'dock')).toBe('applied');
      expect(await published()).toBe('open');
      const rb = await fwgen(['rollback', '--host', 'dock', '--json', '--timeout', '5']);
      expect(outcome(rb, 'dock'), rb.stderr).toBe('applied');
      expect(await filter('dock')).not.toContain('--dport 7000');
      expect(await published()).toBe('open');
      const before = await filter('dock');
      // Rules that lock this machine out: only the dead-man switch brings the host back.
      await setInventory(inventory({ containerPorts: 'tcp/7000', management: '192.0.2.0/24' }));
      const r = await fwgen(
        ['ship', '--json', '--timeout', '3', '--connect-timeout', '2', '--host', 'dock'],
        { FWGEN_INTERNAL: JSON.stringify({ skipLockoutCheck: true }) },
        CLI_INTERNAL,
      );
      expect(outcome(r, 'dock'), r.stderr).toBe('rolled-back');
      expect(dockerPart(await filter('dock'))).toEqual(dockerPart(before));
      expect(await published()).toBe('open');
      await setInventory(inventory());
    }, 90_000);

    it('after dockerd restarts following a ship, the port answers and the host is still in sync', async () => {
      expect(outcome(await ship('--host', 'dock'), 'dock')).toMatch(/applied|unchanged/);
      await dockerd!.restart();
      await dockerd!.waitContainer('web', 8080);
      expect(await published()).toBe('open');
      expect((await status('dock')).row).toMatchObject({ state: 'in-sync' });
    }, 90_000);
  });

  describe('a fail2ban host with a ban in place', () => {
    beforeAll(async () => {
      f2b = await startFail2ban(lab, 'guard', { ports: [8080] });
      await f2b.ban(BANNED);
    }, 120_000);

    it('the ban still rejects after the ship, fwgen admits the others, and fail2ban keeps working', async () => {
      expect(await lab.probe('client', `${NET}.20`, 8080, { source: BANNED })).toBe('refused');
      const r = await ship('--host', 'guard');
      expect(r.code, r.stderr).toBe(0);
      expect(outcome(r, 'guard')).toBe('applied');
      const live = await filter('guard');
      const hooks = live.split('\n').filter((l) => l.startsWith('-A INPUT '));
      expect(hooks[0]).toMatch(/-j f2b-fwgen-test$/);
      expect(hooks.at(-1)).toBe('-A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT');
      expect(await lab.probe('client', `${NET}.20`, 8080, { source: BANNED })).toBe('refused');
      expect(await lab.probe('client', `${NET}.20`, 8080, { source: OTHER })).toBe('open');
      expect(await lab.probe('client', `${NET}.20`, 9090, { source: BANNED })).toBe('open');
      await f2b!.ban(OTHER);
      expect(await lab.probe('client', `${NET}.20`, 8080, { source: OTHER })).toBe('refused');
      await f2b!.unban(BANNED);
      expect(await lab.probe('client', `${NET}.20`, 8080, { source: BANNED })).toBe('open');
      expect((await status('guard')).row).toMatchObject({ state: 'in-sync', foreign: ['f2b-fwgen-test'] });
      expect(outcome(await ship('--host', 'guard'), 'guard')).toBe('unchanged');
      const full = await lab.execOk('guard', ['iptables-save']);
      expect(emitText(parseRuleset(full).ruleset)).toBe(full);
    }, 90_000);
  });

  describe('a host with hand-written rules in INPUT', () => {
    it("the first ship removes them and lists them; a preserved tool's hook stays", async () => {
      await lab.execOk('hand', [
        'sh',
        '-c',
        [
          'iptables -A INPUT -s 192.0.2.7/32 -j ACCEPT',
          'iptables -N MYCHAIN && iptables -A INPUT -j MYCHAIN',
          'iptables -N f2b-sshd && iptables -I INPUT -p tcp --dport 22 -j f2b-sshd',
        ].join(' && '),
      ]);
      const dry = await ship('--host', 'hand', '--dry-run');
      expect(dry.results[0]).toMatchObject({
        outcome: 'would-apply',
        removed: ['-A INPUT -s 192.0.2.7/32 -j ACCEPT', '-A INPUT -j MYCHAIN'],
      });
      const r = await ship('--host', 'hand');
      expect(r.code, r.stderr).toBe(0);
      expect(r.results[0]).toMatchObject({
        outcome: 'applied',
        removed: ['-A INPUT -s 192.0.2.7/32 -j ACCEPT', '-A INPUT -j MYCHAIN'],
      });
      expect(r.results[0].reason).toContain('removed 2 rule(s)');
      const input = (await filter('hand')).split('\n').filter((l) => l.startsWith('-A INPUT '));
      expect(input).toEqual([
        '-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd',
        '-A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT',
      ]);
      const rendered = readFileSync(join(project, 'rendered/plain/iptables.up.rules'), 'utf8');
      expect(await lab.execOk('hand', ['cat', '/etc/iptables.up.rules'])).toBe(rendered);
    });
  });
});
