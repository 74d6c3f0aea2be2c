/**
 * The systemd branch of the dead-man switch, against a real systemd: a test host whose PID 1 is
 * systemd (test/support/systemd-host.ts: systemd-nspawn on a private overlay root, with only the
 * units the test needs), reached over SSH by `fwgen ship`. Shows arm (a transient systemd timer),
 * fire after the timeout with the SSH session gone (previous rules restored), and disarm (a
 * confirmed ship leaves no timer). A canary file in the machine's /tmp proves the container never
 * touched it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_INTERNAL, parseJson, runFwgen, type CliRun } from '../support/run-cli.js';
import { CONTROLLER, createLab, labPrereqs, type Lab } from '../support/lab.js';
import { bootSystemdHost, type SystemdHost } from '../support/systemd-host.js';

const NET = '198.18.110';
const HOST = `${NET}.11`;

interface Result {
  host: string;
  outcome: string;
  reason: string;
}

it('has the prerequisites (root, sshd, iptables, systemd-nspawn, unshare, nsenter)', () => {
  expect(labPrereqs()).toEqual([]);
  for (const tool of ['/usr/bin/systemd-nspawn', '/usr/lib/systemd/systemd']) expect(existsSync(tool), tool).toBe(true);
});

describe('dead-man switch on a host running systemd (systemd-run branch)', () => {
  let lab: Lab;
  let dir: string;
  let project: string;
  let host: SystemdHost;
  let canary: string;

  const inventory = (o: { management: string; ports: string }) => `
defaults:
  rules_path: /etc/iptables.up.rules
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${join(dir, 'known_hosts')} }
management: [${o.management}]
trust: none
roles:
  sd:
    ports: [${o.ports}]
    hosts: { sd1: ${HOST} }
`;
  const write = async (o: { management: string; ports: string }) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(o));
    const r = await runFwgen(project, ['render']);
    expect(r.code, r.stderr).toBe(0);
  };
  const inHost = (...argv: string[]) => host.exec(argv);
  const out = (...argv: string[]) => {
    const r = inHost(...argv);
    expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const liveRules = () =>
    out('iptables-save', '-t', 'filter')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]$/, ''));
  const deadmanUnits = () =>
    out('systemctl', 'list-units', '--all', '--no-legend', '--plain', 'fwgen-deadman-*').trim();
  const results = (r: CliRun) => parseJson(r.stdout, { hosts: [] as Result[] }).hosts;

  beforeAll(async () => {
    canary = join(tmpdir(), `fwgen-systemd-canary-${process.pid}`);
    writeFileSync(canary, 'must survive\n');
    dir = mkdtempSync(join(tmpdir(), 'fwgen-systemd-'));
    lab = await createLab({ prefix: 'fwsd', hosts: [{ name: 'sd1', ipv4: HOST }] });
    host = await bootSystemdHost(join(dir, 'host'), lab.hosts.get('sd1')!.ns, lab.sshKey.publicKey);
    const [type, key] = host.hostKeyPub.split(/\s+/);
    writeFileSync(join(dir, 'known_hosts'), `${HOST} ${type} ${key}\n`);
    for (let i = 0; i < 50 && (await lab.probe(CONTROLLER, HOST, 22)) !== 'open'; i++)
      await new Promise((r) => setTimeout(r, 200));
    project = join(dir, 'project');
    mkdirSync(join(project, 'inventory'), { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await host?.stop();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    const survived = existsSync(canary) && readFileSync(canary, 'utf8') === 'must survive\n';
    rmSync(canary, { force: true });
    if (!survived)
      throw new Error(`the canary ${canary} in the machine's /tmp is gone: the systemd host touched the real /tmp`);
  }, 60_000);

  it('the host runs systemd as PID 1, on private tmpfs /tmp, /var/tmp and /run, with only the test units', () => {
    expect(out('cat', '/proc/1/comm').trim()).toBe('systemd');
    expect(out('sh', '-c', '[ -d /run/systemd/system ] && command -v systemd-run').trim()).not.toBe('');
    // Every file system mounted there (nspawn's and ours may stack) is a tmpfs of the container's own.
    for (const m of ['/tmp', '/var/tmp', '/run'])
      expect(new Set(out('findmnt', '-n', '-o', 'FSTYPE', m).trim().split('\n')), m).toEqual(new Set(['tmpfs']));
    expect(out('findmnt', '-n', '-o', 'FSTYPE', '/').trim()).toBe('overlay');
    expect(existsSync(join(tmpdir(), `fwgen-systemd-canary-${process.pid}`))).toBe(true);
    const services = out('systemctl', 'list-units', '--type=service', '--state=active', '--no-legend', '--plain')
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]);
    expect(services).toEqual(['fwgen-sshd.service']);
    expect(inHost('ls', '/usr/lib/systemd/system').stdout.trim()).toBe('');
  });

  // --no-persist: this host's /etc/systemd/system is read-only on purpose (only the test's units), so the
  // boot step could not install fwgen's unit there; the dead-man switch is what these tests are about.
  it('disarm: a confirmed ship applies the rules and leaves no dead-man timer behind', async () => {
    await write({ management: `${NET}.0/24`, ports: 'tcp/8080' });
    const r = await runFwgen(project, [
      'ship',
      '--role',
      'all',
      '--json',
      '--timeout',
      '3',
      '--connect-timeout',
      '5',
      '--no-persist',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(results(r).map((x) => x.outcome)).toEqual(['applied']);
    expect(liveRules().filter((l) => /^-A FWGEN-INPUT .*--dport 8080 .*-j ACCEPT$/.test(l))).toHaveLength(1);
    expect(deadmanUnits()).toBe('');
    // Well past the timeout: a switch left armed would have restored the old rules by now.
    await new Promise((r) => setTimeout(r, 5000));
    expect(liveRules().some((l) => l.includes('--dport 8080'))).toBe(true);
    expect(inHost('cat', '/etc/iptables.up.rules.fwgen-rollbacks').stdout).toBe('');
    expect(out('sh', '-c', 'ls /etc/ | grep -c "fwgen-armed\\|fwgen-deadman" || true').trim()).toBe('0');
  }, 60_000);

  it('arm and fire: unconfirmed rules are restored by the systemd timer after the SSH session is gone', async () => {
    const before = liveRules();
    // Rules that reject the deployer's SSH: the confirmation connection fails, so only the switch can undo them.
    await write({ management: '192.0.2.0/24', ports: 'tcp/9090' });
    const started = Date.now();
    const shipping = runFwgen(
      project,
      ['ship', '--role', 'all', '--json', '--timeout', '6', '--connect-timeout', '2', '--no-persist'],
      {
        FWGEN_INTERNAL: JSON.stringify({ skipLockoutCheck: true }),
      },
      CLI_INTERNAL,
    );

    // Armed: a transient systemd timer, not a setsid process.
    let armed = '';
    let sessionsWhileArmed = -1;
    while (Date.now() - started < 6000) {
      const timers = out('systemctl', 'list-timers', '--all', '--no-legend', '--plain', 'fwgen-deadman-*');
      if (timers.includes('fwgen-deadman-')) {
        armed = timers;
        const pidFile = out('sh', '-c', 'cat /etc/iptables.up.rules.fwgen-deadman.*.pid 2>/dev/null || true').trim();
        expect(pidFile).toBe('systemd');
        // The SSH session that armed it ends right after applying; the timer must outlive it.
        for (let i = 0; i < 20; i++) {
          sessionsWhileArmed = Number(out('sh', '-c', 'ps -eo args | grep -c "^sshd: root" || true').trim());
          if (sessionsWhileArmed === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(armed, 'no fwgen-deadman timer seen while the ship was in flight').toMatch(/fwgen-deadman-\S+\.timer/);
    expect(sessionsWhileArmed, 'SSH sessions still open while armed').toBe(0);
    expect(deadmanUnits()).toMatch(/fwgen-deadman-\S+\.timer\s+loaded\s+active\s+waiting/);
    expect(liveRules().some((l) => l.includes('--dport 9090'))).toBe(true);

    const r = await shipping;
    expect(r.code).toBe(1);
    const [res] = results(r);
    expect(res?.outcome, r.stderr).toBe('rolled-back');
    expect(res?.reason).toMatch(/restored its previous rules after 6s/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(6000);
    expect(liveRules()).toEqual(before);
    expect(out('cat', '/etc/iptables.up.rules.fwgen-rollbacks')).toMatch(
      /rolled back ship \S+: not confirmed within 6s/,
    );
    // The timer and its service ran and were unloaded (transient units); nothing is left armed or locked.
    expect(deadmanUnits()).toBe('');
    expect(
      out('sh', '-c', 'ls -d /etc/iptables.up.rules.fwgen-lock /etc/*fwgen-armed* 2>/dev/null || echo clean').trim(),
    ).toBe('clean');
  }, 90_000);

  it("the machine's /tmp still holds the canary", () => {
    expect(readFileSync(canary, 'utf8')).toBe('must survive\n');
  });
});
