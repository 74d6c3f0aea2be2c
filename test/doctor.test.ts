import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatCheck } from '../src/cli/doctor-command.js';
import {
  BOOT_HOOK_PATH,
  BOOT_UNIT_PATH,
  describeBootHookResult,
  parseBootHookResult,
  parseBootMechanisms,
  type BootMechanism,
} from '../src/remote/boot-hook.js';
import {
  backendOf,
  evaluateBoot,
  evaluateFacts,
  worstLevel,
  type Check,
  type HostContext,
} from '../src/doctor/checks.js';
import { transportFailureChecks } from '../src/doctor/connection-checks.js';
import { doctorHost, type DoctorDeps } from '../src/doctor/doctor-host.js';
import { parseFacts, TOOLS, type HostFacts } from '../src/remote/facts.js';
import { inventoryChecks } from '../src/doctor/inventory-checks.js';
import { nameChecks, staticResolver } from '../src/doctor/name-checks.js';
import { parseInventory } from '../src/inventory/load-inventory.js';
import type { Host, Inventory } from '../src/inventory/model.js';
import { resolvePolicies } from '../src/resolve/resolve-policy.js';
import { BOOT_MARKER, bootHookCall } from '../src/remote/boot-hook.js';
import { factsCall } from '../src/remote/facts.js';
import { remoteDir, type RemotePaths } from '../src/remote/scripts.js';
import { TransportError, type ConnectTarget, type Session, type Transport } from '../src/remote/transport.js';

