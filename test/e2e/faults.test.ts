/**
 * Faults during `fwgen ship` against real sshd hosts (issue 8): a slow iptables-restore, a full disk,
 * a link dropped mid-ship, an immutable rules file, a killed controller. Each must leave the host with
 * its old or its new rules, in the kernel and on disk, report that truthfully, and leave no lock.
 *
 * The lab's folder is put on the ext4 temp folder (FWLAB_TMPDIR) rather than /dev/shm, so that each
 * host's private /etc supports `chattr +i`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { CLI, parseJson, runFwgen, runFwgenHosts } from '../support/run-cli.js';

const NET = '198.18.120';
const NET6 = '2001:db8:120:';
const DIR = '/etc/fwgen';
const RULES = `${DIR}/iptables.up.rules`;
const RULES6 = `${DIR}/ip6tables.up.rules`;

interface Result {
  host: string;
  outcome: string;
  reason: string;
}

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('ship under faults: every host ends old or new, reported truthfully, unlocked', () => {
  let lab: Lab;
  let project: string;
  let port = 8000;

  const inventory = (p: number) => `
defaults:
  interface: eth1
  rules_path: ${RULES}
  rules_path_unusual: true         # /etc/fwgen: a folder of its own
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28, "${NET6}:/64"]
trust: none
roles:
  app:
    ports: [tcp/${p}]
    hosts:
      h1: [${NET}.11, "${NET6}:11"]
      h2: [${NET}.12, "${NET6}:12"]
`;
  const render = async (p: number) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(p));
    const r = await runFwgen(project, ['render']);
    expect(r.code, r.stderr).toBe(0);
  };
  const fwgen = (args: string[]) => runFwgenHosts(project, args);
  const ship = (timeout: number, ...args: string[]) =>
    fwgen(['ship', '--json', '--timeout', String(timeout), '--connect-timeout', '3', ...args]);
  const sh = (host: string, script: string) => lab.execOk(host, ['sh', '-c', script]);
  const fwgenLines = (save: string) =>
    save
      .split('\n')
      .filter((l) => /FWGEN|fwgen/.test(l))
      .map((l) => l.replace(/\[\d+:\d+\]$/, ''));
  /** What the host runs and has on disk, as far as fwgen is concerned. */
  const snapshot = async (host: string) => ({
    live4: fwgenLines(await lab.execOk(host, ['iptables-save', '-t', 'filter'])),
    live6: fwgenLines(await lab.execOk(host, ['ip6tables-save', '-t', 'filter'])),
    file4: await sh(host, `cat ${RULES} 2>/dev/null || echo none`),
    file6: await sh(host, `cat ${RULES6} 2>/dev/null || echo none`),
  });
  const rendered = (family: 4 | 6) =>
    readFileSync(join(project, 'rendered/app', family === 4 ? 'iptables.up.rules' : 'ip6tables.up.rules'), 'utf8');
  const leftovers = (host: string) =>
    sh(host, `ls ${DIR} | grep 'fwgen-lock\\|fwgen-armed\\|fwgen-stage\\|fwgen-applying\\|fwgen-deadman' || true`);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const waitHost = async (host: string, test: string, ms: number): Promise<number> => {
    const started = Date.now();
    while ((await lab.exec(host, ['sh', '-c', test])).code !== 0) {
      if (Date.now() - started > ms) throw new Error(`timed out waiting on ${host} for: ${test}`);
      await sleep(50);
    }
    return Date.now() - started;
  };
  /** Makes the host's own `NAME` (through its /etc/alternatives) sleep before every real restore. */
  const slowRestore = async (host: string, name: string, seconds: number): Promise<() => Promise<void>> => {
    const link = `/etc/alternatives/${name}`;
    const real = (await lab.execOk(host, ['readlink', link])).trim();
    const wrapper = `#!/bin/sh\nfor a in "$@"; do [ "$a" = --test ] && exec ${real} "$@"; done\nsleep ${seconds}\nexec ${real} "$@"\n`;
    await lab.execOk(host, ['sh', '-c', `rm -f ${link} && cat > ${link} && chmod 755 ${link}`], { input: wrapper });
    return async () => void (await lab.execOk(host, ['ln', '-sfn', real, link]));
  };
  const rolledBackLog = (host: string) => sh(host, `cat ${RULES}.fwgen-rollbacks 2>/dev/null || true`);

  beforeAll(async () => {
    // ext4, unlike /dev/shm: `chattr +i` works on the hosts' private /etc.
    process.env.FWLAB_TMPDIR ??= tmpdir();
    lab = await createLab({
      prefix: 'fwf',
      hosts: [
        { name: 'h1', ipv4: `${NET}.11`, ipv6: `${NET6}:11`, sshd: true },
        { name: 'h2', ipv4: `${NET}.12`, ipv6: `${NET6}:12`, sshd: true },
      ],
    });
    for (const h of ['h1', 'h2']) await sh(h, `mkdir -p ${DIR}`);
    project = mkdtempSync(join(tmpdir(), 'fwgen-faults-'));
    mkdirSync(join(project, 'inventory'));
  }, 180_000);

  afterAll(async () => {
    for (const h of ['h1', 'h2'])
      await lab?.exec(h, ['sh', '-c', `chattr -i ${RULES} 2>/dev/null; umount ${DIR} 2>/dev/null; true`]);
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  // Each test starts from a fleet that runs the rules of one port, and ships the next port.
  let old: Record<string, Awaited<ReturnType<typeof snapshot>>> = {};
  beforeEach(async () => {
    port++;
    await render(port);
    const r = await ship(5, '--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    old = { h1: await snapshot('h1'), h2: await snapshot('h2') };
    expect(old.h1.file4).toBe(rendered(4));
    expect(old.h1.live6.join('\n')).toContain(`--dport ${port}`);
    port++;
    await render(port);
  }, 60_000);

  it('an ip6tables-restore slower than --timeout: the switch waits for it, then both families are old; rolled-back', async () => {
    const restore = await slowRestore('h1', 'ip6tables-restore', 4);
    try {
      const r = await ship(2, '--host', 'h1');
      expect(r.code).toBe(1);
      expect(r.results).toEqual([
        expect.objectContaining({
          host: 'h1',
          outcome: 'rolled-back',
          reason: expect.stringMatching(/dead-man switch fired during the apply/),
        }),
      ]);
      // The report comes once the host has undone: it is true the moment it is printed.
      expect(await snapshot('h1')).toEqual(old.h1);
      expect(await leftovers('h1')).toBe('');
      expect(await rolledBackLog('h1')).toMatch(/rolled back ship .*: not confirmed within 2s/);
    } finally {
      await restore();
    }
  }, 90_000);

  it('a full disk (a 64k tmpfs over the rules folder, nearly filled): failed with the reason, nothing applied', async () => {
    // mode=0755: a tmpfs is 1777 by default, a rules folder that every step refuses (remote/lib.sh).
    await sh('h1', `mount -t tmpfs -o size=64k,mode=0755 fwgen-full ${DIR}`);
    try {
      // The old rules, on the small file system.
      await render(port - 1);
      expect((await ship(5, '--host', 'h1')).results[0]).toMatchObject({ outcome: 'applied' });
      await render(port);
      const before = await snapshot('h1');
      const avail = Number((await sh('h1', `df -B1 --output=avail ${DIR} | tail -n 1`)).trim());
      // Room for the lock (a few one-page files), not for the upload.
      await sh('h1', `head -c ${Math.max(0, avail - 20 * 1024)} /dev/zero > ${DIR}/filler; true`);
      const r = await ship(5, '--host', 'h1');
      expect(r.code).toBe(1);
      expect(r.results[0]).toMatchObject({ host: 'h1', outcome: 'failed', reason: expect.stringMatching(/disk full/) });
      expect(r.results[0].reason).toMatch(/nothing changed|could not be written/);
      expect(await snapshot('h1')).toEqual(before);
      expect(await leftovers('h1')).toBe('');
    } finally {
      await lab.exec('h1', ['umount', DIR]);
    }
  }, 90_000);

  it('the link dropped mid-ship: no crash, every host has an outcome, summary and audit log written; the host rolls back', async () => {
    const restore = await slowRestore('h1', 'iptables-restore', 3);
    await sh('h1', 'echo 1 > /proc/sys/net/ipv6/conf/eth1/keep_addr_on_down');
    try {
      const started = Date.now();
      const run = ship(3, '--role', 'all');
      await waitHost('h1', `ls ${RULES}.fwgen-armed.* >/dev/null 2>&1`, 30_000);
      await lab.execOk('h1', ['ip', 'link', 'set', 'eth1', 'down']);
      const r = await run;
      expect(Date.now() - started).toBeLessThan(120_000);
      expect(r.code).toBe(1);
      const by = Object.fromEntries(r.results.map((x) => [x.host, x]));
      expect(Object.keys(by).sort()).toEqual(['h1', 'h2']);
      expect(by.h2.outcome).toBe('applied');
      expect(by.h1.outcome).toBe('failed');
      expect(by.h1.reason).toMatch(/unreachable|connection lost|timed out/);
      // The summary is the JSON object on stdout (--json): totals and every host's row.
      expect(r.json).toMatchObject({ succeeded: false, totals: { hosts: 2, applied: 1, failed: 1 } });
      expect(r.stderr).not.toMatch(/Unhandled|TypeError|at .*\.js:\d+/);
      const log = readFileSync(join(project, '.fwgen/deploy.log'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const audit = log.pop();
      expect(audit.hosts.map((h: Result) => `${h.host} ${h.outcome}`).sort()).toEqual(['h1 failed', 'h2 applied']);
      // Each host's line was written as it finished, before the run's closing line.
      const perHost = log
        .filter((e) => e.action === 'host' && e.run === audit.run)
        .map((e) => `${e.hosts[0].host} ${e.hosts[0].outcome}`);
      expect(perHost.sort()).toEqual(['h1 failed', 'h2 applied']);
      await lab.execOk('h1', ['ip', 'link', 'set', 'eth1', 'up']);
      // The switch fired on its own: the host is old again, and unlocked.
      await waitHost('h1', `grep -q 'rolled back ship' ${RULES}.fwgen-rollbacks && ! ls ${RULES}.fwgen-lock`, 30_000);
      expect(await snapshot('h1')).toEqual(old.h1);
      expect(await leftovers('h1')).toBe('');
      expect((await snapshot('h2')).file4).toBe(rendered(4));
    } finally {
      await lab.exec('h1', ['ip', 'link', 'set', 'eth1', 'up']);
      await restore();
    }
  }, 150_000);

  it('an immutable rules file (chattr +i on ext4): rolled-back, old rules live and old file on disk, status not in-sync', async () => {
    const ch = await lab.exec('h1', ['chattr', '+i', RULES]);
    expect(ch.code, `chattr +i needs a file system that supports it: ${ch.stderr}`).toBe(0);
    try {
      const r = await ship(5, '--host', 'h1');
      expect(r.code).toBe(1);
      expect(r.results[0]).toMatchObject({
        outcome: 'rolled-back',
        reason: expect.stringMatching(/cannot replace .*iptables\.up\.rules.*previous rules restored/),
      });
      expect(await snapshot('h1')).toEqual(old.h1);
      expect(await leftovers('h1')).toBe('');
      const st = await fwgen(['status', '--host', 'h1', '--json']);
      expect(parseJson(st.stdout, [] as { state: string }[])[0]?.state).not.toBe('in-sync');
      expect(st.code).not.toBe(0);
    } finally {
      await lab.exec('h1', ['chattr', '-i', RULES]);
    }
  }, 90_000);

  it('a controller SIGKILLed after the apply: the lock says who and until when, clears with the switch; --break-lock takes it at once', async () => {
    const restore = await slowRestore('h1', 'iptables-restore', 1);
    const timeout = 5;
    const killedShip = async () => {
      const args = ['ship', '--host', 'h1', '--timeout', String(timeout), '--connect-timeout', '3'];
      const child = spawn(process.execPath, [CLI, ...args], { cwd: project, stdio: 'ignore' });
      const exited = new Promise((r) => child.on('exit', r));
      await waitHost('h1', `ls ${RULES}.fwgen-armed.* >/dev/null 2>&1`, 30_000);
      child.kill('SIGKILL');
      await exited;
      return Date.now();
    };
    try {
      const killedAt = await killedShip();
      const refused = await ship(timeout, '--host', 'h1');
      expect(refused.results[0]).toMatchObject({ outcome: 'failed' });
      // Who holds it, which run, since when (said once), and when it clears.
      const lockRe =
        /locked by another fwgen run: \S+ run \S+ pid \d+ since (\S+); it clears by (\S+) if that run is gone/;
      const m = lockRe.exec(refused.results[0].reason);
      expect(refused.results[0].reason).toContain('(or ship with --break-lock)');
      expect(m, refused.results[0].reason).not.toBeNull();
      const [since, clears] = [Date.parse(m![1]), Date.parse(m![2])];
      expect(clears - since).toBeGreaterThanOrEqual(timeout * 1000);
      expect(clears - killedAt).toBeLessThanOrEqual((timeout + 4) * 1000);
      // Without --break-lock: the switch fires after the timeout, undoes the change and frees the host.
      await waitHost('h1', `! ls -d ${RULES}.fwgen-lock >/dev/null 2>&1`, (timeout + 8) * 1000);
      expect(Date.now() - killedAt).toBeLessThanOrEqual((timeout + 6) * 1000);
      expect(await snapshot('h1')).toEqual(old.h1);
      expect(await rolledBackLog('h1')).toMatch(/rolled back ship/);
      expect((await ship(timeout, '--host', 'h1')).results[0]).toMatchObject({ outcome: 'applied' });
      const current = await snapshot('h1');

      // Killed again; --break-lock fires that run's switch at once and ships.
      port++;
      await render(port);
      await killedShip();
      const started = Date.now();
      const broke = await ship(timeout, '--host', 'h1', '--break-lock');
      expect(broke.results[0], broke.stderr).toMatchObject({ outcome: 'applied' });
      expect(Date.now() - started).toBeLessThan(timeout * 1000 + 4000);
      await sleep((timeout + 3) * 1000);
      // The killed run's switch never comes back to undo the new rules.
      const now = await snapshot('h1');
      expect(now).not.toEqual(current);
      expect(now.file4).toBe(rendered(4));
      expect(now.live4.join('\n')).toContain(`--dport ${port}`);
      expect(now.live6.join('\n')).toContain(`--dport ${port}`);
      expect(await leftovers('h1')).toBe('');
    } finally {
      await restore();
    }
  }, 180_000);
});
