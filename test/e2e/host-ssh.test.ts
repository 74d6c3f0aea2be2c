/**
 * Issue 16 on real sshd hosts, through the CLI:
 * - finding 6: a host whose step never answers, and one whose step floods its output, fail with a
 *   clear reason within the deadline, without filling the controller's memory; the run goes on.
 * - finding 12: a host whose step prints terminal escapes: they are shown escaped, never sent raw.
 * - finding 8: an sshd offering only SHA-1 `ssh-rsa` host key signatures is refused, saying so; the
 *   same RSA key with rsa-sha2-512 works.
 * - finding 10: a DOCKER-BACKDOOR chain accepting everything, hooked first in INPUT, opens a port
 *   fwgen closes: `status` warns, and exits 1 with --strict.
 * - finding 3: `HostName *` in ssh_config, and ssh.known_hosts at an authorized_keys file, are
 *   refused with --accept-new before any host is touched; the files stay as they were.
 * A host misbehaves through a forced command in root's authorized_keys (remote/*.sh are unchanged).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, parseJson, type HostRow } from '../support/run-cli.js';
import { CONTROLLER, createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.161';
// A terminal that printed this raw would erase the line, go up one and show a green "in-sync".
const ESCAPES = String.raw`\033[2K\033[1A\033[32m in-sync\033[0m`;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** Peak resident memory of the fwgen process, in KiB (GNU time). */
  maxRssKiB: number;
}

interface StatusRow {
  host: string;
  state: string;
  reason?: string;
  bypass?: string[];
}

