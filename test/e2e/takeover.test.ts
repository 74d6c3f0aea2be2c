/**
 * Taking over hosts that already filter, and giving their firewall back: real sshd hosts loaded with
 * a ufw server's rules, a Shorewall server's, a hand-written router's (FORWARD rules, nat MASQUERADE
 * and DNAT, mangle, policy ACCEPT) and a host whose INPUT holds rules that cannot be deleted by
 * their own text (`-m recent ... --mask`, `-m string`, `-m u32`, `-m hashlimit`, quoted comments),
 * both families each (test/fixtures/takeover/). fwgen ships, ships again, rolls back one step (the
 * first ship's state, exactly), then rolls back past its first ship (the previous firewall, exactly:
 * every table, both families, counters aside); a fail2ban-style ban added between a ship and the
 * rollback survives it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { parseJson, runFwgen, runFwgenHosts, savedLines } from '../support/run-cli.js';

const NET = '198.18.94';
const NET6 = '2001:db8:94::';
const FIXTURES = 'test/fixtures/takeover';
const HOSTS = { ufw: 11, shorewall: 12, router: 13, odd: 14 } as const;
type Name = keyof typeof HOSTS;
const NAMES = Object.keys(HOSTS) as Name[];

interface StatusRow {
  state: string;
  reason?: string;
  shipped?: { commit: string | null; rollback?: { fwgenRemoved: boolean } };
}

/** Both families, every table, as comparable lines (comments dropped, counters zeroed). */
interface Snapshot {
  v4: string[];
  v6: string[];
}

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('takeover and exact rollback of real-world firewalls', () => {
  let lab: Lab;
  let project: string;
  const before = new Map<Name, Snapshot>();
  const afterFirst = new Map<Name, Snapshot>();

  const inventory = (ports: string) => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28, "${NET6}f0/124"]
trust: none
roles:
${NAMES.map(
  (n) => `  ${n}-role:
    ports: [${ports}]
    hosts: { ${n}: { address: [${NET}.${HOSTS[n]}, "${NET6}${HOSTS[n]}"], ssh: { host: ${NET}.${HOSTS[n]} } } }`,
).join('\n')}
`;
  const setInventory = async (ports: string) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(ports));
    const r = await runFwgen(project, ['render']);
    expect(r.code, r.stderr).toBe(0);
  };
  const fwgen = (...args: string[]) =>
    runFwgenHosts(project, [...args, '--json', '--timeout', '6', '--connect-timeout', '3']);
  const snapshot = async (host: Name): Promise<Snapshot> => ({
    v4: savedLines(await lab.execOk(host, ['iptables-save'])),
    v6: savedLines(await lab.execOk(host, ['ip6tables-save'])),
  });
  const status = async (host: Name) => {
    const r = await runFwgen(project, ['status', '--host', host, '--json']);
    return parseJson(r.stdout, [] as StatusRow[])[0];
  };
  const chain = (s: string[], name: string) => s.filter((l) => l.startsWith(`-A ${name} `));
  const oldestBackup = async (host: Name): Promise<string> => {
    const r = await runFwgen(project, ['backups', '--host', host, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = parseJson(r.stdout, { backups: [] as { ts: string }[] }).backups;
    return rows[rows.length - 1].ts;
  };

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwk',
      hosts: NAMES.map((n) => ({ name: n, ipv4: `${NET}.${HOSTS[n]}`, ipv6: `${NET6}${HOSTS[n]}`, sshd: true })),
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-takeover-'));
    mkdirSync(join(project, 'inventory'));
    await setInventory('tcp/8080');
    for (const n of NAMES) {
      await lab.execOk(n, ['iptables-restore'], { input: readFileSync(join(FIXTURES, `${n}.v4`), 'utf8') });
      await lab.execOk(n, ['ip6tables-restore'], { input: readFileSync(join(FIXTURES, `${n}.v6`), 'utf8') });
      before.set(n, await snapshot(n));
    }
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('--dry-run says what each host would take over from, and how to get it back', async () => {
    const r = await fwgen('ship', '--role', 'all', '--dry-run');
    const rows = r.results as unknown as { host: string; reason: string; takeover?: { from: string[] } }[];
    expect(Object.fromEntries(rows.map((x) => [x.host, x.takeover?.from]))).toEqual({
      odd: ['hand-written rules'],
      router: ['hand-written rules'],
      shorewall: ['Shorewall'],
      ufw: ['ufw'],
    });
    expect(rows.find((x) => x.host === 'ufw')!.reason).toMatch(
      /takes over from ufw: 36 rule\(s\) removed, kept in the backup; `fwgen rollback --host ufw` restores them/,
    );
    for (const n of NAMES) expect(await snapshot(n)).toEqual(before.get(n));
  });

  it('the first ship takes every host over: the previous rules leave the built-in chains, everything else stays', async () => {
    const r = await fwgen('ship', '--role', 'all');
    expect(r.results.find((x) => x.host === 'shorewall')!.reason).toMatch(
      /took over from Shorewall: \d+ rule\(s\) removed/,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(Object.fromEntries(r.results.map((x) => [x.host, x.outcome]))).toEqual(
      Object.fromEntries(NAMES.map((n) => [n, 'applied'])),
    );
    for (const n of NAMES) {
      const now = await snapshot(n);
      afterFirst.set(n, now);
      for (const fam of ['v4', 'v6'] as const) {
        expect(chain(now[fam], 'INPUT'), `${n} ${fam}`).toEqual([
          // fail2ban's hook (a preserved tool's) stays ahead of fwgen's.
          ...(n === 'odd' && fam === 'v4' ? ['-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd'] : []),
          '-A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT',
        ]);
        // Other tools' chains and their rules are untouched, and so are the other tables.
        const foreign = (s: string[]) => s.filter((l) => /^(:|-A )(ufw|Reject|net-fw|f2b|reject|smurf)/.test(l));
        expect(foreign(now[fam])).toEqual(foreign(before.get(n)![fam]));
        const other = (s: string[]) => s.join('\n').split('*filter')[0];
        if (fam === 'v4') expect(other(now.v4)).toBe(other(before.get(n)!.v4));
      }
      const row = r.results.find((x) => x.host === n)!;
      expect(row.removed?.length, row.reason).toBeGreaterThan(0);
    }
  });

  it('a second ship, then a rollback of one step, gives back the first ship’s state exactly', async () => {
    await setInventory('tcp/8080, tcp/9090');
    const r = await fwgen('ship', '--role', 'all');
    expect(
      r.results.map((x) => x.outcome),
      r.stderr,
    ).toEqual(NAMES.map(() => 'applied'));
    for (const n of NAMES) {
      const rb = await fwgen('rollback', '--host', n);
      expect(rb.code, rb.stderr).toBe(0);
      expect(rb.results[0].outcome, rb.results[0].reason).toBe('applied');
      expect(await snapshot(n), n).toEqual(afterFirst.get(n));
    }
    // status knows: the host runs the first ship's rules again, not rendered/.
    const st = await status('ufw');
    expect(st.state).toBe('drifted');
    expect(st.reason).toMatch(
      /^rolled back by a rollback to backup \d{8}T\d{6}Z .*: the host runs the rules of the ship of /,
    );
    expect(st.shipped?.rollback?.fwgenRemoved).toBe(false);
  });

  it('a rollback past the first ship gives every host its previous firewall, exactly', async () => {
    for (const n of NAMES) {
      const to = await oldestBackup(n);
      const rb = await fwgen('rollback', '--host', n, '--to', to);
      expect(rb.code, rb.stderr).toBe(0);
      expect(rb.results[0].outcome, rb.results[0].reason).toBe('applied');
      expect(rb.results[0].reason).toMatch(/put back \d+ rule/);
      expect(await snapshot(n), n).toEqual(before.get(n));
    }
    const st = await status('router');
    expect(st.state).toBe('drifted');
    expect(st.reason).toMatch(
      /^fwgen removed by a rollback to backup \d{8}T\d{6}Z .*: the host runs the firewall it had before/,
    );
    expect(st.shipped).toMatchObject({ commit: null, rollback: { fwgenRemoved: true } });
  });

  it('a fail2ban-style ban added between the ship and the rollback survives the rollback', async () => {
    const r = await fwgen('ship', '--host', 'ufw');
    expect(r.results[0]?.outcome, r.stderr).toBe('applied');
    const to = r.results[0].backup!;
    // fail2ban starting after the ship: its chain, a ban in it, its hook inserted at the top of INPUT.
    await lab.execOk('ufw', ['iptables', '-N', 'f2b-sshd']);
    await lab.execOk('ufw', ['iptables', '-A', 'f2b-sshd', '-j', 'RETURN']);
    await lab.execOk('ufw', ['iptables', '-I', 'f2b-sshd', '1', '-s', '203.0.113.50/32', '-j', 'REJECT']);
    await lab.execOk('ufw', [
      'iptables',
      '-I',
      'INPUT',
      '1',
      '-p',
      'tcp',
      '-m',
      'multiport',
      '--dports',
      '22',
      '-j',
      'f2b-sshd',
    ]);
    const rb = await fwgen('rollback', '--host', 'ufw', '--to', to);
    expect(rb.results[0]?.outcome, rb.stderr).toBe('applied');
    const now = await snapshot('ufw');
    expect(now.v6).toEqual(before.get('ufw')!.v6);
    const f2b = now.v4.filter((l) => /f2b-sshd/.test(l));
    expect(f2b).toEqual([
      ':f2b-sshd - [0:0]',
      '-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd',
      '-A f2b-sshd -s 203.0.113.50/32 -j REJECT --reject-with icmp-port-unreachable',
      '-A f2b-sshd -j RETURN',
    ]);
    expect(chain(now.v4, 'INPUT')[0]).toBe('-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd');
    expect(now.v4.filter((l) => !/f2b-sshd/.test(l))).toEqual(before.get('ufw')!.v4);
  });
});