const PATHS = { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' };
const DASH = ['/usr/bin/dash', '/bin/dash'].find((p) => existsSync(p)) ?? 'dash-not-installed';
const remote = (file: string) => readFileSync(join(remoteDir, file), 'utf8');
/** Shell code without comment lines and the text of heredocs (the hook and unit it writes or compares are data, not run). */
const codeOnly = (sh: string) => sh.replace(/<<'?(FWGEN_[A-Z]+)'?\n[\s\S]*?\n\1\n/g, '').replace(/^\s*#.*\n/gm, '');

/** What `ship --persist` wrote before its hook and unit were made in shell (test/fixtures/boot/): hosts keep it. */
const BOOT_FIXTURES: Record<string, RemotePaths> = {
  'iptables.up.rules': PATHS,
  'rules.v4': { rules: '/etc/iptables/rules.v4', rules6: '/etc/iptables/rules.v6' },
};
const fixture = (dir: string, file: 'hook' | 'unit') => readFileSync(join('test/fixtures/boot', dir, file));
/** Runs shell code after remote/lib.sh and remote/boot.sh under dash, with the paths set as the steps set them. */
const bootSh = (paths: RemotePaths, code: string) =>
  spawnSync(
    DASH,
    [
      '-c',
      `${remote('lib.sh')}\n${remote('boot.sh')}\nset_paths "$1" "$2"\n${code}`,
      'boot',
      paths.rules,
      paths.rules6,
    ],
    { encoding: 'buffer' },
  );

const web1: Host = {
  name: 'web1',
  role: 'web',
  addresses: [{ family: 'ipv4', cidr: '198.18.80.11/32', key: '' }],
  ssh: { host: '198.18.80.11', user: 'root', port: 22, knownHosts: '/tmp/kh', sudo: false },
};
const ctx = (over: Partial<HostContext['inventory']> = {}, host: Host = web1): HostContext => ({
  host,
  inventory: { interface: 'eth1', trust: 'fleet', hasIpv6: false, ...over },
  paths: PATHS,
});

const hook: BootMechanism = {
  kind: 'if-pre-up.d',
  path: '/etc/network/if-pre-up.d/iptables',
  loadsRules: true,
  state: 'ok',
};

/** A healthy host: every check should be ok. */
const healthy: HostFacts = {
  uid: 0,
  tools: new Set(TOOLS),
  iptablesVersion: 'iptables v1.8.9 (nf_tables)',
  ruleCounts: { legacy4: 0, legacy6: 0, nft4: 14, nft6: 0 },
  live4: 'match',
  live6: 'no-file',
  boot: [hook],
  ufwEnabled: false,
  ufwChains: 0,
  firewalldActive: false,
  dockerChains: 0,
  nftablesEnabled: false,
  addresses: [
    { ifname: 'lo', address: '127.0.0.1' },
    { ifname: 'eth1', address: '198.18.80.11' },
  ],
  links: ['lo', 'eth1'],
  armed: [],
  staged: [],
};

const byName = (checks: Check[], name: string) => checks.filter((c) => c.name === name);
const one = (checks: Check[], name: string) => {
  const found = byName(checks, name);
  expect(found, `${name} in ${JSON.stringify(checks.map((c) => c.name))}`).toHaveLength(1);
  return found[0];
};

describe('facts step (remote/facts.sh) and its parser', () => {
  it('is valid POSIX sh, gets its values as arguments, is read-only, and ends with a status line', () => {
    const call = factsCall(PATHS, TOOLS);
    expect(call.name).toBe('doctor-facts');
    expect(spawnSync('sh', ['-n', '-c', call.script]).status).toBe(0);
    expect(call.args).toEqual([PATHS.rules, PATHS.rules6, ...TOOLS]);
    expect(call.script).not.toContain(PATHS.rules);
    // lib.sh, then boot.sh, then the step.
    expect(call.script).toBe(`${remote('lib.sh')}\n${remote('boot.sh')}\n${remote('facts.sh')}`);
    // The boot hook's text is there as data (compared with fwgen's own hook), not run.
    const code = codeOnly(remote('facts.sh') + remote('boot.sh'));
    expect(code).not.toContain('--noflush');
    expect(code).not.toMatch(
      /\b(rm|mv|mkdir|touch|chmod|ln) |restore\s*<|tables(-legacy|-nft)? -[ADIFXNPR]\b|>\s*"?\$/,
    );
    // Nothing of lib.sh that changes the host.
    expect(remote('facts.sh')).not.toMatch(/\b(take_lock|release_lock|stop_switch|fire_switch|await_switch)\b/);
    expect(remote('facts.sh').trim().endsWith('echo "status=facts"')).toBe(true);
  });

  describe('under dash, with stub iptables in a temp folder', () => {
    let dir: string;
    let bin: string;
    let paths: RemotePaths;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'fwgen-facts-'));
      bin = join(dir, 'bin');
      mkdirSync(bin);
      mkdirSync(join(dir, 'etc'));
      for (const t of ['date', 'stat', 'id', 'head', 'grep', 'sed', 'sha256sum', 'cat', 'tr', 'ls', 'cmp']) {
        const found = ['/usr/bin', '/bin'].map((d) => join(d, t)).find((p) => existsSync(p));
        if (!found) throw new Error(`test needs ${t}`);
        symlinkSync(found, join(bin, t));
      }
      // iptables -V, and iptables-save printing the fake live table; no ip6tables-save.
      writeFileSync(join(bin, 'iptables'), '#!/bin/sh\necho "iptables v1.8.9 (nf_tables)"\n', { mode: 0o755 });
      writeFileSync(join(bin, 'iptables-save'), `#!/bin/sh\ncat ${dir}/live4\n`, { mode: 0o755 });
      paths = { rules: join(dir, 'etc/iptables.up.rules'), rules6: join(dir, 'etc/ip6tables.up.rules') };
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const OWNED =
      ':FWGEN-INPUT - [0:0]\n-A FWGEN-INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -m comment --comment fwgen -j FWGEN-INPUT\n';
    const facts = () => {
      const call = factsCall(paths, TOOLS);
      const r = spawnSync(DASH, ['-c', call.script, `fwgen-${call.name}`, ...call.args], {
        env: { PATH: bin },
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      return parseFacts(r.stdout);
    };
    /** Every file and folder under the temp folder, with its content and mtime. */
    const snapshot = () =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .map((name) => join(dir, name))
        .sort()
        .map((p) => [p, statSync(p).mtimeMs, statSync(p).isFile() ? readFileSync(p, 'utf8') : 'folder']);

    it("compares only what fwgen owns of the live table with the rules file (lib.sh's fingerprint)", () => {
      writeFileSync(paths.rules, `*filter\n:INPUT ACCEPT [0:0]\n${OWNED}COMMIT\n`);
      // Counters, another tool's chain and rules: still a match.
      writeFileSync(
        join(dir, 'live4'),
        `*filter\n:INPUT ACCEPT [9:99]\n:DOCKER - [0:0]\n${OWNED.replace('[0:0]', '[5:500]')}-A INPUT -j DOCKER\nCOMMIT\n`,
      );
      writeFileSync(paths.rules6, '*filter\nCOMMIT\n');
      const f = facts();
      expect([f.live4, f.live6]).toEqual(['match', 'no-tool']);
      expect(f.uid).toBe(process.getuid?.());
      expect([...f.tools].sort()).toEqual(['iptables', 'iptables-save', 'sha256sum']);
      expect(f.iptablesVersion).toBe('iptables v1.8.9 (nf_tables)');
      expect(f.dockerChains).toBe(1);

      writeFileSync(join(dir, 'live4'), `*filter\n${OWNED.replace('22', '2222')}COMMIT\n`);
      rmSync(paths.rules6);
      expect([facts().live4, facts().live6]).toEqual(['differ', 'no-file']);
    });

    it("reports a ship's leftovers, and changes nothing", () => {
      writeFileSync(paths.rules, OWNED);
      writeFileSync(join(dir, 'live4'), OWNED);
      mkdirSync(`${paths.rules}.fwgen-lock`);
      writeFileSync(`${paths.rules}.fwgen-lock/owner`, 'me@box run X\n');
      writeFileSync(`${paths.rules}.fwgen-new.X`, '');
      writeFileSync(`${paths.rules}.fwgen-armed.run1`, '');
      const before = snapshot();
      const f = facts();
      expect(f.lock).toMatchObject({ path: `${paths.rules}.fwgen-lock`, owner: 'me@box run X' });
      expect(f.staged).toMatchObject([{ path: `${paths.rules}.fwgen-new.X` }]);
      expect(f.armed).toMatchObject([{ id: 'run1', alive: false, path: `${paths.rules}.fwgen-armed.run1` }]);
      expect(snapshot()).toEqual(before);
    });
  });

  it('the hook written at boot passes shellcheck -s sh (the scripts themselves: test/remote-scripts.test.ts)', () => {
    for (const dir of Object.keys(BOOT_FIXTURES)) {
      const r = spawnSync('shellcheck', ['-s', 'sh', '-'], { input: fixture(dir, 'hook'), encoding: 'utf8' });
      expect(r.error, 'shellcheck is needed: bash scripts/install-test-deps.sh').toBeUndefined();
      expect(r.stdout, dir).toBe('');
    }
  });

  it('parses every kind of line', () => {
    const f = parseFacts(
      [
        'uid=0',
        'tool=iptables-restore',
        'tool=iptables-save',
        'tool=something-else',
        'version=iptables v1.8.9 (nf_tables)',
        'count.legacy4=2',
        'count.nft4=14',
        'live4=differ',
        'live6=no-file',
        'boot_runner=systemd',
        'boot=if-pre-up.d 1 no-ifupdown /etc/network/if-pre-up.d/iptables',
        'boot=systemd 0 disabled /etc/systemd/system/my fw.service',
        'boot=systemd 1 ok /etc/systemd/system/fwgen-iptables.service',
        'boot_outdated=no-sets /etc/systemd/system/fwgen-iptables.service',
        'boot_outdated=differs /etc/network/if-pre-up.d/fwgen-iptables',
        'ufw=enabled',
        'ufw_chains=3',
        'docker_chains=0',
        'firewalld=active',
        'addr=eth1 198.18.80.11',
        'addr=eth1 2001:db8::11',
        'link=lo',
        'link=eth1',
        'armed=4000 0 20261121T000000Z-abcdef /etc/iptables.up.rules.fwgen-armed.20261121T000000Z-abcdef',
        'lock=3600 /etc/iptables.up.rules.fwgen-lock me@box run X pid 1 ',
        'staged=3600 /etc/iptables.up.rules.fwgen-new.X',
        'status=facts',
      ].join('\n'),
    );
    expect(f.uid).toBe(0);
    expect([...f.tools]).toEqual(['iptables-restore', 'iptables-save']);
    expect(f.ruleCounts).toEqual({ legacy4: 2, legacy6: undefined, nft4: 14, nft6: undefined });
    expect([f.live4, f.live6]).toEqual(['differ', 'no-file']);
    expect(f.bootRunner).toBe('systemd');
    expect(parseFacts('boot_runner=upstart\nstatus=facts\n').bootRunner).toBeUndefined();
    expect(f.boot).toEqual([
      { kind: 'if-pre-up.d', loadsRules: true, state: 'no-ifupdown', path: '/etc/network/if-pre-up.d/iptables' },
      { kind: 'systemd', loadsRules: false, state: 'disabled', path: '/etc/systemd/system/my fw.service' },
      {
        kind: 'systemd',
        loadsRules: true,
        state: 'ok',
        path: '/etc/systemd/system/fwgen-iptables.service',
        outdated: 'no-sets',
      },
    ]);
    expect([f.ufwEnabled, f.ufwChains, f.firewalldActive, f.dockerChains, f.nftablesEnabled]).toEqual([
      true,
      3,
      true,
      0,
      false,
    ]);
    expect(f.addresses).toEqual([
      { ifname: 'eth1', address: '198.18.80.11' },
      { ifname: 'eth1', address: '2001:db8::11' },
    ]);
    expect(f.links).toEqual(['lo', 'eth1']);
    expect(f.armed).toEqual([
      {
        ageS: 4000,
        alive: false,
        id: '20261121T000000Z-abcdef',
        path: '/etc/iptables.up.rules.fwgen-armed.20261121T000000Z-abcdef',
      },
    ]);
    expect(f.lock).toEqual({ ageS: 3600, path: '/etc/iptables.up.rules.fwgen-lock', owner: 'me@box run X pid 1' });
    expect(f.staged).toEqual([{ ageS: 3600, path: '/etc/iptables.up.rules.fwgen-new.X' }]);
  });
});

describe("evaluating a host's facts", () => {
  it('finds nothing wrong with a healthy host', () => {
    const checks = evaluateFacts(healthy, ctx());
    expect(checks.filter((c) => c.level !== 'ok')).toEqual([]);
    expect(checks.every((c) => c.host === 'web1')).toBe(true);
    expect(checks.map((c) => c.name)).toEqual([
      'tools',
      'backend',
      'rules file',
      'boot',
      'other firewall',
      'addresses',
      'interface',
      'leftovers',
    ]);
    expect(one(checks, 'backend').detail).toBe('iptables uses nf_tables; no rules in legacy');
    expect(one(checks, 'addresses').detail).toBe('198.18.80.11 on eth1');
  });

  it('tells the backend from iptables -V', () => {
    expect(backendOf('iptables v1.8.9 (nf_tables)')).toBe('nf_tables');
    expect(backendOf('iptables v1.8.7 (legacy)')).toBe('legacy');
    expect(backendOf('iptables v1.6.1')).toBe('legacy');
    expect(backendOf('')).toBeUndefined();
  });

  it('fails a host whose other backend holds rules too', () => {
    const c = one(evaluateFacts({ ...healthy, ruleCounts: { legacy4: 1, legacy6: 2, nft4: 14 } }, ctx()), 'backend');
    expect(c).toMatchObject({ level: 'fail', detail: expect.stringContaining('legacy holds 3 more rule(s)') });
    expect(c.fix).toContain('iptables-legacy -F');
    const legacyHost = {
      ...healthy,
      iptablesVersion: 'iptables v1.8.9 (legacy)',
      ruleCounts: { legacy4: 10, nft4: 5 },
    };
    expect(one(evaluateFacts(legacyHost, ctx()), 'backend')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('nft holds 5'),
    });
  });

  it('fails a host where nothing loads the rules at boot, pointing at ship (which installs a hook by default)', () => {
    const c = one(evaluateFacts({ ...healthy, boot: [] }, ctx()), 'boot');
    expect(c).toMatchObject({
      level: 'fail',
      detail: 'nothing loads /etc/iptables.up.rules at boot: a reboot drops the firewall',
    });
    expect(c.fix).toBe('`fwgen ship --host web1` installs a boot hook (unless shipped with --no-persist)');
  });

  it('on a host with neither ifupdown nor systemd, never says that ship installs a hook (ship fails there)', () => {
    const c = one(evaluateFacts({ ...healthy, boot: [], bootRunner: 'none' }, ctx()), 'boot');
    expect(c).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('neither ifupdown nor systemd runs on this host'),
      fix: 'install ifupdown, then run `fwgen ship --host web1` (it installs the hook); or load /etc/iptables.up.rules at boot another way',
    });
    // fwgen's own hook where nothing runs it (an older fwgen installed it): no "remove it and ship again" loop.
    const own = { ...hook, path: BOOT_HOOK_PATH, state: 'no-ifupdown' as const };
    expect(evaluateBoot([own], PATHS.rules, '`fwgen ship --host web1`', 'none').fix).toBe(
      'install ifupdown, so that the hook runs; or load /etc/iptables.up.rules at boot another way',
    );
    // With systemd, ship replaces that hook by a unit; another tool's dead hook is for a person to remove.
    expect(evaluateBoot([own], PATHS.rules, '`fwgen ship --host web1`', 'systemd').fix).toBe(
      '`fwgen ship --host web1` replaces it with a systemd unit (or install ifupdown)',
    );
    expect(evaluateBoot([{ ...own, path: '/etc/network/if-pre-up.d/iptables' }], PATHS.rules, 'X', 'systemd').fix).toBe(
      'install ifupdown, or remove /etc/network/if-pre-up.d/iptables and run X, which installs a systemd unit',
    );
  });

  it('judges boot mechanisms: inactive hooks, other files, netfilter-persistent', () => {
    const fix = '`fwgen ship --host web1`';
    expect(evaluateBoot([{ ...hook, state: 'no-ifupdown' }], PATHS.rules, fix)).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('ifupdown is not installed'),
    });
    expect(evaluateBoot([{ ...hook, state: 'not-executable' }], PATHS.rules, fix).fix).toBe(
      'chmod 755 /etc/network/if-pre-up.d/iptables',
    );
    expect(
      evaluateBoot([{ ...hook, path: '/etc/network/if-pre-up.d/fw.sh', state: 'bad-name' }], PATHS.rules, fix).detail,
    ).toContain('run-parts skips it');
    const nfp: BootMechanism = {
      kind: 'netfilter-persistent',
      path: '/etc/iptables/rules.v4',
      loadsRules: false,
      state: 'ok',
    };
    expect(evaluateBoot([nfp], PATHS.rules, fix)).toMatchObject({
      level: 'fail',
      fix: expect.stringContaining('rules_path: /etc/iptables/rules.v4'),
    });
    expect(evaluateBoot([hook, nfp], PATHS.rules, fix)).toMatchObject({
      level: 'warn',
      detail: expect.stringContaining('whichever runs last wins'),
    });
    expect(evaluateBoot([{ ...nfp, loadsRules: true }], '/etc/iptables/rules.v4', fix).level).toBe('ok');
  });

  it("says when fwgen's own hook differs from what ship --persist writes: fails when it misses the sets", () => {
    const fix = '`fwgen ship --host web1`';
    const own = { ...hook, path: '/etc/network/if-pre-up.d/fwgen-iptables' };
    expect(evaluateBoot([{ ...own, outdated: 'no-sets' }], PATHS.rules, fix)).toEqual({
      name: 'boot',
      level: 'fail',
      detail:
        "/etc/network/if-pre-up.d/fwgen-iptables loads /etc/iptables.up.rules at boot, but not first the ipsets those rules match (an older fwgen wrote it, or it was edited): at boot the rules fail to load and the host comes up without fwgen's firewall",
      fix: '`fwgen ship --host web1` rewrites it',
    });
    expect(evaluateBoot([{ ...own, outdated: 'differs' }], PATHS.rules, fix)).toMatchObject({
      level: 'warn',
      detail: expect.stringContaining('differs from what this fwgen writes there'),
      fix: '`fwgen ship --host web1` rewrites it',
    });
    // One that will not run is reported as such, outdated or not: that is the first thing to fix.
    expect(evaluateBoot([{ ...own, outdated: 'no-sets', state: 'no-ifupdown' }], PATHS.rules, fix).detail).toContain(
      'ifupdown is not installed',
    );
    expect(one(evaluateFacts({ ...healthy, boot: [{ ...own, outdated: 'differs' }] }, ctx()), 'boot').level).toBe(
      'warn',
    );
  });

  it('does not ask for a boot hook before the host has a rules file; says to ship', () => {
    const checks = evaluateFacts({ ...healthy, live4: 'no-file', boot: [] }, ctx());
    expect(byName(checks, 'boot')).toEqual([]);
    expect(one(checks, 'rules file')).toMatchObject({ level: 'warn', fix: '`fwgen ship --host web1`' });
  });

  it('does not claim the rules are live when they could not be read', () => {
    const noSave = {
      ...healthy,
      tools: new Set(TOOLS.filter((t) => t !== 'iptables-save')),
      live4: 'no-tool' as const,
    };
    expect(one(evaluateFacts(noSave, ctx()), 'rules file')).toMatchObject({
      level: 'ok',
      detail: '/etc/iptables.up.rules present (live rules not compared)',
    });
    expect(one(evaluateFacts(noSave, ctx()), 'tools').level).toBe('fail');
  });

  it('in ipset mode, a host without the ipset command fails the tools check, saying how to install it', () => {
    const noIpset = { ...healthy, tools: new Set(TOOLS.filter((t) => t !== 'ipset')) };
    expect(one(evaluateFacts(noIpset, ctx({ sets: 'ipset' })), 'tools')).toMatchObject({
      level: 'fail',
      fix: 'install ipset (`apt-get install ipset`)',
    });
    expect(one(evaluateFacts(noIpset, ctx()), 'tools').level).toBe('ok');
    expect(one(evaluateFacts(healthy, ctx({ sets: 'ipset' })), 'tools').detail).toContain('ipset present');
  });

  it("pull mode: checks the agent's needs (sha256sum, curl or GNU wget, ssh-keygen -Y), only with agent: or an agent", () => {
    expect(evaluateFacts(healthy, ctx()).map((c) => c.name)).not.toContain('agent');
    const agent = { origins: ['https://fw.example.net/fleet/'] };
    expect(one(evaluateFacts({ ...healthy, sshsig: true }, ctx({ agent })), 'agent')).toMatchObject({
      level: 'ok',
      detail: 'the pull agent (not installed yet) has sha256sum, curl, ssh-keygen -Y',
    });
    const wgetOnly = {
      ...healthy,
      tools: new Set(TOOLS.filter((t) => t !== 'curl')),
      wget: 'gnu' as const,
      agent: true,
    };
    expect(one(evaluateFacts(wgetOnly, ctx()), 'agent').detail).toBe(
      'the pull agent (installed) has sha256sum, GNU wget, ssh-keygen -Y',
    );
    const old = {
      ...healthy,
      tools: new Set(TOOLS.filter((t) => t !== 'curl' && t !== 'sha256sum')),
      wget: 'other' as const,
      sshsig: false,
    };
    expect(one(evaluateFacts(old, ctx({ agent })), 'agent')).toMatchObject({
      level: 'fail',
      detail:
        'the pull agent (not installed yet) needs sha256sum, curl (its wget is not GNU wget), ssh-keygen -Y (OpenSSH 8.1 or later)',
      fix: expect.stringContaining('apt-get install curl openssh-client'),
    });
  });

  it('warns when the live rules differ from the file', () => {
    expect(one(evaluateFacts({ ...healthy, live4: 'differ' }, ctx()), 'rules file')).toMatchObject({
      level: 'warn',
      detail: expect.stringContaining('live rules differ'),
    });
  });

  it('checks the IPv6 tools and file only when the inventory has IPv6', () => {
    const v4only = { ...healthy, tools: new Set(TOOLS.filter((t) => !t.startsWith('ip6'))) };
    expect(one(evaluateFacts(v4only, ctx()), 'tools').level).toBe('ok');
    expect(one(evaluateFacts(v4only, ctx({ hasIpv6: true })), 'tools')).toMatchObject({
      level: 'fail',
      detail: 'missing on the host: ip6tables-restore, ip6tables-save',
    });
    expect(one(evaluateFacts(healthy, ctx({ hasIpv6: true })), 'rules file').detail).toContain(
      '/etc/ip6tables.up.rules missing',
    );
  });

  it('fails each firewall manager that would fight fwgen', () => {
    const checks = evaluateFacts(
      { ...healthy, ufwEnabled: true, firewalldActive: true, dockerChains: 4, nftablesEnabled: true },
      ctx(),
    );
    expect(byName(checks, 'other firewall').map((c) => [c.level, c.detail.split(' ')[0]])).toEqual([
      ['fail', 'ufw'],
      ['fail', 'firewalld'],
      ['fail', "Docker's"],
      ['warn', 'nftables.service'],
    ]);
    expect(one(evaluateFacts({ ...healthy, ufwChains: 2 }, ctx()), 'other firewall').detail).toContain('ufw is active');
  });

  it('accepts Docker next to fwgen when the role leaves FORWARD to it; says how otherwise', () => {
    const rejecting = one(evaluateFacts({ ...healthy, dockerChains: 4 }, ctx()), 'other firewall');
    expect(rejecting).toMatchObject({ level: 'fail', fix: expect.stringContaining('forward: leave') });
    const leaving = one(
      evaluateFacts({ ...healthy, dockerChains: 4 }, { ...ctx(), forward: 'leave' }),
      'other firewall',
    );
    expect(leaving).toMatchObject({ level: 'ok', detail: expect.stringContaining("Docker's chains kept") });
  });

  it('warns when the inventory address is not on the host; compares IPv6 canonically', () => {
    const c = one(
      evaluateFacts({ ...healthy, addresses: [{ ifname: 'eth1', address: '198.18.80.99' }] }, ctx()),
      'addresses',
    );
    expect(c).toMatchObject({
      level: 'warn',
      detail: expect.stringMatching(/^198\.18\.80\.11 not on the host \(it has 198\.18\.80\.99\)/),
    });
    const v6host: Host = { ...web1, addresses: [{ family: 'ipv6', cidr: '2001:db8:0:0::11/128', key: '' }] };
    expect(
      one(
        evaluateFacts({ ...healthy, addresses: [{ ifname: 'eth1', address: '2001:db8::11' }] }, ctx({}, v6host)),
        'addresses',
      ).level,
    ).toBe('ok');
  });

  it('checks the internal interface, with + as a prefix, failing only when fleet trust uses it', () => {
    expect(one(evaluateFacts(healthy, ctx({ interface: 'eth9' })), 'interface')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('fleet trust rules never match'),
    });
    expect(one(evaluateFacts(healthy, ctx({ interface: 'eth9', trust: 'none' })), 'interface').level).toBe('warn');
    expect(one(evaluateFacts(healthy, ctx({ interface: 'eth+' })), 'interface')).toMatchObject({
      level: 'ok',
      detail: 'eth1 present',
    });
    expect(byName(evaluateFacts(healthy, ctx({ interface: undefined })), 'interface')).toEqual([]);
  });

  it('fails a stale lock, warns a fresh one', () => {
    const lock = { ageS: 3600, path: '/etc/iptables.up.rules.fwgen-lock', owner: 'me@box run X' };
    const stale = one(evaluateFacts({ ...healthy, lock }, ctx()), 'lock');
    expect(stale).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('stale lock /etc/iptables.up.rules.fwgen-lock, 60 min old (me@box run X)'),
    });
    expect(stale.fix).toContain('rm -rf /etc/iptables.up.rules.fwgen-lock');
    expect(one(evaluateFacts({ ...healthy, lock: { ...lock, ageS: 20 } }, ctx()), 'lock').level).toBe('warn');
  });

  it('fails a dead-man switch nothing will fire; warns one in flight (and then the lock is not stale)', () => {
    const armed = { ageS: 4000, alive: false, id: 'RUN1', path: '/etc/iptables.up.rules.fwgen-armed.RUN1' };
    const dead = one(evaluateFacts({ ...healthy, armed: [armed] }, ctx()), 'dead-man switch');
    expect(dead).toMatchObject({ level: 'fail', fix: expect.stringContaining('`fwgen ship --host web1 --force`') });
    const inFlight = evaluateFacts(
      { ...healthy, armed: [{ ...armed, ageS: 3, alive: true }], lock: { ageS: 900, path: '/l', owner: '' } },
      ctx(),
    );
    expect(one(inFlight, 'dead-man switch').level).toBe('warn');
    expect(one(inFlight, 'lock').level).toBe('warn');
  });

  it('warns about staged files of an interrupted ship, unless a ship is in flight', () => {
    const staged = [{ ageS: 5, path: '/etc/iptables.up.rules.fwgen-new.RUN2' }];
    expect(one(evaluateFacts({ ...healthy, staged }, ctx()), 'interrupted ship')).toMatchObject({
      level: 'warn',
      fix: expect.stringContaining('rm -f /etc/iptables.up.rules.fwgen-new.RUN2'),
    });
    expect(
      byName(
        evaluateFacts({ ...healthy, staged, lock: { ageS: 5, path: '/l', owner: '' } }, ctx()),
        'interrupted ship',
      ),
    ).toEqual([]);
  });

  it('fails a non-root login without sudo and skips what needs root; says ok for working sudo', () => {
    const checks = evaluateFacts({ ...healthy, uid: 1000 }, ctx({}, { ...web1, ssh: { ...web1.ssh, user: 'deploy' } }));
    expect(one(checks, 'privileges')).toMatchObject({ level: 'fail', fix: expect.stringContaining('ssh.sudo: true') });
    expect(byName(checks, 'backend')).toEqual([]);
    const sudo = evaluateFacts(healthy, ctx({}, { ...web1, ssh: { ...web1.ssh, user: 'deploy', sudo: true } }));
    expect(one(sudo, 'sudo')).toMatchObject({ level: 'ok', detail: 'sudo -n works for deploy' });
  });
});

