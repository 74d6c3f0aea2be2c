import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROLLER, cleanupStaleLabs, createLab, labPrereqs, type Lab } from '../support/lab.js';

// Self-test of the namespace lab. Uses its own subnet so it can run next to other e2e files.
const NET4 = '198.18.250';
const NET6 = '2001:db8:250:';

function run(argv: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : 1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('network namespace lab', { timeout: 60_000 }, () => {
  let lab: Lab | undefined;
  const L = (): Lab => {
    if (!lab) throw new Error('lab was not created');
    return lab;
  };

  beforeAll(async () => {
    const missing = labPrereqs();
    if (missing.length) throw new Error(`lab prerequisites missing: ${missing.join(', ')}`);
    lab = await createLab({
      hosts: [
        { name: 'a', ipv4: `${NET4}.11`, ipv6: `${NET6}:11`, sshd: true, listen: [80, 2222] },
        { name: 'b', ipv4: `${NET4}.12`, ipv6: `${NET6}:12`, listen: [80] },
        { name: 'c', ipv4: `${NET4}.13`, extraIpv4: [`${NET4}.113`] },
        { name: 'd', ipv4: `${NET4}.14`, privateFs: true, ifupdown: false },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('has all prerequisites', () => {
    expect(labPrereqs()).toEqual([]);
  });

  it('hosts with a private file system have ifupdown (a stub ifup) unless told not to; the machine is untouched', async () => {
    const l = L();
    expect(await l.execOk('a', ['sh', '-c', 'command -v ifup && ifup'])).toBe('/usr/local/sbin/ifup\n');
    expect((await l.exec('d', ['sh', '-c', 'command -v ifup'])).code).not.toBe(0);
    expect(existsSync('/usr/local/sbin/ifup')).toBe(false);
  });

  it('probes listening and closed ports', async () => {
    const l = L();
    expect(await l.probe('c', 'a', 80)).toBe('open');
    expect(await l.probe('c', `${NET4}.11`, 2222)).toBe('open');
    expect(await l.probe('c', `${NET4}.11`, 81)).toBe('refused');
    expect(await l.probe('a', `${NET4}.12`, 80)).toBe('open');
    expect(await l.probe(CONTROLLER, `${NET4}.11`, 80)).toBe('open');
    expect(await l.probe(CONTROLLER, `${NET4}.13`, 80)).toBe('refused');
  });

  it('sees iptables REJECT as refused and DROP as timeout', async () => {
    const l = L();
    await l.execOk('a', ['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-j', 'REJECT']);
    expect(await l.probe('c', 'a', 80)).toBe('refused');
    // ICMP rejections are seen at once (well below the 1s SYN retransmit), also many in parallel
    const t1 = Date.now();
    const many = await Promise.all(
      Array.from({ length: 20 }, (_, i) => l.probe(i % 2 ? 'c' : CONTROLLER, 'a', 80, { timeoutMs: 5000 })),
    );
    expect(many).toEqual(Array(20).fill('refused'));
    expect(Date.now() - t1).toBeLessThan(4000);
    expect(await l.probe('c', 'a', 2222)).toBe('open');
    await l.execOk('a', ['iptables', '-F', 'INPUT']);
    await l.execOk('a', ['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-j', 'DROP']);
    const t0 = Date.now();
    expect(await l.probe('c', 'a', 80, { timeoutMs: 700 })).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await l.probe(CONTROLLER, 'a', 80, { timeoutMs: 700 })).toBe('timeout');
    await l.execOk('a', ['iptables', '-F', 'INPUT']);
    expect(await l.probe('c', 'a', 80)).toBe('open');
    // the root namespace's ruleset is untouched
    const rootRules = await run(['iptables', '-S', 'INPUT']);
    expect(rootRules.stdout).not.toContain('--dport 80');
  });

  it('can bind a chosen source address', async () => {
    const l = L();
    await l.execOk('b', ['iptables', '-A', 'INPUT', '-s', `${NET4}.113`, '-p', 'tcp', '--dport', '80', '-j', 'REJECT']);
    expect(await l.probe('c', 'b', 80, { source: `${NET4}.113` })).toBe('refused');
    expect(await l.probe('c', 'b', 80, { source: `${NET4}.13` })).toBe('open');
    expect(await l.probe('c', 'b', 80)).toBe('open');
    await expect(l.probe('c', 'b', 80, { source: `${NET4}.99` })).rejects.toThrow(/Cannot assign/);
    await l.execOk('b', ['iptables', '-F', 'INPUT']);
    expect(await l.probe('c', 'b', 80, { source: `${NET4}.113` })).toBe('open');
  });

  it('works over IPv6', async () => {
    const l = L();
    const v6 = `${NET6}:12`;
    expect(l.controller?.ipv6).toBeTruthy();
    expect(await l.probe(CONTROLLER, v6, 80)).toBe('open');
    expect(await l.probe(CONTROLLER, v6, 81)).toBe('refused');
    expect(await l.probe('b', v6, 80)).toBe('open');
    await l.execOk('b', ['ip6tables', '-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-j', 'REJECT']);
    expect(await l.probe(CONTROLLER, v6, 80, { timeoutMs: 800 })).toBe('refused');
    expect(await l.probe('b', v6, 80, { timeoutMs: 800 })).toBe('refused');
    await l.execOk('b', ['ip6tables', '-F', 'INPUT']);
    await l.execOk('b', ['ip6tables', '-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-j', 'DROP']);
    expect(await l.probe(CONTROLLER, v6, 80, { timeoutMs: 700 })).toBe('timeout');
    expect(await l.probe(CONTROLLER, `${NET4}.12`, 80)).toBe('open');
    await l.execOk('b', ['ip6tables', '-F', 'INPUT']);
    expect(await l.probe(CONTROLLER, v6, 80)).toBe('open');
  });

  it('runs sshd with a private /etc shared by lab.exec', async () => {
    const l = L();
    const a = l.hosts.get('a')!;
    expect(a.hostKeyPub).toMatch(/^ssh-ed25519 /);
    const marker = `marker-${l.id}-a-${Date.now()}`;
    writeFileSync(`${a.etcDir}/hostname-lab-marker`, `${marker}\n`);
    expect(existsSync('/etc/hostname-lab-marker')).toBe(false);

    const ssh = await run([
      'ssh',
      '-i',
      l.sshKey.privatePath,
      '-o',
      `UserKnownHostsFile=${l.knownHostsPath}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      `root@${a.ipv4}`,
      'cat /etc/hostname-lab-marker; hostname',
    ]);
    expect(ssh.stderr).toBe('');
    expect(ssh.stdout).toBe(`${marker}\na\n`);
    expect(ssh.code).toBe(0);

    expect(await l.execOk('a', ['cat', '/etc/hostname-lab-marker'])).toBe(`${marker}\n`);
    // a write through ssh is visible to lab.exec and in etcDir
    await run(['ssh', ...l.sshArgs('a'), 'echo from-ssh > /etc/iptables.up.rules']);
    expect(await l.execOk('a', ['cat', '/etc/iptables.up.rules'])).toBe('from-ssh\n');
    expect(existsSync(`${a.etcDir}/iptables.up.rules`)).toBe(true);
    // iptables changes over ssh land in the host's netns
    await run(['ssh', ...l.sshArgs('a'), 'iptables -A INPUT -p tcp --dport 2222 -j REJECT']);
    expect(await l.probe('c', 'a', 2222)).toBe('refused');
    await l.execOk('a', ['iptables', '-F', 'INPUT']);
    // ssh over IPv6 (known_hosts lists the v6 address too)
    const ssh6 = await run(['ssh', ...l.sshArgs('a', { ipv6: true }), 'hostname']);
    expect(ssh6.stdout).toBe('a\n');
    // stdin and exit codes
    const r = await l.exec('a', ['sh', '-c', 'cat; exit 3'], { input: 'hello' });
    expect(r).toMatchObject({ code: 3, stdout: 'hello' });
  });

  it('stops and restarts sshd', async () => {
    const l = L();
    await l.stopSshd('a');
    expect(await l.probe('c', 'a', 22)).toBe('refused');
    const down = await run(['ssh', ...l.sshArgs('a'), 'true']);
    expect(down.code).not.toBe(0);
    expect(await l.execOk('a', ['cat', '/etc/hostname'])).toBe('a\n'); // mount ns survives sshd
    await l.startSshd('a');
    expect(await l.probe('c', 'a', 22)).toBe('open');
    const up = await run(['ssh', ...l.sshArgs('a'), 'cat /etc/hostname']);
    expect(up.stdout).toBe('a\n');
  });

  it('removes everything on destroy', async () => {
    const l = L();
    const { id, prefix, dir } = l;
    const nsBefore = (await run(['ip', 'netns', 'list'])).stdout;
    expect(nsBefore).toContain(`${prefix}-${id}-a`);
    await l.destroy();
    const nsAfter = (await run(['ip', 'netns', 'list'])).stdout;
    expect(nsAfter).not.toContain(`${prefix}-${id}`);
    expect(readdirSync('/sys/class/net')).not.toContain(`${prefix}b-${id}`);
    expect(existsSync(dir)).toBe(false);
    const procs = await run(['pgrep', '-f', dir]);
    expect(procs.stdout).toBe('');
  });
});

describe('stale lab cleanup', { timeout: 60_000 }, () => {
  it('removes namespaces, processes, links and dirs of a crashed lab', async () => {
    expect(labPrereqs()).toEqual([]);
    const prefix = 'fwst';
    const id = 'dead';
    const id2 = 'beef';
    // fake a lab whose owner died: temp dir with owner.json naming a dead pid
    const dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}lab-${id}-`));
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    writeFileSync(path.join(dir, 'owner.json'), JSON.stringify({ pid: dead.pid, start: '1' }));
    // a live lab (owned by us) with another id must survive
    const liveDir = mkdtempSync(path.join(os.tmpdir(), `${prefix}lab-${id2}-`));
    const start = (await run(['sh', '-c', `cut -d' ' -f22 /proc/${process.pid}/stat`])).stdout.trim();
    writeFileSync(path.join(liveDir, 'owner.json'), JSON.stringify({ pid: process.pid, start }));
    try {
      for (const ns of [`${prefix}-${id}`, `${prefix}-${id}-h1`, `${prefix}-${id2}`]) {
        expect((await run(['ip', 'netns', 'add', ns])).code).toBe(0);
      }
      expect(
        (
          await run([
            'ip',
            'link',
            'add',
            `${prefix}b-${id}`,
            'type',
            'veth',
            'peer',
            'name',
            'ctl0',
            'netns',
            `${prefix}-${id}`,
          ])
        ).code,
      ).toBe(0);
      const sleeper = spawn('ip', ['netns', 'exec', `${prefix}-${id}-h1`, 'sleep', '300'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 200));
      const cleaned = await cleanupStaleLabs(prefix);
      expect(cleaned).toEqual([id]);
      const nsList = (await run(['ip', 'netns', 'list'])).stdout;
      expect(nsList).not.toContain(`${prefix}-${id}`);
      expect(nsList).toContain(`${prefix}-${id2}`);
      expect(readdirSync('/sys/class/net')).not.toContain(`${prefix}b-${id}`);
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(liveDir)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(sleeper.exitCode !== null || sleeper.signalCode !== null).toBe(true);
    } finally {
      await run(['ip', 'netns', 'del', `${prefix}-${id2}`]);
      await run(['rm', '-rf', liveDir, dir]);
      await cleanupStaleLabs(prefix);
    }
  });
});
