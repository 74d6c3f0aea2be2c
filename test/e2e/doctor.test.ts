/**
 * `fwgen doctor` against real hosts: lab namespaces with their own sshd, /etc and rulesets. Each test
 * breaks one thing on one host and reads what doctor says. DNS answers are fixed through the internal API
 * (test/support/fwgen-internal.mjs), so no query leaves this machine.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBootHookResult } from '../../src/remote/boot-hook.js';
import type { Check } from '../../src/doctor/checks.js';
import { bootHookCall } from '../../src/remote/boot-hook.js';
import { CLI_INTERNAL, parseJson, runFwgen } from '../support/run-cli.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.80';
const DNS = { ptr: { [`${NET}.11`]: ['h1.lab.test'] } };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  checks: Check[];
}

async function fwgen(cwd: string, args: string[]): Promise<Run> {
  const r = await runFwgen(cwd, args, { FWGEN_INTERNAL: JSON.stringify({ dns: DNS }) }, CLI_INTERNAL);
  return { ...r, checks: parseJson(r.stdout, [] as Check[]) };
}

const find = (r: Run, host: string | undefined, name: string): Check[] =>
  r.checks.filter((c) => c.host === host && c.name === name);
const only = (r: Run, host: string | undefined, name: string): Check => {
  const found = find(r, host, name);
  expect(found, `${host ?? 'inventory'} ${name}:\n${r.stderr}`).toHaveLength(1);
  return found[0];
};

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('fwgen doctor against real sshd hosts', () => {
  let lab: Lab;
  let project: string;
  const RULES = '/etc/iptables.up.rules';
  const RULES_PATHS = { rules: RULES, rules6: '/etc/ip6tables.up.rules' };

  /** Ship's boot-hook step, run on a host as the SSH transport runs it: `sh -c SCRIPT NAME ARGS...`. */
  const bootHookRun = (host: string) => {
    const call = bootHookCall(RULES_PATHS);
    return lab.exec(host, ['sh', '-c', call.script, `fwgen-${call.name}`, ...call.args]);
  };
  const bootHook = async (host: string) => {
    const r = await bootHookRun(host);
    if (r.code !== 0) throw new Error(`boot-hook step exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const doctor = (...args: string[]) => fwgen(project, ['doctor', '--json', '--connect-timeout', '3', ...args]);
  /** Makes `ifup` exist on one host only: a copy of /usr/local/sbin with it, bind-mounted in the host's own mount namespace. */
  const installIfupdown = (host: string) =>
    lab.execOk(host, [
      'sh',
      '-c',
      'mkdir -p /root/sbin && printf "#!/bin/sh\\nexit 0\\n" > /root/sbin/ifup && chmod 755 /root/sbin/ifup && mount --bind /root/sbin /usr/local/sbin',
    ]);

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwd',
      hosts: [
        // h1-h3: neither ifupdown nor systemd, until a test gives them one.
        { name: 'h1', ipv4: `${NET}.11`, sshd: true, ifupdown: false },
        { name: 'h2', ipv4: `${NET}.12`, sshd: true, ifupdown: false },
        { name: 'h3', ipv4: `${NET}.13`, sshd: true, ifupdown: false },
        { name: 'h4', ipv4: `${NET}.14`, sshd: true },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-doctor-'));
    mkdirSync(join(project, 'inventory'));
    const badKnownHosts = join(project, 'bad_known_hosts');
    writeFileSync(badKnownHosts, `${NET}.14 ${lab.hosts.get('h1')!.hostKeyPub!.split(' ').slice(0, 2).join(' ')}\n`);
    writeFileSync(
      join(project, 'inventory/inventory.yaml'),
      `defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
roles:
  web:
    public: true
    hosts:
      h1: ${NET}.11
      h2: ${NET}.12
      h3: ${NET}.13
      h4: { address: ${NET}.14, ssh: { known_hosts: ${badKnownHosts} } }
`,
    );
    expect((await fwgen(project, ['render'])).code).toBe(0);
    // Without the boot step: these hosts have nothing that would run a boot hook (a test below ships there).
    const shipped = await fwgen(project, ['ship', '--host', 'h1', 'h2', '--timeout', '5', '--no-persist']);
    expect(shipped.code, shipped.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('reports a shipped host without a boot hook, and sees it fixed by an if-pre-up.d hook', async () => {
    const before = await doctor('--host', 'h1');
    expect(before.code).toBe(1);
    expect(only(before, 'h1', 'ssh')).toMatchObject({ level: 'ok', detail: `reachable at ${NET}.11` });
    expect(only(before, 'h1', 'host key').level).toBe('ok');
    expect(only(before, 'h1', 'rules file')).toMatchObject({ level: 'ok', detail: `${RULES} present and live` });
    expect(only(before, 'h1', 'backend')).toMatchObject({
      level: 'ok',
      detail: 'iptables uses nf_tables; no rules in legacy',
    });
    expect(only(before, 'h1', 'addresses')).toMatchObject({ level: 'ok', detail: `${NET}.11 on eth1` });
    expect(only(before, 'h1', 'interface')).toMatchObject({ level: 'ok', detail: 'eth1 present' });
    expect(only(before, 'h1', 'PTR')).toMatchObject({ level: 'ok', detail: `${NET}.11 → h1.lab.test` });
    // Neither ifupdown nor systemd: doctor does not send the operator to a ship that would fail.
    expect(only(before, 'h1', 'boot')).toMatchObject({
      level: 'fail',
      fix: 'install ifupdown, then run `fwgen ship --host h1` (it installs the hook); or load /etc/iptables.up.rules at boot another way',
    });
    // --json prints the checks only; the report is the text output, on stdout.
    expect(before.stderr).not.toContain('FAIL');
    const beforeText = await fwgen(project, ['doctor', '--host', 'h1', '--connect-timeout', '3']);
    expect(beforeText.stdout).toMatch(
      /^ {2}FAIL {2}boot: nothing loads \/etc\/iptables\.up\.rules at boot, and neither ifupdown nor systemd runs on this host to run a boot hook: a reboot drops the firewall {2}→ fix: install ifupdown/m,
    );

    await lab.execOk('h1', [
      'sh',
      '-c',
      `mkdir -p /etc/network/if-pre-up.d && printf '#!/bin/sh\\n/sbin/iptables-restore < ${RULES}\\n' > /etc/network/if-pre-up.d/iptables && chmod 755 /etc/network/if-pre-up.d/iptables`,
    ]);
    const noIfupdown = await doctor('--host', 'h1');
    expect(only(noIfupdown, 'h1', 'boot')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('ifupdown is not installed, so if-pre-up.d hooks never run'),
      fix: 'install ifupdown, so that the hook runs; or load /etc/iptables.up.rules at boot another way',
    });

    await installIfupdown('h1');
    const after = await doctor('--host', 'h1');
    expect(only(after, 'h1', 'boot')).toMatchObject({
      level: 'ok',
      detail: `${RULES} is loaded at boot by /etc/network/if-pre-up.d/iptables (if-pre-up.d)`,
    });
    expect(after.checks.filter((c) => c.host === 'h1' && c.level !== 'ok')).toEqual([]);
    expect(after.code, after.stderr).toBe(0);
    // Human output: grouped by host, one line per check, on stdout without --json.
    const text = await fwgen(project, ['doctor', '--host', 'h1']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^h1 \(role web, root@198\.18\.80\.11\)\n {2}ok {4}ssh: reachable at 198\.18\.80\.11\n/m,
    );
    expect(text.stdout).toContain('\n  ok    PTR: 198.18.80.11 → h1.lab.test\n');
  });

  it('flags rules in the legacy backend beside the nft ones', async () => {
    await lab.execOk('h2', ['iptables-legacy', '-A', 'INPUT', '-j', 'ACCEPT']);
    const r = await doctor('--host', 'h2');
    const backend = only(r, 'h2', 'backend');
    expect(backend).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('iptables uses nf_tables, but legacy holds 1 more rule(s)'),
    });
    expect(backend.fix).toContain('iptables-legacy-save');
    expect(only(r, 'h2', 'PTR')).toMatchObject({
      level: 'warn',
      detail: expect.stringContaining(`no PTR record for ${NET}.12`),
    });
    expect(r.code).toBe(1);
  });

  it('installs no hook that would never run; does what doctor says once the host has ifupdown; the hook restores the rules', async () => {
    const HOOK = '/etc/network/if-pre-up.d/fwgen-iptables';
    // fwgen's own hook, as an older fwgen installed it on a host where nothing runs it: removed, and the step fails.
    await lab.execOk('h2', ['sh', '-c', `mkdir -p /etc/network/if-pre-up.d && echo '#!/bin/sh' > ${HOOK}`]);
    const none = await bootHookRun('h2');
    expect(none.code).toBe(22); // E_NOBOOT (21 is an unsafe rules folder)
    expect(none.stderr).toContain('neither ifupdown nor systemd runs on this host: nothing would run a boot hook');
    expect(parseBootHookResult(none.stdout)).toEqual({ status: 'unsupported', removed: HOOK });
    expect((await lab.exec('h2', ['test', '-e', HOOK])).code).toBe(1);
    const advice = only(await doctor('--host', 'h2'), 'h2', 'boot');
    expect(advice).toMatchObject({
      level: 'fail',
      fix: expect.stringMatching(/^install ifupdown, then run `fwgen ship/),
    });

    // Following that advice: ifupdown, then the same step installs the hook, and doctor is content.
    await installIfupdown('h2');
    const first = parseBootHookResult(await bootHook('h2'));
    expect(first).toEqual({
      status: 'installed',
      mechanism: { kind: 'if-pre-up.d', path: HOOK, loadsRules: true, state: 'ok' },
    });
    expect((await lab.execOk('h2', ['stat', '-c', '%a', HOOK])).trim()).toBe('755');
    expect(parseBootHookResult(await bootHook('h2'))?.status).toBe('present');
    expect(only(await doctor('--host', 'h2'), 'h2', 'boot')).toMatchObject({
      level: 'ok',
      detail: `${RULES} is loaded at boot by /etc/network/if-pre-up.d/fwgen-iptables (if-pre-up.d)`,
    });

    // As at boot: an empty filter table, then the hook.
    const shipped = readFileSync(join(project, 'rendered/web/iptables.up.rules'), 'utf8');
    await lab.execOk('h2', ['sh', '-c', 'iptables -F && iptables -X']);
    expect(await lab.execOk('h2', ['iptables-save', '-t', 'filter'])).not.toContain('fwgen');
    await lab.execOk('h2', ['/etc/network/if-pre-up.d/fwgen-iptables']);
    const norm = (s: string) =>
      s
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'));
    expect(norm(await lab.execOk('h2', ['iptables-save', '-t', 'filter']))).toEqual(norm(shipped));
  });

  it('on a systemd host without ifupdown, installs an enabled unit whose commands restore the rules', async () => {
    const shipped = readFileSync(join(project, 'rendered/web/iptables.up.rules'), 'utf8');
    // h3 was never shipped: put the file in place by hand, and make it look like systemd runs (its /run is its own).
    await lab.execOk('h3', ['sh', '-c', `cat > ${RULES} && mkdir -p /run/systemd/system`], { input: shipped });
    // fwgen's own if-pre-up.d hook, which nothing runs here (an older fwgen put it there): doctor says that
    // ship replaces it with a unit, and the step does.
    const HOOK = '/etc/network/if-pre-up.d/fwgen-iptables';
    await lab.execOk('h3', [
      'sh',
      '-c',
      `mkdir -p /etc/network/if-pre-up.d && printf '#!/bin/sh\\niptables-restore < ${RULES}\\n' > ${HOOK} && chmod 755 ${HOOK}`,
    ]);
    expect(only(await doctor('--host', 'h3'), 'h3', 'boot')).toMatchObject({
      level: 'fail',
      fix: '`fwgen ship --host h3` replaces it with a systemd unit (or install ifupdown)',
    });
    const result = parseBootHookResult(await bootHook('h3'));
    expect(result).toEqual({
      status: 'installed',
      mechanism: { kind: 'systemd', path: '/etc/systemd/system/fwgen-iptables.service', loadsRules: true, state: 'ok' },
      removed: HOOK,
    });
    const unit = await lab.execOk('h3', ['cat', '/etc/systemd/system/multi-user.target.wants/fwgen-iptables.service']);
    expect(unit).toContain('Before=network-pre.target');
    const r = await doctor('--host', 'h3');
    expect(only(r, 'h3', 'boot')).toMatchObject({
      level: 'ok',
      detail: `${RULES} is loaded at boot by /etc/systemd/system/fwgen-iptables.service (systemd)`,
    });
    // Run the unit's commands as systemd would, on an empty filter table.
    const commands = [...unit.matchAll(/^ExecStart=\/bin\/sh -c '(.*)'$/gm)].map((m) => m[1]);
    expect(commands).toHaveLength(3); // sets (ipset mode; no file here: nothing), then IPv4, then IPv6 rules
    expect(commands[0]).toContain('ipset restore');
    await lab.execOk('h3', ['sh', '-c', 'iptables -F && iptables -X']);
    for (const c of commands) await lab.execOk('h3', ['/bin/sh', '-c', c]);
    // Again, as a hook that runs once per interface would: the second run must load nothing.
    for (const c of commands) await lab.execOk('h3', ['/bin/sh', '-c', c]);
    const norm = (s: string) =>
      s
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'));
    expect(norm(await lab.execOk('h3', ['iptables-save', '-t', 'filter']))).toEqual(norm(shipped));

    // The unit as fwgen wrote it before ipset mode (no sets line): doctor warns, the installer rewrites it
    // in place and keeps it enabled, then finds it present.
    const UNIT = '/etc/systemd/system/fwgen-iptables.service';
    const current = await lab.execOk('h3', ['cat', UNIT]);
    await lab.execOk('h3', ['sh', '-c', `cat > ${UNIT}`], {
      input: current.replace(/^ExecStart=.*ipset restore.*\n/m, ''),
    });
    expect(await lab.execOk('h3', ['cat', UNIT])).not.toContain('ipset');
    expect(only(await doctor('--host', 'h3'), 'h3', 'boot')).toMatchObject({
      level: 'warn',
      detail: `${UNIT} loads ${RULES} at boot, but differs from what this fwgen writes there (another version wrote it, or it was edited)`,
    });
    expect(parseBootHookResult(await bootHook('h3'))).toEqual({
      status: 'updated',
      mechanism: { kind: 'systemd', path: UNIT, loadsRules: true, state: 'ok' },
    });
    expect(await lab.execOk('h3', ['cat', '/etc/systemd/system/multi-user.target.wants/fwgen-iptables.service'])).toBe(
      current,
    );
    expect(
      (
        await lab.execOk('h3', ['readlink', '/etc/systemd/system/multi-user.target.wants/fwgen-iptables.service'])
      ).trim(),
    ).toBe('../fwgen-iptables.service');
    expect(parseBootHookResult(await bootHook('h3'))?.status).toBe('present');
    expect(only(await doctor('--host', 'h3'), 'h3', 'boot').level).toBe('ok');
  });

  it("flags a stale lock, and an interrupted ship's staged file", async () => {
    await lab.execOk('h2', [
      'sh',
      '-c',
      `mkdir ${RULES}.fwgen-lock && echo 'me@box run X' > ${RULES}.fwgen-lock/owner && touch -d '1 hour ago' ${RULES}.fwgen-lock && : > ${RULES}.fwgen-new.X && touch -d '1 hour ago' ${RULES}.fwgen-new.X`,
    ]);
    const r = await doctor('--host', 'h2');
    expect(only(r, 'h2', 'lock')).toMatchObject({
      level: 'fail',
      detail: expect.stringMatching(/^stale lock \/etc\/iptables\.up\.rules\.fwgen-lock, 60 min old \(me@box run X\)/),
      fix: expect.stringContaining(`rm -rf ${RULES}.fwgen-lock`),
    });
    expect(only(r, 'h2', 'interrupted ship')).toMatchObject({
      level: 'warn',
      detail: expect.stringContaining(`${RULES}.fwgen-new.X`),
    });
    await lab.execOk('h2', ['sh', '-c', `rm -rf ${RULES}.fwgen-lock ${RULES}.fwgen-new.X`]);
    expect(only(await doctor('--host', 'h2'), 'h2', 'leftovers').level).toBe('ok');
  });

  it('fails the ssh check of a host whose sshd is stopped, and the host key check of a wrong key; others go on', async () => {
    await lab.stopSshd('h3');
    try {
      const r = await doctor('--role', 'web');
      expect(r.code).toBe(1);
      expect(find(r, 'h3', 'ssh')).toEqual([
        expect.objectContaining({
          level: 'fail',
          detail: expect.stringContaining(`cannot connect to root@${NET}.13`),
          fix: expect.stringContaining('sshd runs on port 22'),
        }),
      ]);
      expect(find(r, 'h3', 'boot')).toEqual([]);
      expect(only(r, 'h4', 'ssh').level).toBe('ok');
      const key = only(r, 'h4', 'host key');
      expect(key).toMatchObject({
        level: 'fail',
        detail: expect.stringContaining(`host key for ${NET}.14 does not match`),
      });
      expect(key.fix).toContain(`ssh-keygen -R '${NET}.14' -f ${join(project, 'bad_known_hosts')}`);
      expect(only(r, 'h1', 'boot').level).toBe('ok');
      expect(r.stderr).toMatch(/fwgen: \d+ check\(s\) failed: .*h2.*h3.*h4/);
    } finally {
      await lab.startSshd('h3');
    }
  });

  it('--offline checks the inventory alone: no management, a shadowed allow rule; no SSH', async () => {
    const offline = join(project, 'offline.yaml');
    writeFileSync(
      offline,
      `defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
roles:
  web: { public: true, hosts: { h1: ${NET}.11 } }
  db:
    allow: [{ from: [web], ports: [tcp/5432] }]
    hosts: { h2: ${NET}.12 }
`,
    );
    const sshdLog = (h: string) => statSync(join(lab.hosts.get(h)!.root, 'sshd.log')).size;
    const logs = [sshdLog('h1'), sshdLog('h2')];
    const r = await fwgen(project, ['doctor', '--offline', '--json', '-i', offline]);
    expect(r.code).toBe(1);
    expect(r.checks.every((c) => c.host === undefined)).toBe(true);
    expect(only(r, undefined, 'management').level).toBe('fail');
    expect(only(r, undefined, 'rule shadowed')).toMatchObject({
      level: 'warn',
      detail: expect.stringContaining('role db allow#1 (from web to tcp/5432) is shadowed on eth1 by fleet trust'),
    });
    expect(r.stderr).not.toContain('checking');
    expect([sshdLog('h1'), sshdLog('h2')]).toEqual(logs);
  });
});