describe('SSH failures', () => {
  const kinds = (err: TransportError) => transportFailureChecks(web1, err).map((c) => `${c.name}:${c.level}`);

  it('says which step failed and keeps the steps before it', () => {
    expect(kinds(new TransportError('unreachable', 'cannot connect'))).toEqual(['ssh:fail']);
    expect(kinds(new TransportError('timeout', 'timed out'))).toEqual(['ssh:fail']);
    expect(kinds(new TransportError('host-key-unknown', 'unknown'))).toEqual(['ssh:ok', 'host key:fail']);
    expect(kinds(new TransportError('host-key-changed', 'changed'))).toEqual(['ssh:ok', 'host key:fail']);
    expect(kinds(new TransportError('auth-failed', 'auth'))).toEqual(['ssh:ok', 'host key:ok', 'authentication:fail']);
    expect(kinds(new TransportError('sudo-password', 'sudo'))).toEqual([
      'ssh:ok',
      'host key:ok',
      'authentication:ok',
      'sudo:fail',
    ]);
  });

  it('gives the ssh-keygen -R fix for a changed key, with the known_hosts name for the port', () => {
    const [, key] = transportFailureChecks(
      { ...web1, ssh: { ...web1.ssh, port: 2222 } },
      new TransportError('host-key-changed', 'host key for ... does not match'),
    );
    expect(key.fix).toContain("ssh-keygen -R '[198.18.80.11]:2222' -f /tmp/kh");
    expect(key.detail).toBe('host key for ... does not match');
  });
});

