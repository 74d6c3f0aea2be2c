/**
 * Issue 16, findings 3 and 7, on the controller: names from ssh_config are literal before anything
 * connects to them or records their key; known_hosts is a known_hosts file (never authorized_keys,
 * never a device); ssh_config includes and patterns are bounded. test/e2e/host-ssh.test.ts runs the
 * same refusals through the CLI with real sshd hosts.
 */
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import type { SshSettings } from '../src/inventory/model.js';
import { readKnownHosts, recordHostKey, verifyHostKey } from '../src/remote/known-hosts.js';
import { resolveReach } from '../src/remote/reach.js';
import { loadSshConfig, patternListMatches, SSH_CONFIG_LIMITS } from '../src/remote/ssh-config.js';
import { authMethods } from '../src/remote/ssh-transport.js';
import { globMatch, globMatcher } from '../src/util/glob.js';

const { utils } = ssh2;
const edKey = utils.parseKey(utils.generateKeyPairSync('ed25519').public) as { getPublicSSH(): Buffer };
const KEY = edKey.getPublicSSH();
const KEY_LINE = `ssh-ed25519 ${KEY.toString('base64')}`;

const ssh = (host: string, extra: Partial<SshSettings> = {}): SshSettings => ({
  host,
  user: 'root',
  port: 22,
  knownHosts: '~/.ssh/known_hosts',
  sudo: false,
  ...extra,
});

const timed = <T>(f: () => T): { value?: T; error?: unknown; ms: number } => {
  const t0 = performance.now();
  try {
    return { value: f(), ms: performance.now() - t0 };
  } catch (error) {
    return { error, ms: performance.now() - t0 };
  }
};

