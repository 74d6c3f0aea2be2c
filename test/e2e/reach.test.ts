/**
 * Reaching a fleet the way operators do: the targets accept SSH only from a bastion (a raw-table
 * DROP in front of their sshd refuses the controller, and their rules admit only the bastion), the
 * bastion runs its own sshd, and the controller's ~/.ssh/config (in a temp HOME) says how to get
 * there: aliases, User, Port, IdentityFile, ProxyJump, an Include and a Match exec never run.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFwgenHosts } from '../support/run-cli.js';
import { createLab, type Lab } from '../support/lab.js';

const NET = '198.18.40';
const BASTION = `${NET}.5`;
const TARGETS = ['t1', 't2', 't3'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  results: { host: string; outcome?: string; state?: string; reason?: string }[];
}

describe('ship, status, doctor and rollback through a bastion described in ~/.ssh/config', () => {
  let lab: Lab;
  let project: string;
  let home: string;
  let marker: string;

  const fwgen = async (args: string[], env: Record<string, string> = {}): Promise<Run> => {
    return runFwgenHosts(project, args, { HOME: home, ...env });
  };
  const byHost = (r: Run, key: 'outcome' | 'state') => Object.fromEntries(r.results.map((x) => [x.host, x[key]]));
  const inventory = (o: { management?: string; ports?: string; ssh?: string } = {}) => `
defaults:
  interface: eth1
  ${o.ssh ? `ssh: ${o.ssh}` : ''}
management: [${o.management ?? `${BASTION}/32`}]
roles:
  web:
    ${o.ports ? `ports: [${o.ports}]` : ''}
    hosts:
      t1: { address: ${NET}.11, ssh: { host: web-t1 } }
      t2: ${NET}.12
      t3: ${NET}.13
`;
  const writeInventory = (text: string) => writeFileSync(join(project, 'inventory/inventory.yaml'), text);
  const render = async () => expect((await fwgen(['render'])).code).toBe(0);
  const accepted = async (host: string) =>
    (readFileSync(join(lab.hosts.get(host)!.root, 'sshd.log'), 'utf8').match(/Accepted publickey/g) ?? []).length;
  const hasRules = async (host: string) => (await lab.exec(host, ['test', '-e', '/etc/iptables.up.rules'])).code === 0;

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwr',
      hosts: [
        { name: 'bastion', ipv4: BASTION, sshd: true },
        ...TARGETS.map((name, i) => ({ name, ipv4: `${NET}.${11 + i}`, sshd: true })),
      ],
    });
    const ctl = lab.controller!.ipv4;
    // In front of each target: SSH from the controller itself never arrives (ship replaces only the filter table).
    for (const t of TARGETS)
      await lab.execOk(t, [
        'iptables',
        '-t',
        'raw',
        '-A',
        'PREROUTING',
        '-s',
        ctl,
        '-p',
        'tcp',
        '--dport',
        '22',
        '-j',
        'DROP',
      ]);
    project = mkdtempSync(join(tmpdir(), 'fwgen-reach-'));
    home = join(project, 'home');
    marker = join(project, 'match-exec-ran');
    mkdirSync(join(home, '.ssh', 'conf.d'), { recursive: true, mode: 0o700 });
    mkdirSync(join(project, 'inventory'));
    const key = lab.sshKey.privatePath;
    writeFileSync(
      join(home, '.ssh', 'config'),
      `Host bastion
  HostName ${BASTION}
  User root
  Port 22
  IdentityFile ${key}

Include conf.d/*.conf

Host ${NET}.* !${BASTION}
  ProxyJump bastion
  User root
  Port 22
  IdentityFile ${key}

# Never reached for the hosts above (first match wins): a wrong port, user and key.
Host *
  Port 2222
  User nobody
  IdentityFile ~/.ssh/missing_key
  UserKnownHostsFile ${lab.knownHostsPath}
`,
    );
    writeFileSync(
      join(home, '.ssh', 'conf.d', 'targets.conf'),
      `Host web-t1
  HostName ${NET}.11
  ProxyJump bastion
  User root
  Port 22
  IdentityFile ${key}

Match host ${NET}.13 exec "touch ${marker}"
  Port 2222
`,
    );
    writeInventory(inventory());
    await render();
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('the controller cannot reach a target directly; the bastion can', async () => {
    expect(await lab.probe('@controller', `${NET}.11`, 22, { timeoutMs: 800 })).toBe('timeout');
    expect(await lab.probe('bastion', `${NET}.11`, 22)).toBe('open');
  });

  it('refuses (exit 2) rules that admit this machine but not the bastion, before touching any host', async () => {
    writeInventory(inventory({ management: `${lab.controller!.ipv4}/32` }));
    await render();
    const r = await fwgen(['ship', '--role', 'all', '--json', '--timeout', '5']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`would not admit SSH from ${BASTION} (jump host root@${BASTION} (bastion)) to port 22`);
    expect(r.stderr).toMatch(/jump host's address to `management`/);
    for (const t of TARGETS) expect(await hasRules(t)).toBe(false);
    // --from says the source outright (NAT): the check then judges that address instead.
    const refusedFrom = await fwgen(['ship', '--role', 'all', '--json', '--from', '192.0.2.7']);
    expect(refusedFrom.code).toBe(2);
    expect(refusedFrom.stderr).toContain('would not admit SSH from 192.0.2.7 (--from) to port 22');
    writeInventory(inventory());
    await render();
  }, 60_000);

  it('ships N hosts through ONE bastion connection; targets see the bastion; Match exec is never run', async () => {
    const before = await accepted('bastion');
    const targetsBefore = await Promise.all(TARGETS.map(accepted));
    const r = await fwgen(['ship', '--role', 'all', '--json', '--timeout', '5']);
    expect(r.code, r.stderr).toBe(0);
    expect(byHost(r, 'outcome')).toEqual({ t1: 'applied', t2: 'applied', t3: 'applied' });
    // One connection to the bastion for the whole run, none per host...
    expect((await accepted('bastion')) - before).toBe(1);
    // ...while each target got its two (apply, then the new confirmation connection), from the bastion.
    const targetsAfter = await Promise.all(TARGETS.map(accepted));
    expect(targetsAfter.map((n, i) => n - targetsBefore[i])).toEqual([2, 2, 2]);
    expect(readFileSync(join(lab.hosts.get('t2')!.root, 'sshd.log'), 'utf8')).toContain(
      `Accepted publickey for root from ${BASTION}`,
    );
    expect(existsSync(marker)).toBe(false);
    expect(r.stderr).toMatch(/Match exec .* was not run/);
  }, 90_000);

  it('status, backups and doctor go through the bastion too, and doctor says how each host was reached', async () => {
    const st = await fwgen(['status', '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect(byHost(st, 'state')).toEqual({ t1: 'in-sync', t2: 'in-sync', t3: 'in-sync' });
    const b = await fwgen(['backups', '--host', 't1', '--json']);
    expect(b.code, b.stderr).toBe(0);
    const doc = await fwgen(['doctor', '--host', 't1']);
    expect(doc.stdout).toContain(
      `t1 (role web, root@${NET}.11 (web-t1) via root@${BASTION} (bastion) (from ssh_config ProxyJump))`,
    );
    expect(doc.stdout).toContain(
      `ok    ssh: reachable at ${NET}.11 (ssh_config alias web-t1) via root@${BASTION} (bastion)`,
    );
    expect(doc.stdout).toMatch(/ok {4}authentication: logged in as root with .*id_ed25519/);
    // web-t1 is an alias, not a DNS name: doctor checks its HostName, not the alias.
    expect(doc.stdout).not.toMatch(/ssh\.host resolves/);
  }, 90_000);

  it('rollback through the bastion restores the previous rules', async () => {
    const first = await lab.execOk('t1', ['cat', '/etc/iptables.up.rules']);
    writeInventory(inventory({ ports: 'tcp/8080' }));
    await render();
    expect((await fwgen(['ship', '--host', 't1', '--json', '--timeout', '5'])).code).toBe(0);
    expect(await lab.execOk('t1', ['cat', '/etc/iptables.up.rules'])).toContain('--dport 8080');
    const r = await fwgen(['rollback', '--host', 't1', '--json', '--timeout', '5']);
    expect(r.code, r.stderr).toBe(0);
    expect(byHost(r, 'outcome')).toEqual({ t1: 'applied' });
    expect(await lab.execOk('t1', ['cat', '/etc/iptables.up.rules'])).toBe(first);
    writeInventory(inventory());
    await render();
  }, 90_000);

  it('--ssh-config none ignores ~/.ssh/config: the targets are then unreachable', async () => {
    const r = await fwgen(['status', '--json', '--ssh-config', 'none', '--connect-timeout', '2', '--host', 't2']);
    expect(r.code).toBe(1);
    expect(byHost(r, 'state')).toEqual({ t2: 'unreachable' });
  }, 60_000);

  it('ssh.jump in the inventory works without ssh_config; a missing --ssh-config file is bad input', async () => {
    writeInventory(
      inventory({
        ssh: `{ jump: "root@${BASTION}", identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }`,
      }),
    );
    await render();
    const before = await accepted('bastion');
    const r = await fwgen(['ship', '--json', '--ssh-config', 'none', '--host', 't2', 't3']);
    expect(r.code, r.stderr).toBe(0);
    expect(byHost(r, 'outcome')).toEqual({ t2: 'unchanged', t3: 'unchanged' });
    expect((await accepted('bastion')) - before).toBe(1);
    const bad = await fwgen(['status', '--ssh-config', join(project, 'no-such-config')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no-such-config does not exist');
    writeInventory(inventory());
    await render();
  }, 60_000);

  it('a target that drops the bastion fails within --connect-timeout, naming the bastion', async () => {
    const rule = ['PREROUTING', '-s', BASTION, '-p', 'tcp', '--dport', '22', '-j', 'DROP'];
    await lab.execOk('t3', ['iptables', '-t', 'raw', '-I', ...rule]);
    try {
      const started = Date.now();
      const r = await fwgen(['status', '--json', '--host', 't3', '--connect-timeout', '2']);
      expect(r.code).toBe(1);
      expect(byHost(r, 'state')).toEqual({ t3: 'unreachable' });
      expect(r.results[0].reason).toContain(
        `jump host root@${BASTION} (bastion) timed out connecting to root@${NET}.13`,
      );
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      await lab.execOk('t3', ['iptables', '-t', 'raw', '-D', ...rule]);
    }
  }, 60_000);

  it('a real ssh-agent holding an encrypted key works; without the agent the host fails clearly', async () => {
    const enc = join(project, 'enc_key');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret-pass', '-C', 'enc', '-f', enc]);
    const pub = readFileSync(`${enc}.pub`, 'utf8');
    for (const h of ['bastion', ...TARGETS])
      appendFileSync(join(lab.hosts.get(h)!.rootHome, '.ssh', 'authorized_keys'), pub);
    const cfg = join(project, 'enc.config');
    writeFileSync(
      cfg,
      `Host bastion
  HostName ${BASTION}
  User root
  IdentityFile ${enc}
  IdentitiesOnly yes
  UserKnownHostsFile ${lab.knownHostsPath}
Host ${NET}.*
  ProxyJump bastion
  User root
  IdentityFile ${enc}
  IdentitiesOnly yes
  UserKnownHostsFile ${lab.knownHostsPath}
`,
    );
    const sock = join(project, 'agent.sock');
    const agent = spawnSync('ssh-agent', ['-a', sock, '-s'], { encoding: 'utf8' });
    const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]);
    try {
      const askpass = join(project, 'askpass.sh');
      writeFileSync(askpass, '#!/bin/sh\necho secret-pass\n', { mode: 0o700 });
      const add = spawnSync('ssh-add', [enc], {
        env: { ...process.env, SSH_AUTH_SOCK: sock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
        encoding: 'utf8',
      });
      expect(add.status, add.stderr).toBe(0);
      const ok = await fwgen(['status', '--json', '--ssh-config', cfg, '--host', 't2', 't3'], { SSH_AUTH_SOCK: sock });
      expect(ok.code, ok.stderr + ok.stdout).toBe(0);
      expect(byHost(ok, 'state')).toEqual({ t2: 'in-sync', t3: 'in-sync' });
      const no = await fwgen(['status', '--json', '--ssh-config', cfg, '--host', 't2']);
      expect(no.code).toBe(1);
      expect(no.results[0].reason ?? no.stdout).toContain(`${enc} is encrypted and no ssh-agent is running`);
    } finally {
      if (pid > 0) process.kill(pid);
    }
  }, 60_000);

  it('a changed bastion host key fails every host behind it, saying which hop', async () => {
    const keyFile = join(lab.hosts.get('bastion')!.etcDir, 'ssh', 'ssh_host_ed25519_key');
    rmSync(keyFile);
    rmSync(`${keyFile}.pub`);
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    await lab.stopSshd('bastion');
    await lab.startSshd('bastion');
    const r = await fwgen(['status', '--json']);
    expect(r.code).toBe(1);
    expect(byHost(r, 'state')).toEqual({ t1: 'unreachable', t2: 'unreachable', t3: 'unreachable' });
    for (const x of r.results)
      expect(x.reason).toMatch(
        new RegExp(
          `jump host root@${BASTION.replace(/\./g, '\\.')} \\(bastion\\): host key for ${BASTION.replace(/\./g, '\\.')} does not match`,
        ),
      );
    const doc = await fwgen(['doctor', '--host', 't2']);
    expect(doc.stdout).toMatch(/FAIL {2}host key: jump host root@.*does not match.*fix: on jump host root@/);
  }, 60_000);
});