describe('name checks (fake resolver: no DNS query leaves the test)', () => {
  const resolver = staticResolver({ names: { 'web1.lab': ['198.18.80.11'] }, ptr: { '198.18.80.11': ['web1.lab'] } });

  it('skips resolving an address, checks the PTR', async () => {
    expect(await nameChecks(web1, resolver)).toEqual([
      { host: 'web1', name: 'PTR', level: 'ok', detail: '198.18.80.11 → web1.lab' },
    ]);
  });

  it('fails a name that does not resolve; a missing PTR is only a warning', async () => {
    const named = (host: string): Host => ({
      ...web1,
      addresses: [{ family: 'ipv4', cidr: '198.18.80.12/32', key: '' }],
      ssh: { ...web1.ssh, host },
    });
    const good = await nameChecks(named('web1.lab'), resolver);
    expect(good.map((c) => [c.name, c.level, c.detail])).toEqual([
      ['ssh.host resolves', 'ok', 'web1.lab → 198.18.80.11'],
      ['PTR', 'warn', 'no PTR record for 198.18.80.12 (ENOTFOUND)'],
    ]);
    const bad = await nameChecks(named('nowhere.lab'), resolver);
    expect(bad[0]).toMatchObject({
      name: 'ssh.host resolves',
      level: 'fail',
      fix: expect.stringContaining('set ssh.host of web1 to an address'),
    });
  });
});

