import { describe, expect, it } from 'vitest';
import { evaluateInput } from '../src/lockout/lockout.js';
import { fingerprint, knownHostsName, readKnownHosts, verifyHostKey } from '../src/remote/known-hosts.js';
import { fleetSucceeded, shipFleet } from '../src/ship/ship-fleet.js';
import type { Effects } from '../src/ship/ship-host.js';
import { effects, fake, FakeTransport, job, ok, readOutput, settings, type FakeHost } from './support/fake-hosts.js';
import { TransportError, type ExecResult, type Session, type Transport } from '../src/remote/transport.js';
import { runBootHook } from '../src/remote/boot-hook.js';
import { rules6PathFor, type RemoteCall } from '../src/remote/scripts.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';

/** Refuses only the confirmation (2nd connection); the verification (3rd) gets through. */
function refuseConfirmation<T extends Effects>(fx: T, host: FakeHost): T {
  const transport = fx.transport as FakeTransport;
  const orig = transport.connect.bind(transport);
  transport.connect = async (t) => {
    if (host.connects === 1) {
      host.connects++;
      throw new TransportError('unreachable', 'connect ECONNREFUSED');
    }
    return orig(t);
  };
  return fx;
}

describe('ship fleet logic (fake transport)', () => {
  it('applies, confirming over a second connection', async () => {
    const hosts = { a: fake() };
    const [r] = await shipFleet([job('a')], settings, effects(hosts), 4);
    expect(r).toMatchObject({ host: 'a', outcome: 'applied', backup: '20261121T000000Z' });
    expect(hosts.a.connects).toBe(2);
    expect(hosts.a.scripts).toEqual(['read', 'apply', 'commit']);
  });

  it('reports unchanged without applying, in one command', async () => {
    const hosts = {
      a: fake({ read: readOutput({ file4: '*filter\nCOMMIT\n', live4: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n' }) }),
    };
    const [r] = await shipFleet([job('a')], settings, effects(hosts), 4);
    expect(r.outcome).toBe('unchanged');
    expect(hosts.a.scripts).toEqual(['read']);
  });

  it('ipset mode: a host without the ipset command fails clearly, before anything is uploaded', async () => {
    const section = (t?: string) => (t === undefined ? '-1\n' : `${Buffer.byteLength(t)}\n${t}`);
    const read = ok(
      `-1\n${section('*filter\nCOMMIT\n')}${section('')}-1\n-1\nstatus=read backups=0 armed=0 locked=0 fp4=abc fp6=- ipset=0\n`,
    );
    const hosts = { a: fake({ read }) };
    const sets = Buffer.from('create fwgen-fleet-4 hash:net family inet\nadd fwgen-fleet-4 198.18.0.1\n');
    const [r] = await shipFleet([{ ...job('a'), sets }], settings, effects(hosts), 4);
    expect(r).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('apt-get install ipset') });
    expect(hosts.a.scripts).toEqual(['read']);
  });

  it('ipset mode: the sets are one more verified part of the upload, before the switch', async () => {
    const hosts = { a: fake() };
    const sets = Buffer.from('create fwgen-fleet-4 hash:net family inet\nadd fwgen-fleet-4 198.18.0.1\n');
    const [r] = await shipFleet([{ ...job('a'), sets }], settings, effects(hosts), 4);
    expect(r, r!.reason).toMatchObject({ outcome: 'applied' });
    const upload = hosts.a.stdin[1]!.toString('utf8');
    expect(upload.indexOf('add fwgen-fleet-4 198.18.0.1')).toBeLessThan(upload.indexOf('fwgen dead-man switch'));
  });

  describe('ipsets left on a host, or not wanted any more', () => {
    const file4 = '*filter\nCOMMIT\n';
    const live4 = '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n';
    const fleet =
      'create fwgen-fleet-4 hash:net family inet hashsize 1024 maxelem 65536\nadd fwgen-fleet-4 198.18.0.1\n';
    const old =
      'create fwgen-web-a1-4 hash:net family inet hashsize 1024 maxelem 65536\nadd fwgen-web-a1-4 198.18.0.9\n';

    it('sets: none after ipset mode: the leftover sets and sets file are dropped in a transaction', async () => {
      const hosts = { a: fake({ read: readOutput({ file4, live4, liveSets: fleet, setsFile: fleet }) }) };
      const [r] = await shipFleet([job('a')], settings, effects(hosts), 4);
      expect(r, r!.reason).toMatchObject({ outcome: 'applied' });
      expect(hosts.a.scripts).toEqual(['read', 'apply', 'commit']);
      const upload = hosts.a.stdin[1]!.toString('utf8');
      expect(upload).toContain('# fwgen: no sets (sets: none)');
      expect(upload).not.toMatch(/^create /m);
    });

    it('sets: none: a sets file alone is left over too; a host with neither is unchanged', async () => {
      const hosts = {
        a: fake({ read: readOutput({ file4, live4, liveSets: '', setsFile: fleet }) }),
        b: fake({ read: readOutput({ file4, live4, liveSets: '' }) }),
      };
      const rs = await shipFleet([job('a'), job('b')], { ...settings, dryRun: true }, effects(hosts), 4);
      expect(Object.fromEntries(rs.map((r) => [r.host, [r.outcome, r.reason]]))).toEqual({
        a: ['would-apply', "fwgen's ipsets are left from sets: ipset"],
        b: ['unchanged', 'fwgen rules and rules file already match'],
      });
    });

    it('--dry-run shows the set change as ipset commands: members added and deleted, sets destroyed', async () => {
      const live = `${fleet}${old}`;
      const hosts = { a: fake({ read: readOutput({ file4, live4, liveSets: live, setsFile: live }) }) };
      const sets = Buffer.from(fleet.replace('198.18.0.1', '198.18.0.2'));
      const [r] = await shipFleet([{ ...job('a'), sets }], { ...settings, dryRun: true }, effects(hosts), 4);
      expect(r).toMatchObject({ outcome: 'would-apply', reason: 'ipsets differ' });
      expect((r as { diff?: string }).diff?.split('\n')).toEqual([
        "# the change to fwgen's ipsets (each set swapped in whole):",
        'add fwgen-fleet-4 198.18.0.2',
        'del fwgen-fleet-4 198.18.0.1',
        'destroy fwgen-web-a1-4',
      ]);
      expect(hosts.a.scripts).toEqual(['read']);
    });

    it('ipset mode: a live fwgen set the role no longer matches makes the host changed, not unchanged', async () => {
      const live = `${fleet}${old}`;
      const hosts = { a: fake({ read: readOutput({ file4, live4, liveSets: live, setsFile: fleet }) }) };
      const [r] = await shipFleet([{ ...job('a'), sets: Buffer.from(fleet) }], settings, effects(hosts), 4);
      expect(r, r!.reason).toMatchObject({ outcome: 'applied' });
    });
  });

  it('uploads every part the apply step verifies: files, change, undo, the switch', async () => {
    const hosts = { a: fake() };
    await shipFleet([job('a')], settings, effects(hosts), 4);
    const upload = hosts.a.stdin[1]!.toString('utf8');
    expect(upload.startsWith('*filter\nCOMMIT\n')).toBe(true);
    expect(upload).toContain('fwgen dead-man switch');
  });

  it('fails a host whose kernel rejects the rules, with the kernel message', async () => {
    const hosts = {
      a: fake({
        apply: {
          code: 11,
          stdout: '',
          stderr: 'fwgen: iptables-restore --test rejected the new rules: line 3 failed\n',
        },
      }),
    };
    const [r] = await shipFleet([job('a')], settings, effects(hosts), 4);
    expect(r).toMatchObject({
      outcome: 'failed',
      reason: 'iptables-restore --test rejected the new rules: line 3 failed',
    });
  });

  it('waits for the dead-man switch and reports rolled-back when the new connection fails', async () => {
    const hosts = { a: fake({ verify: ok('status=rolled-back\n') }) };
    const fx = refuseConfirmation(effects(hosts), hosts.a);
    const [r] = await shipFleet([job('a')], settings, fx, 4);
    expect(r.outcome).toBe('rolled-back');
    expect(r.reason).toMatch(/new SSH connection after applying failed.*restored its previous rules after 5s/);
    expect(fx.slept[0]).toBeGreaterThanOrEqual(5000);
  });

  it('reports rolled-back when the switch fired before the confirmation arrived', async () => {
    const hosts = { a: fake({ commit: { code: 14, stdout: 'status=rolled-back\n', stderr: '' } }) };
    const [r] = await shipFleet([job('a')], settings, effects(hosts), 4);
    expect(r.outcome).toBe('rolled-back');
  });

  it('a connection lost during apply is settled over a new connection: committed, or nothing applied', async () => {
    const lost = (h: FakeHost) => {
      const t = new FakeTransport({ a: h });
      const orig = t.connect.bind(t);
      t.connect = async (target) => {
        const session = await orig(target);
        const run = session.run;
        return {
          ...session,
          run: async (call: RemoteCall, stdin?: Buffer) => {
            if (call.name === 'apply')
              throw new TransportError('unreachable', 'connection lost while a command was running');
            return run(call, stdin);
          },
        };
      };
      return t;
    };
    const applied = fake();
    const [r1] = await shipFleet(
      [job('a')],
      settings,
      { transport: lost(applied), sleep: async () => {}, now: () => 0 },
      1,
    );
    expect(r1.outcome).toBe('applied');
    const never = fake({ commit: { code: 17, stdout: 'status=never-armed\n', stderr: '' } });
    const [r2] = await shipFleet(
      [job('a')],
      settings,
      { transport: lost(never), sleep: async () => {}, now: () => 0 },
      1,
    );
    expect(r2).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('before anything was applied') });
  });

  it('reports a dead-man switch that could not restore as a failure, not a rollback', async () => {
    const hosts = { a: fake({ verify: ok('status=rollback-failed\n') }) };
    const fx = refuseConfirmation(effects(hosts), hosts.a);
    const [r] = await shipFleet([job('a')], settings, fx, 1);
    expect(r).toMatchObject({
      outcome: 'failed',
      reason: expect.stringContaining('could not restore the previous rules'),
    });
  });

  it('one unreachable host fails alone; the others are applied', async () => {
    const hosts = {
      a: fake({ refuseFrom: 1 }),
      b: fake(),
      c: fake({ read: readOutput({ file4: '*filter\nCOMMIT\n', live4: '' }) }),
    };
    const results = await shipFleet([job('a'), job('b'), job('c')], settings, effects(hosts), 2);
    expect(results.map((r) => [r.host, r.outcome])).toEqual([
      ['a', 'failed'],
      ['b', 'applied'],
      ['c', 'unchanged'],
    ]);
    expect(results[0].reason).toContain('ECONNREFUSED');
    expect(fleetSucceeded(results)).toBe(false);
    expect(fleetSucceeded(results.slice(1))).toBe(true);
  });

  it('never runs more than `concurrency` hosts at once', async () => {
    let running = 0;
    let peak = 0;
    const transport: Transport = {
      connect: async () => ({
        run: async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((r) => setTimeout(r, 5));
          running--;
          return ok('status=unchanged\n');
        },
        close: () => {},
      }),
    };
    const jobs = Array.from({ length: 9 }, (_, i) => job(`h${i}`));
    await shipFleet(jobs, settings, { transport, sleep: async () => {}, now: () => 0 }, 3);
    expect(peak).toBe(3);
  });
});

