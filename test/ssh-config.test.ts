import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import type { Host, Inventory, SshSettings } from '../src/inventory/model.js';
import { sshSourceFor } from '../src/lockout/lockout-source.js';
import { nameChecks, staticResolver } from '../src/doctor/name-checks.js';
import { parseJumpSpec, resolveReach, type Reach } from '../src/remote/reach.js';
import { loadSshConfig, lookupHost, type SshConfig } from '../src/remote/ssh-config.js';

describe('ssh_config evaluation', () => {
  let dir: string;
  let cfg: SshConfig;
  const savedHome = process.env.HOME;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-sshcfg-'));
    process.env.HOME = dir;
    mkdirSync(join(dir, '.ssh', 'conf.d'), { recursive: true });
    writeFileSync(
      join(dir, '.ssh', 'config'),
      `Host web1
  HostName 198.51.100.11
  User deploy
Host web*
  User ignored
  Port 2222
  IdentityFile ~/.ssh/web_key
Host db1
  Include conf.d/*.conf
  IdentityFile ~/.ssh/db_key
Match host 198.51.100.* user ops
  ProxyJump bastion.example.net
Match host 198.51.100.13 exec "touch /tmp/never"
  Port 9999
Host * !web2
  IdentityFile ~/.ssh/any_key
  IdentitiesOnly yes
Host *
  User fallback
`,
    );
    writeFileSync(join(dir, '.ssh', 'conf.d', 'a.conf'), 'Port 2200\nHost other\n  Port 1\n');
    cfg = loadSshConfig(undefined);
  });

  afterAll(() => {
    process.env.HOME = savedHome;
    rmSync(dir, { recursive: true, force: true });
  });

  it('first value wins, IdentityFile accumulates, negated patterns exclude', () => {
    expect(lookupHost(cfg, 'web1')).toMatchObject({
      hostName: '198.51.100.11',
      user: 'deploy',
      port: 2222,
      identitiesOnly: true,
    });
    expect(lookupHost(cfg, 'web1').identityFiles).toEqual(['~/.ssh/web_key', '~/.ssh/any_key']);
    expect(lookupHost(cfg, 'web2')).toMatchObject({ user: 'ignored', port: 2222, identityFiles: ['~/.ssh/web_key'] });
    expect(lookupHost(cfg, 'web2').identitiesOnly).toBeUndefined();
  });

  it('follows Include (relative to ~/.ssh, globbed) inside a Host block, which resumes after it', () => {
    const db = lookupHost(cfg, 'db1');
    expect(db.port).toBe(2200);
    expect(db.identityFiles).toEqual(['~/.ssh/db_key', '~/.ssh/any_key']);
    expect(lookupHost(cfg, 'other').port).toBe(1);
  });

  it('Match host sees HostName, Match user the user; Match exec is never run and warns', () => {
    expect(lookupHost(cfg, 'web1', 'ops').proxyJump).toBe('bastion.example.net');
    expect(lookupHost(cfg, 'web1', 'root').proxyJump).toBeUndefined();
    expect(lookupHost(cfg, '198.51.100.13').port).toBeUndefined();
    expect(cfg.warnings.join('\n')).toMatch(/Match exec touch \/tmp\/never" was not run/);
  });

  it('a missing --ssh-config file is bad input; none reads nothing', () => {
    expect(() => loadSshConfig(join(dir, 'nope'))).toThrow(ConfigError);
    expect(loadSshConfig('none').blocks).toEqual([]);
  });

  const ssh = (o: Partial<SshSettings>): SshSettings => ({
    host: 'web1',
    user: 'root',
    port: 22,
    knownHosts: '~/.ssh/known_hosts',
    sudo: false,
    written: [],
    ...o,
  });

  it('precedence: inventory (written) > ssh_config > built-in defaults; ssh.host may be an alias', () => {
    expect(resolveReach(ssh({}), cfg).target).toMatchObject({
      name: 'web1',
      host: '198.51.100.11',
      user: 'deploy',
      port: 2222,
    });
    const written = resolveReach(
      ssh({ user: 'admin', port: 22, identity: '~/.ssh/mine', written: ['user', 'port', 'identity'] }),
      cfg,
    ).target;
    expect(written).toMatchObject({ user: 'admin', port: 22 });
    expect(written.identities).toEqual(['~/.ssh/mine', '~/.ssh/web_key', '~/.ssh/any_key']);
    expect(resolveReach(ssh({ host: '203.0.113.9' }), loadSshConfig('none')).target).toMatchObject({
      host: '203.0.113.9',
      user: 'root',
      port: 22,
    });
  });

  it('ssh.jump wins over ProxyJump; each jump host is looked up in ssh_config; none disables', () => {
    const viaConfig = resolveReach(ssh({ user: 'ops', written: ['user'] }), cfg);
    expect(viaConfig.jumpFrom).toBe('ssh_config');
    expect(viaConfig.jumps.map((j) => j.host)).toEqual(['bastion.example.net']);
    const viaInventory = resolveReach(
      ssh({ jump: 'admin@web1:2022,[2001:db8::5]', user: 'ops', written: ['user'] }),
      cfg,
    );
    expect(viaInventory.jumps).toMatchObject([
      { name: 'web1', host: '198.51.100.11', user: 'admin', port: 2022 },
      { host: '2001:db8::5', user: 'fallback', port: 22 },
    ]);
    expect(resolveReach(ssh({ jump: 'none', user: 'ops', written: ['user'] }), cfg).jumps).toEqual([]);
  });

  it('rejects a malformed jump list', () => {
    expect(parseJumpSpec('a@b:22,c')).toEqual([
      { user: 'a', host: 'b', port: 22 },
      { user: undefined, host: 'c', port: undefined },
    ]);
    expect(() => parseJumpSpec('a@b:99999')).toThrow(ConfigError);
    expect(() => parseJumpSpec('a@@b')).toThrow(ConfigError);
  });
});