describe('doctorHost (fake transport)', () => {
  const inv = { hasIpv6: false, interface: 'eth1', trust: 'fleet' } as Inventory;
  const deps = (transport: Transport): DoctorDeps => ({
    transport,
    resolver: staticResolver({ ptr: { '198.18.80.11': ['web1.lab'] } }),
    connectTimeoutMs: 1000,
  });
  const healthyOutput = [
    'uid=0',
    ...TOOLS.map((t) => `tool=${t}`),
    'version=iptables v1.8.9 (nf_tables)',
    'count.legacy4=0',
    'live4=match',
    'boot=if-pre-up.d 1 ok /etc/network/if-pre-up.d/iptables',
    'addr=eth1 198.18.80.11',
    'link=eth1',
    'status=facts',
  ].join('\n');

  it('connects once, runs one script, and reports every check ok', async () => {
    const scripts: string[] = [];
    const targets: ConnectTarget[] = [];
    const transport: Transport = {
      connect: async (t) => {
        targets.push(t);
        return {
          run: async (s) => (scripts.push(s.script), { code: 0, stdout: healthyOutput, stderr: '' }),
          close: () => {},
        } satisfies Session;
      },
    };
    const checks = await doctorHost(web1, inv, PATHS, deps(transport));
    expect(checks.filter((c) => c.level !== 'ok')).toEqual([]);
    expect(checks.map((c) => c.name).slice(0, 4)).toEqual(['ssh', 'host key', 'authentication', 'tools']);
    expect(checks.at(-1)?.name).toBe('PTR');
    expect(scripts).toHaveLength(1);
    expect(targets[0]).toMatchObject({ acceptNew: false, timeoutMs: 1000 });
    expect(worstLevel(checks)).toBe('ok');
  });

  it('turns a connection failure into checks, never an exception', async () => {
    const transport: Transport = {
      connect: async () =>
        Promise.reject(new TransportError('unreachable', 'cannot connect to root@198.18.80.11: ECONNREFUSED')),
    };
    const checks = await doctorHost(web1, inv, PATHS, deps(transport));
    expect(checks.map((c) => `${c.name}:${c.level}`)).toEqual(['ssh:fail', 'PTR:ok']);
    expect(worstLevel(checks)).toBe('fail');
  });

  it('reports a sudo refusal (thrown by the first run) as the sudo check', async () => {
    const sudoHost = { ...web1, ssh: { ...web1.ssh, user: 'deploy', sudo: true } };
    const transport: Transport = {
      connect: async () => ({
        run: async () =>
          Promise.reject(new TransportError('sudo-password', 'sudo -n refused: sudo: a password is required')),
        close: () => {},
      }),
    };
    const checks = await doctorHost(sudoHost, inv, PATHS, deps(transport));
    expect(one(checks, 'sudo')).toMatchObject({
      level: 'fail',
      detail: 'sudo -n refused: sudo: a password is required',
      fix: expect.stringContaining('NOPASSWD'),
    });
  });

  it('fails clearly when the script itself fails on the host', async () => {
    const transport: Transport = {
      connect: async () => ({
        run: async () => ({ code: 127, stdout: '', stderr: 'sh: 1: stat: not found\n' }),
        close: () => {},
      }),
    };
    const checks = await doctorHost(web1, inv, PATHS, deps(transport));
    expect(one(checks, 'facts')).toMatchObject({
      level: 'fail',
      detail: 'the checking script failed on the host: sh: 1: stat: not found',
    });
  });
});