describe('lockout check', () => {
  const rules = (extra: string) =>
    `*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n${extra}-A INPUT -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n`;

  it('admits a source inside a management network on the SSH port', () => {
    const v = evaluateInput(
      rules(
        '-A INPUT -s 203.0.113.0/28 -p tcp -m tcp --dport 22 -m comment --comment "fwgen management ssh" -j ACCEPT\n',
      ),
      { source: '203.0.113.5', dport: 22 },
    );
    expect(v).toMatchObject({ admitted: true });
    expect(v.rule).toContain('management ssh');
  });

  it('refuses a source outside every rule, naming the rule that rejects it', () => {
    const v = evaluateInput(rules('-A INPUT -s 203.0.113.0/28 -p tcp -m tcp --dport 22 -j ACCEPT\n'), {
      source: '198.18.0.1',
      dport: 22,
    });
    expect(v).toEqual({ admitted: false, rule: '-A INPUT -j REJECT --reject-with icmp-port-unreachable' });
  });

  it('does not count the ESTABLISHED rule, a wrong port or a UDP rule', () => {
    const v = evaluateInput(
      rules(
        '-A INPUT -s 198.18.0.1/32 -p tcp -m tcp --dport 2222 -j ACCEPT\n-A INPUT -s 198.18.0.1/32 -p udp -m udp --dport 22 -j ACCEPT\n',
      ),
      { source: '198.18.0.1', dport: 22 },
    );
    expect(v.admitted).toBe(false);
  });

  it('does not count an ACCEPT limited to an interface (the connection may arrive on another)', () => {
    expect(
      evaluateInput(rules('-A INPUT -s 198.18.0.1/32 -i eth1 -j ACCEPT\n'), { source: '198.18.0.1', dport: 22 })
        .admitted,
    ).toBe(false);
    expect(
      evaluateInput(rules('-A INPUT -s 198.18.0.1/32 ! -i lo -p tcp -m tcp --dport 22 -j ACCEPT\n'), {
        source: '198.18.0.1',
        dport: 22,
      }).admitted,
    ).toBe(false);
  });

  it('counts a DROP inside a chain reached by a jump it cannot evaluate, a goto, -p all, and DROPs in raw', () => {
    const mgmt = '-A INPUT -s 198.18.0.0/15 -p tcp -m tcp --dport 22 -j ACCEPT\n';
    const lockdown = (jump: string) =>
      `*filter\n:INPUT ACCEPT [0:0]\n:LOCKDOWN - [0:0]\n${jump}\n-A LOCKDOWN -j DROP\n${mgmt}COMMIT\n`;
    expect(
      evaluateInput(lockdown('-A INPUT -d 198.51.100.11/32 -j LOCKDOWN'), { source: '198.18.0.1', dport: 22 }),
    ).toEqual({ admitted: false, rule: '-A LOCKDOWN -j DROP' });
    expect(evaluateInput(lockdown('-A INPUT -g LOCKDOWN'), { source: '198.18.0.1', dport: 22 }).admitted).toBe(false);
    expect(evaluateInput(rules('-A INPUT -p all -j DROP\n' + mgmt), { source: '198.18.0.1', dport: 22 }).admitted).toBe(
      false,
    );
    expect(
      evaluateInput(`*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DROP\nCOMMIT\n${rules(mgmt)}`, {
        source: '198.18.0.1',
        dport: 22,
      }).admitted,
    ).toBe(false);
    expect(evaluateInput(rules(mgmt), { source: '198.18.0.1', dport: 22 }).admitted).toBe(true);
  });

  it('jumps into user chains', () => {
    const chained =
      '*filter\n:INPUT DROP [0:0]\n:mgmt - [0:0]\n-A INPUT -p tcp -j mgmt\n-A mgmt -s 198.18.0.0/15 -j ACCEPT\nCOMMIT\n';
    expect(evaluateInput(chained, { source: '198.18.0.1', dport: 22 }).admitted).toBe(true);
    expect(evaluateInput(chained, { source: '192.0.2.1', dport: 22 })).toEqual({
      admitted: false,
      rule: 'policy DROP',
    });
  });

  it('does not trust an ACCEPT with a match it does not understand', () => {
    expect(
      evaluateInput(rules('-A INPUT -s 198.18.0.1/32 -m recent --rcheck -j ACCEPT\n'), {
        source: '198.18.0.1',
        dport: 22,
      }).admitted,
    ).toBe(false);
  });
});

