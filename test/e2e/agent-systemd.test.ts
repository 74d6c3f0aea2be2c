/**
 * The pull agent's systemd branch, against a real systemd (test/support/systemd-host.ts: PID 1 in a
 * systemd-nspawn container on a private overlay root): `agent install` writes and starts a timer with a
 * fixed random delay, the timer's service pulls and applies the release from a real nginx (leaving no
 * dead-man switch armed), and at boot fwgen's unit loads the cached release with the origin down. (The container has no journald: what the service did is read from the agent's state.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type Manifest } from '../../src/publish/manifest.js';
import { CONTROLLER, createLab, labPrereqs, type Lab } from '../support/lab.js';
import { labNginx, type Nginx } from '../support/nginx.js';
import { parseJson, runFwgen } from '../support/run-cli.js';
import { bootSystemdHost, type SystemdHost } from '../support/systemd-host.js';

const NET = '198.18.141';
const HOST = `${NET}.11`;
const RULES = '/etc/iptables.up.rules';

it('has the prerequisites (root, sshd, iptables, systemd-nspawn, nginx)', () => {
  expect(labPrereqs()).toEqual([]);
  for (const tool of ['/usr/bin/systemd-nspawn', '/usr/lib/systemd/systemd', '/usr/sbin/nginx'])
    expect(existsSync(tool), tool).toBe(true);
});

describe('the pull agent on a host running systemd (timer branch)', () => {
  let lab: Lab;
  let dir: string;
  let project: string;
  let tree: string;
  let host: SystemdHost;
  let origin: Nginx;
  let key: string;

  const out = (...argv: string[]) => {
    const r = host.exec(argv);
    expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const fwgen = (...args: string[]) => runFwgen(project, args);
  const serial = () => (parseManifest(readFileSync(join(tree, 'roles/sd/manifest'), 'utf8')) as Manifest).serial;
  const agentState = () => out('cat', `${RULES}.fwgen-agent/state`);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-agent-systemd-'));
    lab = await createLab({
      prefix: 'fwas',
      hosts: [
        { name: 'sd1', ipv4: HOST },
        { name: 'origin', ipv4: `${NET}.5` },
      ],
    });
    host = await bootSystemdHost(join(dir, 'host'), lab.hosts.get('sd1')!.ns, lab.sshKey.publicKey, {
      writableUnits: true,
    });
    const [type, hostKey] = host.hostKeyPub.split(/\s+/);
    writeFileSync(join(dir, 'known_hosts'), `${HOST} ${type} ${hostKey}\n`);
    for (let i = 0; i < 50 && (await lab.probe(CONTROLLER, HOST, 22)) !== 'open'; i++)
      await new Promise((r) => setTimeout(r, 200));
    tree = join(dir, 'tree');
    mkdirSync(tree);
    origin = labNginx(lab, 'origin', tree, join(dir, 'nginx'));
    await origin.start();
    key = join(dir, 'release');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    project = join(dir, 'project');
    mkdirSync(join(project, 'inventory'), { recursive: true });
    writeFileSync(
      join(project, 'inventory/inventory.yaml'),
      `
defaults:
  rules_path: ${RULES}
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${join(dir, 'known_hosts')} }
agent: { origin: "${origin.url}", signers: ["${readFileSync(`${key}.pub`, 'utf8').trim()}"], every: 60 }
management: [${NET}.240/28]
trust: none
roles:
  sd:
    ports: [tcp/8080]
    hosts: { sd1: ${HOST} }
`,
    );
    expect((await fwgen('render')).code).toBe(0);
    const p = await fwgen('publish', '--out', tree, '--sign-key', key);
    expect(p.code, p.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await origin?.stop();
    await host?.stop();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('agent install writes and starts a timer with a fixed random delay, and fwgen unit for boot', async () => {
    const r = await fwgen('agent', 'install', '--host', 'sd1', '--json', '--connect-timeout', '5');
    expect(r.code, r.stderr).toBe(0);
    const [row] = parseJson(r.stdout, [] as { outcome: string; detail: string }[]);
    expect(row.outcome).toBe('installed');
    expect(row.detail).toMatch(
      /^schedule: systemd; .*boot hook installed: \/etc\/systemd\/system\/fwgen-iptables\.service/,
    );
    expect(out('systemctl', 'is-active', 'fwgen-agent.timer').trim()).toBe('active');
    expect(out('systemctl', 'is-enabled', 'fwgen-agent.timer').trim()).toBe('enabled');
    const timer = out('systemctl', 'show', 'fwgen-agent.timer', '-p', 'RandomizedDelayUSec', '-p', 'FixedRandomDelay');
    expect(timer).toContain('RandomizedDelayUSec=1min');
    expect(timer).toContain('FixedRandomDelay=yes');
    expect(out('systemctl', 'cat', 'fwgen-agent.service')).toContain(
      `ExecStart=/bin/sh ${RULES}.fwgen-agent/agent.sh poll ${RULES}`,
    );
    expect(existsSync(join(dir, 'host/units/fwgen-agent.timer'))).toBe(true);
    const again = await fwgen('agent', 'install', '--host', 'sd1', '--json', '--connect-timeout', '5');
    expect(parseJson(again.stdout, [] as { outcome: string }[])[0].outcome).toBe('unchanged');
  }, 60_000);

  it("the timer's service pulls and applies the release; no switch left armed", () => {
    out('systemctl', 'start', 'fwgen-agent.service');
    expect(agentState()).toContain(`outcome=applied ${serial()}\n`);
    expect(out('iptables-save', '-t', 'filter')).toMatch(/-A FWGEN-INPUT -p tcp -m tcp --dport 8080 .*-j ACCEPT/);
    // The switch it armed (systemd-run: the host runs systemd) was claimed by the commit: nothing left armed.
    expect(out('systemctl', 'list-units', '--all', '--no-legend', '--plain', 'fwgen-deadman-*').trim()).toBe('');
    expect(out('sh', '-c', `ls -d ${RULES}.fwgen-armed.* ${RULES}.fwgen-lock 2>/dev/null || echo clean`).trim()).toBe(
      'clean',
    );
    expect(host.exec(['cat', `${RULES}.fwgen-rollbacks`]).stdout).toBe('');
  });

  it("at boot, fwgen's unit loads the cached release with the origin down", async () => {
    const before = out('iptables-save', '-t', 'filter').replace(/^#.*\n/gm, '');
    await origin.stop();
    out('sh', '-c', 'iptables -F && iptables -X');
    out('systemctl', 'restart', 'fwgen-iptables.service');
    expect(out('iptables-save', '-t', 'filter').replace(/^#.*\n/gm, '')).toBe(before);
    out('systemctl', 'start', 'fwgen-agent.service');
    expect(agentState()).toContain('outcome=kept: unreachable\n');
    expect(out('iptables-save', '-t', 'filter').replace(/^#.*\n/gm, '')).toBe(before);
    await origin.start();
  }, 60_000);

  it('--uninstall stops and removes the timer', async () => {
    const r = await fwgen('agent', 'install', '--host', 'sd1', '--uninstall', '--connect-timeout', '5');
    expect(r.code, r.stderr).toBe(0);
    expect(host.exec(['systemctl', 'is-active', 'fwgen-agent.timer']).stdout.trim()).not.toBe('active');
    expect(existsSync(join(dir, 'host/units/fwgen-agent.timer'))).toBe(false);
    expect(existsSync(join(dir, 'host/units/timers.target.wants/fwgen-agent.timer'))).toBe(false);
  }, 60_000);
});