describe('the source address of the lockout check', () => {
  const host = (name: string, address: string, ssh: Partial<SshSettings> = {}): Host => ({
    name,
    role: 'web',
    addresses: [{ family: 'ipv4', cidr: `${address}/32`, key: '' }],
    ssh: { host: address, user: 'root', port: 22, knownHosts: '/dev/null', sudo: false, ...ssh },
  });
  const jumpBox = host('jumpbox', '198.51.100.5', { host: 'jump.example.net' });
  const web1 = host('web1', '198.51.100.11');
  const inv = { hosts: [jumpBox, web1] } as unknown as Inventory;
  const none = loadSshConfig('none');

  it('through a jump host that is an inventory host: its inventory address', async () => {
    const reach = resolveReach({ ...web1.ssh, jump: 'admin@jump.example.net' }, none);
    expect(await sshSourceFor(web1, reach, inv)).toEqual({
      address: '198.51.100.5',
      why: 'jump host jumpbox (inventory address)',
    });
  });

  it('through another jump host: its address as resolved; --from and ssh.source win', async () => {
    const reach = resolveReach({ ...web1.ssh, jump: 'first,203.0.113.7:2222' }, none);
    expect((await sshSourceFor(web1, reach, inv)).address).toBe('203.0.113.7');
    expect(await sshSourceFor(host('web1', '198.51.100.11', { source: '192.0.2.9' }), reach, inv)).toEqual({
      address: '192.0.2.9',
      why: 'ssh.source',
    });
    expect(await sshSourceFor(web1, reach, inv, '192.0.2.10')).toEqual({ address: '192.0.2.10', why: '--from' });
  });
});

describe('doctor name checks with ssh_config', () => {
  const web = {
    name: 'web1',
    role: 'web',
    addresses: [],
    ssh: { host: 'web1-alias', user: 'root', port: 22, knownHosts: '/dev/null', sudo: false },
  } as Host;
  const resolver = staticResolver({ names: { 'web1.example.net': ['198.51.100.11'] } });
  const reach = (hostName: string, jump?: string): Reach =>
    resolveReach({ ...web.ssh, host: hostName, jump }, loadSshConfig('none'));

  it('checks the HostName an alias stands for, and leaves a name behind a jump host to the jump host', async () => {
    expect(await nameChecks(web, resolver, reach('web1.example.net'))).toEqual([
      { host: 'web1', name: 'ssh.host resolves', level: 'ok', detail: 'web1.example.net → 198.51.100.11' },
    ]);
    expect((await nameChecks(web, resolver, reach('internal.lan', 'bastion')))[0]).toMatchObject({
      level: 'ok',
      detail: 'internal.lan is resolved by the jump host',
    });
    expect((await nameChecks(web, resolver))[0]).toMatchObject({ level: 'fail' });
  });
});