describe('boot hook and unit text (remote/boot.sh)', () => {
  it('is byte for byte what ship --persist wrote before (test/fixtures/boot/), for each rules path', () => {
    for (const [dir, paths] of Object.entries(BOOT_FIXTURES)) {
      for (const file of ['hook', 'unit'] as const) {
        const r = bootSh(paths, `${file}_text`);
        expect(r.stderr.toString(), `${dir}/${file}`).toBe('');
        expect(r.status, `${dir}/${file}`).toBe(0);
        expect(r.stdout.toString('utf8'), `${dir}/${file}`).toBe(fixture(dir, file).toString('utf8'));
        expect(r.stdout.equals(fixture(dir, file)), `${dir}/${file}`).toBe(true);
      }
    }
  });

  it('loads the sets first, then each family once per boot, logging a failure without failing', () => {
    const hook = fixture('iptables.up.rules', 'hook').toString('utf8');
    expect(hook.indexOf('ipset restore -exist < /etc/iptables.up.rules.ipset')).toBeGreaterThan(0);
    expect(hook.indexOf('ipset restore')).toBeLessThan(hook.indexOf('iptables-restore'));
    expect(hook).toContain(
      'if [ -r /etc/iptables.up.rules ] && ! iptables -n -L FWGEN-INPUT >/dev/null 2>&1; then iptables-restore --noflush < /etc/iptables.up.rules || logger',
    );
    expect(hook).toContain(
      'if [ -r /etc/ip6tables.up.rules ] && ! ip6tables -n -L FWGEN-INPUT >/dev/null 2>&1; then ip6tables-restore --noflush < /etc/ip6tables.up.rules || logger',
    );
    expect(hook.trim().endsWith('exit 0')).toBe(true);
  });

  it('`differs` is true only for a file that exists with other content; the paths are those of boot-hook.ts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwgen-boot-'));
    try {
      for (const file of ['hook', 'unit'] as const) {
        const same = join(dir, `${file}.same`);
        const other = join(dir, `${file}.other`);
        writeFileSync(same, fixture('iptables.up.rules', file));
        writeFileSync(other, fixture('rules.v4', file));
        const differs = (f: string) => bootSh(PATHS, `differs "${f}" ${file}_text`).status;
        expect([differs(same), differs(other), differs(join(dir, 'missing'))], file).toEqual([1, 0, 1]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(bootSh(PATHS, 'echo "$BOOT_HOOK $BOOT_UNIT"').stdout.toString()).toBe(
      `${BOOT_HOOK_PATH} ${BOOT_UNIT_PATH}\n`,
    );
  });
});