describe('controller-side SSH files and names', () => {
  let dir: string;
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const config = (name: string, text: string) => loadSshConfig(file(name, text));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-ssh-hardening-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe('finding 3: every hop is a literal name', () => {
    it('`HostName *` (or a pattern, a list) for the target is refused before use', () => {
      for (const bad of ['*', '*.example.net', 'a,b', '!x', '[x]', '|1|abc', 'x y']) {
        const cfg = config('hn', `Host web\n  HostName ${bad}\n`);
        expect(() => resolveReach(ssh('web'), cfg), bad).toThrow(ConfigError);
      }
      const cfg = config('hn-star', 'Host web\n  HostName *\n');
      expect(() => resolveReach(ssh('web'), cfg)).toThrow(
        /HostName "\*" for web is neither an IP address nor a DNS name \(fwgen connects to, and records host keys for, literal names only\)/,
      );
    });

    it('a ProxyJump to a pattern, or to an alias whose HostName is one, is refused; a bad Port too', () => {
      expect(() => resolveReach(ssh('web'), config('pj1', 'Host web\n  ProxyJump *\n'))).toThrow(
        /"\*" \(jump host "\*"\) is not a host name/,
      );
      expect(() =>
        resolveReach(ssh('web'), config('pj2', 'Host web\n  ProxyJump bastion\nHost bastion\n  HostName *\n')),
      ).toThrow(/HostName "\*" for bastion \(jump host "bastion"\)/);
      expect(() => resolveReach(ssh('web'), config('port', 'Host web\n  Port 0\n'))).toThrow(/Port "0" for web/);
    });

    it('literal names still resolve: HostName %h.domain, addresses, aliases with ProxyJump', () => {
      const cfg = config(
        'ok',
        'Host web\n  HostName %h.example.net\n  ProxyJump jump_1:2222\nHost jump_1\n  HostName 2001:db8::1\n',
      );
      const r = resolveReach(ssh('web'), cfg);
      expect(r.target.host).toBe('web.example.net');
      expect(r.jumps.map((j) => [j.name, j.host, j.port])).toEqual([['jump_1', '2001:db8::1', 2222]]);
    });

    it('recordHostKey writes only a literal name or [name]:port, never a pattern or an authorized_keys option', () => {
      const kh = join(dir, 'known_hosts_record');
      for (const [host, port] of [
        ['*', 22],
        ['a,b', 22],
        ['!x', 22],
        ['|1|x|y', 22],
        ['restrict', 22],
        ['no-pty', 22],
        ['web', 0],
      ] as const)
        expect(() => recordHostKey(kh, host, port, KEY), `${host}:${port}`).toThrow(/refusing to record/);
      recordHostKey(kh, 'restrict', 2222, KEY);
      recordHostKey(kh, 'web1.example.net', 22, KEY);
      recordHostKey(kh, '2001:db8::5', 22, KEY);
      expect(readFileSync(kh, 'utf8')).toBe(
        `[restrict]:2222 ${KEY_LINE}\nweb1.example.net ${KEY_LINE}\n2001:db8::5 ${KEY_LINE}\n`,
      );
    });

    it('known_hosts at an authorized_keys file is refused, by name, through a symlink, or by its lines', () => {
      const home = join(dir, 'home/.ssh');
      mkdirSync(home, { recursive: true });
      const ak = join(home, 'authorized_keys');
      writeFileSync(ak, `${KEY_LINE} alice@laptop\n`);
      const before = readFileSync(ak, 'utf8');
      expect(() => readKnownHosts(ak)).toThrow(/is an authorized_keys file, not a known_hosts file/);
      expect(() => recordHostKey(ak, 'web1', 22, KEY)).toThrow(/authorized_keys/);
      symlinkSync(ak, join(home, 'kh-link'));
      expect(() => recordHostKey(join(home, 'kh-link'), 'web1', 22, KEY)).toThrow(/authorized_keys/);
      // The same lines under another name: not known_hosts entries.
      for (const line of [
        `${KEY_LINE} alice@laptop`,
        `restrict ${KEY_LINE}`,
        `no-pty,command="/bin/true" ${KEY_LINE}`,
        'from="192.0.2.1" ssh-rsa AAAAB3NzaC1yc2E=',
      ]) {
        const other = file('keys', `${line}\n`);
        expect(() => readKnownHosts(other), line).toThrow(/keys:1: not a known_hosts entry/);
        expect(() => recordHostKey(other, 'web1', 22, KEY)).toThrow(ConfigError);
        expect(readFileSync(other, 'utf8')).toBe(`${line}\n`);
      }
      expect(readFileSync(ak, 'utf8')).toBe(before);
    });

    it('a real known_hosts file reads as before: plain, hashed, ports, @revoked, @cert-authority, comments', () => {
      const salt = Buffer.from('0123456789abcdefghij');
      const hash = createHmac('sha1', salt).update('hashed.example.net').digest();
      const kh = file(
        'known_hosts_ok',
        [
          '# comment',
          `web1,198.51.100.11 ${KEY_LINE} comment`,
          `[198.51.100.12]:2222 ${KEY_LINE}`,
          `|1|${salt.toString('base64')}|${hash.toString('base64')} ${KEY_LINE}`,
          `@revoked old.example.net ${KEY_LINE}`,
          `@cert-authority *.example.net ${KEY_LINE}`,
          `*.lab,!gw.lab ${KEY_LINE}`,
          '',
        ].join('\n'),
      );
      const entries = readKnownHosts(kh);
      expect(verifyHostKey(entries, '198.51.100.11', 22, KEY)).toBe('match');
      expect(verifyHostKey(entries, '198.51.100.12', 2222, KEY)).toBe('match');
      expect(verifyHostKey(entries, 'hashed.example.net', 22, KEY)).toBe('match');
      expect(verifyHostKey(entries, 'old.example.net', 22, KEY)).toBe('mismatch');
      expect(verifyHostKey(entries, 'x.example.net', 22, KEY)).toBe('unknown');
      expect(verifyHostKey(entries, 'a.lab', 22, KEY)).toBe('match');
      expect(verifyHostKey(entries, 'gw.lab', 22, KEY)).toBe('unknown');
    });
  });

  describe('finding 7: bounded controller files and linear-time patterns', () => {
    it('a backtracking pattern against a 40-character name finishes at once (ssh_config, known_hosts, preserve)', () => {
      const name = 'a'.repeat(40);
      const pattern = `${'*a'.repeat(20)}*b`;
      const t = timed(() => [
        patternListMatches([pattern], name),
        globMatch(pattern, name),
        globMatcher([pattern])(name),
        verifyHostKey(readKnownHosts(file('kh-glob', `${pattern} ${KEY_LINE}\n`)), name, 22, KEY),
      ]);
      expect(t.value).toEqual([false, false, false, 'unknown']);
      expect(t.ms).toBeLessThan(100);
    });

    it('globs match as before: * and ?, case-insensitively in ssh_config, negation in lists', () => {
      expect(globMatch('web*', 'web12')).toBe(true);
      expect(globMatch('w?b', 'wab')).toBe(true);
      expect(globMatch('w?b', 'wb')).toBe(false);
      expect(globMatch('*', '')).toBe(true);
      expect(globMatch('a*b*c', 'aXbYbZc')).toBe(true);
      expect(globMatch('a*b*c', 'aXbYbZ')).toBe(false);
      expect(globMatch('DOCKER*', 'docker-user')).toBe(false);
      expect(globMatch('DOCKER*', 'docker-user', true)).toBe(true);
      expect(patternListMatches(['*.example.net', '!db.example.net'], 'db.example.net')).toBe(false);
      expect(globMatcher(['f2b-*', 'KUBE-?ODEPORTS', 'DOCKER'])('KUBE-NODEPORTS')).toBe(true);
      expect(globMatcher(['f2b-*', 'DOCKER'])('DOCKER-USER')).toBe(false);
    });

    it('an Include fan-out (64 files, 4 per level over 16 levels) is refused at once, not read 4^16 times', () => {
      const inc = join(dir, 'fan');
      mkdirSync(inc);
      // 16 levels of 4 files, each including the 4 of the next level: 4^16 reads unbounded, within the depth limit.
      for (let level = 0; level < 16; level++)
        for (let j = 0; j < 4; j++)
          writeFileSync(join(inc, `l${level}-${j}`), `${level < 15 ? `Include ${inc}/l${level + 1}-*\n` : ''}User u\n`);
      const t = timed(() => loadSshConfig(file('fan-config', `Include ${inc}/l0-*\n`)));
      expect(t.error).toBeInstanceOf(ConfigError);
      expect((t.error as Error).message).toMatch(
        new RegExp(`its Include lines read more than ${SSH_CONFIG_LIMITS.files} files`),
      );
      expect(t.ms).toBeLessThan(2000);
    });

    it('known_hosts, ssh_config and identity files that are devices, FIFOs or too large are refused, not read', () => {
      const fifo = join(dir, 'fifo');
      spawnSync('mkfifo', [fifo]);
      const big = join(dir, 'big');
      writeFileSync(big, Buffer.alloc(16 * 1024 * 1024 + 1, 0x61));
      for (const [p, why] of [
        ['/dev/zero', /known_hosts file \/dev\/zero is not a regular file/],
        [fifo, /is not a regular file/],
        [big, /is larger than 16777216 bytes/],
      ] as const) {
        const t = timed(() => readKnownHosts(p));
        expect(t.error, String(p)).toBeInstanceOf(ConfigError);
        expect((t.error as Error).message).toMatch(why);
        expect(t.ms).toBeLessThan(1000);
      }
      expect(() => loadSshConfig('/dev/zero')).toThrow(/ssh_config file \/dev\/zero is not a regular file/);
      const plan = authMethods(
        {
          name: 'h',
          host: 'h',
          port: 22,
          user: 'root',
          identities: ['/dev/zero'],
          identitiesOnly: false,
          knownHosts: '',
        },
        undefined,
      );
      expect(plan.methods).toEqual([]);
      expect(plan.problems.join()).toMatch(/identity file \/dev\/zero is not a regular file/);
    });
  });
});