/** `fwgen ARGS` under GNU time (for its peak memory), killed after 120 s. */
function fwgen(cwd: string, args: string[]): Promise<Run> {
  const t0 = Date.now();
  return new Promise((done) => {
    const { SSH_AUTH_SOCK: _agent, ...env } = process.env;
    const child = spawn('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, CLI, ...args], { cwd, env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      const rss = /maxrss=(\d+)\s*$/.exec(stderr);
      done({
        code: code ?? -1,
        stdout,
        stderr: stderr.replace(/maxrss=\d+\s*$/, ''),
        ms: Date.now() - t0,
        maxRssKiB: Number(rss?.[1] ?? -1),
      });
    });
  });
}

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('SSH and host output: deadlines, caps, escapes, SHA-1 host keys, backdoor hooks, names', () => {
  let lab: Lab;
  let project: string;
  let rsaKnownHosts: string;
  const sshdConfigs = new Map<string, string>();

  const inventory = () => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
roles:
  web:
    public: true
    hosts:
      ok: ${NET}.11
      hang: ${NET}.12
      flood: ${NET}.13
      escape: ${NET}.14
      backdoor: ${NET}.16
  legacy:
    hosts:
      rsa: { address: ${NET}.15, ssh: { known_hosts: ${rsaKnownHosts} } }
`;
  const status = async (...args: string[]) => {
    const r = await fwgen(project, ['status', '--json', '--connect-timeout', '5', ...args]);
    const rows = parseJson<StatusRow[]>(r.stdout, []);
    return { ...r, rows: Object.fromEntries(rows.map((x) => [x.host, x])) };
  };

  /** Root's key on `host` runs `/root/wrap.sh`: the read step does `misbehave`, anything else runs as sent. */
  const misbehave = async (host: string, misbehave: string) => {
    const h = lab.hosts.get(host)!;
    writeFileSync(
      join(h.rootHome, 'wrap.sh'),
      `case $SSH_ORIGINAL_COMMAND in *"' fwgen-read '"*) ${misbehave} ;; esac\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n`,
    );
    writeFileSync(
      join(h.rootHome, '.ssh/authorized_keys'),
      `command="/bin/sh /root/wrap.sh" ${lab.sshKey.publicKey.trim()}\n`,
    );
  };
  const sshdWith = async (host: string, extra: string) => {
    const h = lab.hosts.get(host)!;
    const file = join(h.etcDir, 'ssh/sshd_config_lab');
    if (!sshdConfigs.has(host)) sshdConfigs.set(host, readFileSync(file, 'utf8'));
    writeFileSync(file, sshdConfigs.get(host)! + extra);
    await lab.stopSshd(host);
    await lab.startSshd(host);
  };

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwhs',
      hosts: [
        { name: 'ok', ipv4: `${NET}.11`, sshd: true },
        { name: 'hang', ipv4: `${NET}.12`, sshd: true },
        { name: 'flood', ipv4: `${NET}.13`, sshd: true },
        { name: 'escape', ipv4: `${NET}.14`, sshd: true },
        { name: 'rsa', ipv4: `${NET}.15`, sshd: true },
        { name: 'backdoor', ipv4: `${NET}.16`, sshd: true, listen: [5432] },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-host-ssh-'));
    mkdirSync(join(project, 'inventory'));
    rsaKnownHosts = join(project, 'rsa_known_hosts');
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory());
    expect((await fwgen(project, ['render'])).code).toBe(0);
    await misbehave('hang', 'exec sleep 100000');
    await misbehave('flood', 'exec yes');
    await misbehave('escape', `printf 'fwgen: the read failed${ESCAPES}\\n' >&2; exit 1`);
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  describe('finding 6: per-step deadline and output cap', () => {
    it('status: the stuck host and the flooding host fail with their reason within the deadline; the others are read', async () => {
      const r = await status('--step-timeout', '3', '--host', 'ok', 'hang', 'flood');
      expect(r.code).toBe(1);
      expect(r.rows.ok.state).toBe('never-shipped');
      expect(r.rows.hang).toMatchObject({
        state: 'unreachable',
        reason: 'the read step did not finish within 3 s (--step-timeout); the host is stuck or too slow',
      });
      expect(r.rows.flood).toMatchObject({
        state: 'unreachable',
        reason: 'the read step sent more than 64 MiB of output; stopped reading it (a broken or hostile host?)',
      });
      expect(r.ms).toBeLessThan(20_000);
      // 64 MiB kept at most, then dropped: the controller stays far from what `yes` would fill.
      expect(r.maxRssKiB).toBeGreaterThan(0);
      expect(r.maxRssKiB).toBeLessThan(400 * 1024);
    });

    it('ship: the stuck and flooding hosts fail, the other one is shipped', async () => {
      const r = await fwgen(project, [
        ...['ship', '--json', '--role', 'web', '--timeout', '5', '--connect-timeout', '5', '--step-timeout', '3'],
        ...['--host', 'ok', 'hang', 'flood'],
      ]);
      const hosts = parseJson<{ hosts: HostRow[] }>(r.stdout, { hosts: [] }).hosts;
      const rows = Object.fromEntries(hosts.map((x) => [x.host, x]));
      expect(r.code, r.stderr).toBe(1);
      expect(rows.ok.outcome).toBe('applied');
      expect(rows.hang).toMatchObject({
        outcome: 'failed',
        reason: expect.stringMatching(/did not finish within 3 s/),
      });
      expect(rows.flood).toMatchObject({ outcome: 'failed', reason: expect.stringMatching(/more than 64 MiB/) });
      expect(r.ms).toBeLessThan(30_000);
    });
  });

  describe('finding 12: what a host prints is escaped', () => {
    it('status and ship show the escape sequences as text, and print no control character', async () => {
      const s = await status('--host', 'escape');
      expect(s.rows.escape.reason).toBe(
        'could not read the rules: the read failed\\x1b[2K\\x1b[1A\\x1b[32m in-sync\\x1b[0m',
      );
      expect(s.stdout + s.stderr).not.toMatch(CONTROL);
      const plain = await fwgen(project, ['status', '--connect-timeout', '5', '--host', 'escape']);
      expect(plain.stdout).toContain('\\x1b[32m in-sync');
      expect(plain.stdout + plain.stderr).not.toMatch(CONTROL);
      const ship = await fwgen(project, ['ship', '--role', 'web', '--timeout', '5', '--host', 'escape']);
      expect(ship.code).toBe(1);
      expect(ship.stdout + ship.stderr).toContain('the read failed\\x1b[2K');
      expect(ship.stdout + ship.stderr).not.toMatch(CONTROL);
      expect(readFileSync(join(project, '.fwgen/deploy.log'), 'utf8')).not.toMatch(CONTROL);
    });
  });

  describe('finding 8: SHA-1 ssh-rsa host key signatures', () => {
    beforeAll(async () => {
      const h = lab.hosts.get('rsa')!;
      const key = join(h.etcDir, 'ssh/ssh_host_rsa_key');
      await new Promise((done) =>
        spawn('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', key]).on('close', done),
      );
      const pub = readFileSync(`${key}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
      writeFileSync(rsaKnownHosts, `${NET}.15 ${pub}\n`);
    });

    it('an sshd offering only ssh-rsa is refused, and the message says why', async () => {
      await sshdWith('rsa', 'HostKey /etc/ssh/ssh_host_rsa_key\nHostKeyAlgorithms ssh-rsa\n');
      const r = await status('--host', 'rsa');
      expect(r.rows.rsa.state).toBe('unreachable');
      expect(r.rows.rsa.reason).toMatch(
        /offers only ssh-rsa host key signatures \(SHA-1\), which fwgen refuses as OpenSSH does since 8\.8; let the host's sshd offer rsa-sha2-512 or rsa-sha2-256/,
      );
    });

    it('the same RSA host key with rsa-sha2-512 signatures is accepted', async () => {
      await sshdWith('rsa', 'HostKey /etc/ssh/ssh_host_rsa_key\nHostKeyAlgorithms rsa-sha2-512\n');
      const r = await status('--host', 'rsa');
      expect(r.rows.rsa.state, r.rows.rsa.reason).toBe('never-shipped');
    });
  });

  describe('finding 10: a backdoor hook ahead of fwgen', () => {
    it("status warns (exit 0: in sync), and --strict exits 1, while the backdoor opens a port fwgen's rules close", async () => {
      const shipped = await fwgen(project, ['ship', '--role', 'web', '--timeout', '5', '--host', 'backdoor']);
      expect(shipped.code, shipped.stderr).toBe(0);
      expect(await lab.probe(CONTROLLER, `${NET}.16`, 5432)).toBe('refused');
      await lab.execOk('backdoor', [
        'sh',
        '-c',
        'iptables -N DOCKER-BACKDOOR && iptables -A DOCKER-BACKDOOR -j ACCEPT && iptables -I INPUT 1 -j DOCKER-BACKDOOR',
      ]);
      expect(await lab.probe(CONTROLLER, `${NET}.16`, 5432)).toBe('open');
      const warned = await fwgen(project, ['status', '--connect-timeout', '5', '--host', 'backdoor']);
      expect(warned.code, warned.stderr).toBe(0);
      expect(warned.stdout).toMatch(/^backdoor\s+web\s+in-sync\s.*foreign: DOCKER-BACKDOOR/m);
      expect(warned.stdout).toContain(
        "    warning: -A INPUT -j DOCKER-BACKDOOR (ahead of fwgen's hook) can accept new connections that fwgen's rules reject: -A DOCKER-BACKDOOR -j ACCEPT",
      );
      expect(warned.stderr).toMatch(/warning: on backdoor, another tool's chain ahead of fwgen's in INPUT/);
      const strict = await fwgen(project, ['status', '--strict', '--connect-timeout', '5', '--host', 'backdoor']);
      expect(strict.code).toBe(1);
      expect(strict.stderr).toMatch(
        /1 of 1 host\(s\) in sync, but with a foreign chain that can get around fwgen's rules/,
      );
    });
  });

  describe('finding 3: names and known_hosts with --accept-new', () => {
    it('`HostName *` in ssh_config is refused (exit 2) before any host is touched; known_hosts unchanged', async () => {
      const cfg = join(project, 'ssh_config');
      writeFileSync(cfg, `Host ${NET}.11\n  HostName *\n`);
      const before = readFileSync(lab.knownHostsPath, 'utf8');
      const r = await fwgen(project, ['status', '--accept-new', '--ssh-config', cfg, '--host', 'ok']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/HostName "\*" for 198\.18\.161\.11 is neither an IP address nor a DNS name/);
      expect(readFileSync(lab.knownHostsPath, 'utf8')).toBe(before);
    });

    it('ssh.known_hosts at an authorized_keys file is refused (exit 2), the file unchanged', async () => {
      const ak = join(project, 'home/.ssh/authorized_keys');
      mkdirSync(join(project, 'home/.ssh'), { recursive: true });
      writeFileSync(ak, `${lab.sshKey.publicKey.trim()}\n`);
      const inv = join(project, 'inventory/ak.yaml');
      writeFileSync(inv, inventory().replace(`known_hosts: ${lab.knownHostsPath}`, `known_hosts: ${ak}`));
      const r = await fwgen(project, ['status', '--accept-new', '-i', inv, '--host', 'ok']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${ak} is an authorized_keys file, not a known_hosts file`);
      // Under another name, its lines give it away.
      const keys = join(project, 'home/.ssh/keys');
      writeFileSync(keys, `restrict ${lab.sshKey.publicKey.trim()}\n`);
      writeFileSync(inv, inventory().replace(`known_hosts: ${lab.knownHostsPath}`, `known_hosts: ${keys}`));
      const r2 = await fwgen(project, ['status', '--accept-new', '-i', inv, '--host', 'ok']);
      expect(r2.code).toBe(2);
      expect(r2.stderr).toContain(`${keys}:1: not a known_hosts entry`);
      expect(readFileSync(ak, 'utf8')).toBe(`${lab.sshKey.publicKey.trim()}\n`);
      expect(readFileSync(keys, 'utf8')).toBe(`restrict ${lab.sshKey.publicKey.trim()}\n`);
    });
  });
});