describe('boot hook step (remote/boot-hook.sh)', () => {
  it("is valid POSIX sh, installs only when nothing loads rules at boot, rewrites only fwgen's own hook", () => {
    const call = bootHookCall(PATHS);
    expect(call.name).toBe('boot-hook');
    expect(call.args).toEqual([PATHS.rules, PATHS.rules6, BOOT_MARKER]);
    expect(call.script).toBe(`${remote('lib.sh')}\n${remote('boot.sh')}\n${remote('boot-hook.sh')}`);
    expect(call.script).not.toContain(PATHS.rules);
    expect(spawnSync('sh', ['-n', '-c', call.script]).status).toBe(0);
    const script = remote('boot-hook.sh');
    expect(script).toContain('write "$BOOT_HOOK" 755 hook_text');
    // Detection comes first, and every outcome other than "nothing found" exits before installing.
    expect(script.indexOf('status=inactive')).toBeLessThan(script.indexOf('mkdir -p /etc'));
    // Before that, fwgen's own hook and unit (those two paths only) are rewritten when they differ,
    // the hook keeping its mode, the unit its enablement.
    const update = script.slice(script.indexOf('updated=0'), script.indexOf('finish present'));
    expect(update).toContain(
      'if differs "$BOOT_HOOK" hook_text; then\n  mode=644; [ -x "$BOOT_HOOK" ] && mode=755\n  write "$BOOT_HOOK" "$mode" hook_text\n',
    );
    expect(update).toContain(
      'if differs "$BOOT_UNIT" unit_text; then\n  write "$BOOT_UNIT" 644 unit_text\n  [ -d /run/systemd/system ] && systemctl daemon-reload',
    );
    expect(update.match(/\bwrite \S+/g)).toEqual(['write "$BOOT_HOOK"', 'write "$BOOT_UNIT"']);
    expect(update).not.toMatch(/\b(ln|rm|mkdir)\b/);
  });

  it('refuses, before looking at anything, rules paths that the hook could not hold unquoted', () => {
    const call = bootHookCall({ rules: '/etc/fw rules', rules6: '/etc/fw rules6' });
    // No PATH: were the guard gone, the step could not install anything on this machine either.
    const r = spawnSync(DASH, ['-c', call.script, `fwgen-${call.name}`, ...call.args], {
      env: { PATH: '/nonexistent' },
      encoding: 'utf8',
    });
    expect([r.status, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toContain('fwgen: rules paths with characters a boot hook cannot hold: /etc/fw rules');
  });

  it('parses its outcome', () => {
    const installed = parseBootHookResult(
      'boot=if-pre-up.d 1 no-ifupdown /etc/network/if-pre-up.d/fwgen-iptables\nstatus=installed\n',
    );
    expect(installed).toEqual({
      status: 'installed',
      mechanism: {
        kind: 'if-pre-up.d',
        loadsRules: true,
        state: 'no-ifupdown',
        path: '/etc/network/if-pre-up.d/fwgen-iptables',
      },
    });
    expect(describeBootHookResult(installed!, PATHS.rules)).toBe(
      'boot hook installed: /etc/network/if-pre-up.d/fwgen-iptables, but ifupdown is not installed, so if-pre-up.d hooks never run',
    );
    // Detection before the rewrite, then the rewritten one.
    const updated = parseBootHookResult(
      [
        'boot=netfilter-persistent 0 ok /etc/iptables/rules.v4',
        'boot=if-pre-up.d 1 no-ifupdown /etc/network/if-pre-up.d/fwgen-iptables',
        'boot=if-pre-up.d 1 ok /etc/network/if-pre-up.d/fwgen-iptables',
        'status=updated',
      ].join('\n'),
    )!;
    expect(updated).toEqual({
      status: 'updated',
      mechanism: {
        kind: 'if-pre-up.d',
        loadsRules: true,
        state: 'ok',
        path: '/etc/network/if-pre-up.d/fwgen-iptables',
      },
    });
    expect(describeBootHookResult(updated, PATHS.rules)).toBe(
      'boot hook updated: /etc/network/if-pre-up.d/fwgen-iptables (it differed from what this fwgen writes)',
    );
    expect(
      describeBootHookResult(
        { ...updated, mechanism: { ...updated.mechanism!, state: 'not-executable' } },
        PATHS.rules,
      ),
    ).toBe(
      'boot hook updated: /etc/network/if-pre-up.d/fwgen-iptables (it differed from what this fwgen writes), but it is not executable, so run-parts skips it',
    );
    const present = parseBootHookResult('boot=systemd 1 ok /etc/systemd/system/fw.service\nstatus=present\n')!;
    expect(describeBootHookResult(present, PATHS.rules)).toBe(
      'boot: /etc/systemd/system/fw.service already loads /etc/iptables.up.rules',
    );
    const conflict = parseBootHookResult('boot=netfilter-persistent 0 ok /etc/iptables/rules.v4\nstatus=conflict\n')!;
    expect(conflict.status).toBe('conflict');
    expect(parseBootHookResult('fwgen: cannot write\n')).toBeUndefined();
    expect(parseBootMechanisms('boot=other 1 ok /x\nboot=systemd 2 ok /y\n')).toEqual([]);
  });
});

describe('inventory checks (offline)', () => {
  const check = (yaml: string) => {
    const inv = parseInventory(yaml, 'inv.yaml').inventory;
    return inventoryChecks(
      inv,
      resolvePolicies(inv, () => 'base.rules.njk'),
    );
  };
  const base = (o: { iface?: string; trust?: string; management?: string; roles?: string; monitoring?: string }) => `
defaults: { ${o.iface === undefined ? 'interface: eth1' : o.iface} }
${o.management ?? 'management: [203.0.113.0/28]'}
trust: ${o.trust ?? 'fleet'}
${o.monitoring ?? ''}
roles:
  web: { public: true, ports: [tcp/8080], hosts: { web1: 198.51.100.11, web2: 198.51.100.12 } }
${o.roles ?? ''}
`;

  it('passes a sound inventory with only ok checks', () => {
    const checks = check(
      base({
        roles: '  db: { allow: [{ from: [192.0.2.0/24, web], ports: [tcp/5432] }], hosts: { db1: 198.51.100.21 } }',
      }),
    );
    expect(checks).toEqual([{ name: 'management', level: 'ok', detail: '203.0.113.0/28 may always reach SSH' }]);
  });

  it('fails when there are no management networks', () => {
    const [m] = check(base({ management: '' }));
    expect(m).toMatchObject({ name: 'management', level: 'fail', fix: expect.stringContaining('management:') });
  });

  it('warns about roles without hosts and rules whose sources have no address', () => {
    const checks = check(
      base({
        roles:
          '  empty: { public: true, hosts: {} }\n  db: { allow: [{ from: [empty], ports: [tcp/5432] }], hosts: { db1: 198.51.100.21 } }',
      }),
    );
    expect(one(checks, 'role without hosts').detail).toBe('role empty has no hosts: its rules file goes nowhere');
    expect(one(checks, 'rule never matches').detail).toBe(
      'role db allow#1 (from empty to tcp/5432): its sources have no address (role empty has no hosts)',
    );
  });

  it('warns about allow rules shadowed by fleet trust, saying on which interface', () => {
    const roles =
      '  db: { allow: [{ from: [web], ports: [tcp/5432] }, { from: [web1, 198.51.100.12], ports: [tcp/6379] }, { from: [web, 192.0.2.7], ports: [tcp/9000] }], hosts: { db1: 198.51.100.21 } }';
    const shadowed = byName(check(base({ roles })), 'rule shadowed');
    expect(shadowed.map((c) => c.detail.split(' is shadowed')[0])).toEqual([
      'role db allow#1 (from web to tcp/5432)',
      'role db allow#2 (from web1, 198.51.100.12/32 to tcp/6379)',
    ]);
    expect(shadowed[0].detail).toContain('is shadowed on eth1 by fleet trust');
    expect(byName(check(base({ roles, iface: '' })), 'rule shadowed')[0].detail).toContain(
      'is shadowed by fleet trust: every source is an inventory host, which already reaches every port',
    );
    expect(byName(check(base({ roles, trust: 'none' })), 'rule shadowed')).toEqual([]);
  });

  it('warns about allowed ports that public or ports already open to everyone, monitoring included', () => {
    const checks = check(
      base({
        monitoring: 'monitoring: [{ from: [192.0.2.9], ports: [tcp/8080] }]',
        roles:
          '  db: { ports: [tcp/9000-9100], allow: [{ from: [192.0.2.0/24], ports: [tcp/9010, tcp/5432] }], hosts: { db1: 198.51.100.21 } }\n  web2role: { public: true, allow: [{ from: [192.0.2.0/24], ports: [tcp/443, udp/443] }], hosts: { w3: 198.51.100.13 } }',
      }),
    );
    expect(byName(checks, 'rule adds nothing').map((c) => c.detail.slice(c.detail.indexOf('): ') + 3))).toEqual([
      'tcp/9010 is already open to everyone on db by `ports`',
      'tcp/8080 is already open to everyone on web by `ports`',
      'tcp/443 is already open to everyone on web2role by `public`',
    ]);
  });
});

describe('report lines', () => {
  it('formats ok, WARN and FAIL with the fix', () => {
    expect(formatCheck({ name: 'ssh', level: 'ok', detail: 'reachable at 198.18.80.11' })).toBe(
      '  ok    ssh: reachable at 198.18.80.11',
    );
    expect(formatCheck({ name: 'boot', level: 'fail', detail: 'nothing loads it', fix: 'do this' })).toBe(
      '  FAIL  boot: nothing loads it  → fix: do this',
    );
    expect(formatCheck({ name: 'PTR', level: 'warn', detail: 'none', fix: 'add one' })).toBe(
      '  WARN  PTR: none  → fix: add one',
    );
  });
});