describe('known_hosts', () => {
  const key = Buffer.concat([
    Buffer.from([0, 0, 0, 11]),
    Buffer.from('ssh-ed25519'),
    Buffer.from([0, 0, 0, 32]),
    Buffer.alloc(32, 7),
  ]);
  const other = Buffer.concat([key.subarray(0, 19), Buffer.alloc(32, 9)]);

  it('matches plain, bracketed-port and hashed entries; a different key is a mismatch', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwgen-kh-'));
    const salt = Buffer.alloc(20, 1);
    const hashed = createHmac('sha1', salt).update('[198.18.0.9]:2222').digest();
    const path = join(dir, 'known_hosts');
    writeFileSync(
      path,
      `# comment\n198.18.0.5,web1 ssh-ed25519 ${key.toString('base64')}\n|1|${salt.toString('base64')}|${hashed.toString('base64')} ssh-ed25519 ${key.toString('base64')}\n`,
    );
    const entries = readKnownHosts(path);
    expect(verifyHostKey(entries, '198.18.0.5', 22, key)).toBe('match');
    expect(verifyHostKey(entries, 'web1', 22, key)).toBe('match');
    expect(verifyHostKey(entries, '198.18.0.9', 2222, key)).toBe('match');
    expect(verifyHostKey(entries, '198.18.0.5', 22, other)).toBe('mismatch');
    expect(verifyHostKey(entries, '198.18.0.5', 2222, key)).toBe('unknown');
    expect(verifyHostKey(entries, '198.18.0.6', 22, key)).toBe('unknown');
    expect(knownHostsName('h', 2222)).toBe('[h]:2222');
    expect(fingerprint(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('remote paths', () => {
  it('puts the IPv6 file beside the IPv4 one', () => {
    expect(rules6PathFor('/etc/iptables.up.rules')).toBe('/etc/ip6tables.up.rules');
    expect(rules6PathFor('/etc/iptables/rules.v4')).toBe('/etc/iptables/rules.v6');
    expect(rules6PathFor('/etc/fw.rules')).toBe('/etc/fw.rules.v6');
  });
});

describe('persistence: the boot-hook step (fake transport)', () => {
  const persist = { ...settings, persist: { marker: 'm1', run: (s: Session) => runBootHook(s, PATHS) } };
  const PATHS = { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' };
  const inSync = { file4: '*filter\nCOMMIT\n', live4: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n' };

  it('runs after the commit, on the confirming connection, and reports it as a field', async () => {
    const hosts = { a: fake() };
    const [r] = await shipFleet([job('a')], persist, effects(hosts), 4);
    expect(hosts.a.scripts).toEqual(['read', 'apply', 'commit', 'boot-hook']);
    expect(r.outcome).toBe('applied');
    expect(r.boot).toEqual({
      status: 'installed',
      ok: true,
      path: '/etc/network/if-pre-up.d/fwgen-iptables',
      detail: 'boot hook installed: /etc/network/if-pre-up.d/fwgen-iptables',
    });
    // The first ship had no rules file: there was no previous file to back up, only the live rules.
    expect(r.reason).toBe('first rules file; the live rules were backed up as 20261121T000000Z');
  });

  it("is skipped where the host holds this fwgen's marker, and runs on an unchanged host that does not", async () => {
    const marked = { a: fake({ read: readOutput({ ...inSync, boot: 'm1' }) }) };
    const [skipped] = await shipFleet([job('a')], persist, effects(marked), 4);
    expect([skipped.outcome, skipped.boot, marked.a.scripts]).toEqual(['unchanged', undefined, ['read']]);
    const other = { a: fake({ read: readOutput({ ...inSync, boot: 'older' }) }) };
    const [ran] = await shipFleet([job('a')], persist, effects(other), 4);
    expect([ran.outcome, ran.boot?.status, other.a.scripts]).toEqual(['unchanged', 'installed', ['read', 'boot-hook']]);
    expect(ran.reason).toBe('fwgen rules and rules file already match');
  });

  it('--no-persist (no persist setting): no boot step at all', async () => {
    const hosts = { a: fake() };
    const [r] = await shipFleet([job('a')], settings, effects(hosts), 4);
    expect([r.boot, hosts.a.scripts]).toEqual([undefined, ['read', 'apply', 'commit']]);
  });

  it('a host where nothing runs a boot hook: the rules are applied, the boot step is a failure field', async () => {
    const boot = {
      code: 21,
      stdout: 'status=unsupported\n',
      stderr:
        'fwgen: neither ifupdown nor systemd runs on this host: nothing would run a boot hook, so none was installed\n',
    };
    const hosts = { a: fake({ boot }) };
    const [r] = await shipFleet([job('a')], persist, effects(hosts), 4);
    expect(r.outcome).toBe('applied');
    expect(r.boot).toMatchObject({ status: 'unsupported', ok: false, path: null });
    expect(r.boot?.detail).toContain('neither ifupdown nor systemd runs on this host');
    expect(fleetSucceeded([r])).toBe(true);
    // A step that printed no status, or a lost connection, is a failed boot step, never a thrown error.
    const broken = { a: fake({ boot: { code: 1, stdout: '', stderr: 'fwgen: cannot write /etc/x\n' } }) };
    const [f] = await shipFleet([job('a')], persist, effects(broken), 4);
    expect(f.boot).toEqual({
      status: 'failed',
      ok: false,
      path: null,
      detail: 'boot hook step failed: cannot write /etc/x',
    });
  });

  it('a dry run says the boot step would run, and runs nothing', async () => {
    const hosts = { a: fake({ read: readOutput(inSync) }) };
    const [r] = await shipFleet([job('a')], { ...persist, dryRun: true }, effects(hosts), 4);
    expect(r.reason).toContain('would also make the rules load at boot, if nothing does yet');
    expect(hosts.a.scripts).toEqual(['read']);
  });
});

describe('what a ship says', () => {
  it('a lock held by another run: who, which run and since when once, and when it clears', async () => {
    const locked = JSON.parse(readFileSync('test/fixtures/remote/apply/locked.json', 'utf8')) as ExecResult;
    const hosts = { a: fake({ apply: locked }) };
    const [r] = await shipFleet([job('a')], settings, effects(hosts), 4);
    // The recorded lock line says when it clears (until=EPOCH); the message gives it as a time.
    const until = Number(/ until=([0-9]+) /.exec(locked.stdout)![1]);
    const clears = new Date(until * 1000).toISOString();
    expect(r.reason).toBe(
      `locked by another fwgen run: recorder@fwgen run 20261201T000003Z-dddddd pid 1 since 1970-01-01T00:00:00.000Z; it clears by ${clears} if that run is gone (or ship with --break-lock)`,
    );
    expect(r.reason.match(/20261201T000003Z-dddddd/g)).toHaveLength(1);
  });

  it('a host that had a rules file: "previous rules backed up"; one that had none: the live rules were', async () => {
    const had = { a: fake({ read: readOutput({ file4: '*filter\n:OLD - [0:0]\nCOMMIT\n', live4: '' }) }) };
    const [r] = await shipFleet([job('a')], settings, effects(had), 4);
    expect(r.reason).toBe('previous rules backed up as 20261121T000000Z');
  });
});
