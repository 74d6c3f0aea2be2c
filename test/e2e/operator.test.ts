/**
 * An operator's first week, on real sshd hosts: rules that survive a (simulated) reboot after a plain
 * ship; a host where nothing would run a boot hook failing that step clearly; a ship of a subset saying
 * what it leaves behind, and `--role changed` shipping it; hosts that left the inventory listed as
 * orphaned by `status`, then taken off with `fwgen remove`; `--accept-new` printing and logging the key;
 * every command's `--json` parsed against schema/output.schema.json.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/remote/known-hosts.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { outputProblems, type OutputKind } from '../support/output-schema.js';
import { runFwgen, runFwgenHosts, savedLines } from '../support/run-cli.js';

const NET = '198.18.201';
const HOOK = '/etc/network/if-pre-up.d/fwgen-iptables';

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe("an operator's first week, on real sshd hosts", () => {
  let lab: Lab;
  let project: string;
  let freshKnownHosts: string;

  const inventory = (o: { web4?: boolean; web9?: boolean } = {}) => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
trust: fleet
roles:
  web:
    public: true
    hosts:
      web1: ${NET}.11
      web2: ${NET}.12${o.web4 ? `\n      web4: ${NET}.14` : ''}${o.web9 === false ? '' : `\n      web9: ${NET}.19`}
  db:
    allow: [{ from: [web], ports: [tcp/5432] }]
    hosts: { db1: ${NET}.21 }
  cache:
    hosts: { cache1: { address: ${NET}.31, ssh: { known_hosts: ${freshKnownHosts} } } }
  bare:
    hosts: { bare1: ${NET}.41 }
`;
  const setInventory = async (o: Parameters<typeof inventory>[0] = {}) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(o));
    const r = await runFwgen(project, ['render']);
    expect(r.code, r.stderr).toBe(0);
  };
  const fwgen = (...args: string[]) => runFwgen(project, args);
  const json = (...args: string[]) => runFwgenHosts(project, [...args, '--json']);
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', project, '-c', 'user.name=op', '-c', 'user.email=op@example.net', ...args], {
      stdio: 'pipe',
    });
  /** A command's --json, parsed and checked against its documented shape. */
  const shaped = (kind: OutputKind, stdout: string): unknown => {
    const value = JSON.parse(stdout) as unknown;
    expect(outputProblems(kind, value), stdout.slice(0, 2000)).toEqual([]);
    return value;
  };
  const live = (host: string) => lab.execOk(host, ['iptables-save', '-t', 'filter']);
  const rendered = (role: string) => readFileSync(join(project, 'rendered', role, 'iptables.up.rules'), 'utf8');
  /** A reboot as the kernel sees it (an empty filter table), then ifupdown's if-pre-up.d hooks, once per interface. */
  const reboot = async (host: string) => {
    await lab.execOk(host, ['sh', '-c', 'iptables -F && iptables -X']);
    for (const _ of ['lo', 'eth1'])
      await lab.execOk(host, ['sh', '-c', 'for f in /etc/network/if-pre-up.d/*; do [ -x "$f" ] && "$f"; done; true']);
  };

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwo',
      hosts: [
        { name: 'web1', ipv4: `${NET}.11`, sshd: true, listen: [80] },
        { name: 'web2', ipv4: `${NET}.12`, sshd: true },
        { name: 'web4', ipv4: `${NET}.14`, sshd: true },
        { name: 'web9', ipv4: `${NET}.19`, sshd: true },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true, listen: [5432] },
        { name: 'cache1', ipv4: `${NET}.31`, sshd: true },
        // Neither ifupdown nor systemd: nothing there would run a boot hook.
        { name: 'bare1', ipv4: `${NET}.41`, sshd: true, ifupdown: false },
        { name: 'outside', ipv4: `${NET}.99` },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-operator-'));
    mkdirSync(join(project, 'inventory'));
    // cache1's key is in no known_hosts yet: --accept-new records it.
    freshKnownHosts = join(project, 'fresh_known_hosts');
    writeFileSync(freshKnownHosts, '');
    await setInventory();
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'Firewall inventory');
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('--accept-new prints each new host key and records it in the deploy log', async () => {
    const r = await json('ship', '--host', 'cache1', '--accept-new', '--timeout', '5');
    expect(r.code, r.stderr).toBe(0);
    const pub = lab.hosts.get('cache1')!.hostKeyPub!.split(' ');
    const fp = fingerprint(Buffer.from(pub[1], 'base64'));
    expect(r.stderr).toContain(
      `accepted new host key for ${NET}.31: ssh-ed25519 ${fp} (recorded in ${freshKnownHosts})`,
    );
    expect(readFileSync(freshKnownHosts, 'utf8')).toBe(`${NET}.31 ssh-ed25519 ${pub[1]}\n`);
    const log = (await fwgen('log', '--json')).stdout.trim().split('\n');
    const keys = log.map((l) => shaped('logEntry', l) as { action: string; hostKey?: unknown });
    expect(keys.filter((e) => e.action === 'host-key')).toMatchObject([
      { hostKey: { name: `${NET}.31`, keyType: 'ssh-ed25519', fingerprint: fp, knownHosts: freshKnownHosts } },
    ]);
    expect((await fwgen('log')).stdout).toContain(`accepted ssh-ed25519 ${fp} for ${NET}.31`);
  });

  it('a plain ship makes the rules load at boot: after a reboot they are back, and doctor agrees', async () => {
    const r = await json('ship', '--role', 'web,db', '--timeout', '5');
    expect(r.code, r.stderr).toBe(0);
    shaped('run', r.stdout);
    for (const row of r.results) expect(row.boot).toMatchObject({ status: 'installed', ok: true, path: HOOK });
    expect(r.stderr).toContain(`boot hook installed: ${HOOK}`);
    await reboot('db1');
    expect(savedLines(await live('db1'))).toEqual(savedLines(rendered('db')));
    expect(await lab.probe('outside', `${NET}.21`, 5432)).toBe('refused');
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
    const doctor = await json('doctor', '--host', 'db1');
    const checks = shaped('doctor', doctor.stdout) as { name: string; level: string; detail: string }[];
    expect(checks.find((c) => c.name === 'boot')).toMatchObject({ level: 'ok', detail: expect.stringContaining(HOOK) });
  });

  it('a host where nothing would run a boot hook: the rules are applied, the boot step fails clearly (exit 1)', async () => {
    const r = await json('ship', '--host', 'bare1', '--timeout', '5');
    expect(r.code).toBe(1);
    shaped('run', r.stdout);
    expect(r.results[0]).toMatchObject({
      outcome: 'applied',
      boot: { status: 'unsupported', ok: false, path: null },
    });
    expect(r.json).toMatchObject({ succeeded: false, totals: { applied: 1, notLoadedAtBoot: 1 } });
    expect(r.results[0].boot!.detail).toContain('neither ifupdown nor systemd runs on this host');
    expect(r.stderr).toContain('fwgen: 1 of 1 host(s) run the new rules but will not load them at boot: bare1');
    expect((await lab.exec('bare1', ['test', '-e', HOOK])).code).toBe(1);
    expect(savedLines(await live('bare1'))).toEqual(savedLines(rendered('bare')));
    // doctor's advice is what ship would then do; and the operator may leave boot to something else.
    const doctor = await json('doctor', '--host', 'bare1');
    const boot = (shaped('doctor', doctor.stdout) as { name: string; fix?: string }[]).find((c) => c.name === 'boot');
    expect(boot?.fix).toMatch(/^install ifupdown, then run `fwgen ship --host bare1`/);
    const opted = await json('ship', '--host', 'bare1', '--no-persist');
    expect(opted.code, opted.stderr).toBe(0);
    expect(opted.results[0]).toMatchObject({ outcome: 'unchanged', boot: null });
  });

  it('a ship of a subset says what it leaves behind; --role changed ships it; an uncommitted inventory is warned about', async () => {
    await setInventory({ web4: true });
    const r = await fwgen('ship', '--host', 'web4', '--timeout', '5');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^warning: .*inventory\.yaml has uncommitted changes: .*\+dirty/m);
    // Fleet trust changed every role's rules: the hosts that did not get them are named, with the command.
    expect(r.stdout).toContain(
      'left behind: the rendered rules of 4 role(s) differ from what their hosts last received:',
    );
    expect(r.stdout).toContain('  bare: bare1\n  cache: cache1\n  db: db1\n  web: web1, web2, web9\n');
    expect(r.stdout).toContain(
      'ship them: fwgen ship --host bare1 cache1 db1 web1 web2 web9   (or: fwgen ship --role changed)',
    );
    expect(await lab.probe('web4', `${NET}.21`, 5432)).toBe('refused'); // db1 does not know web4 yet
    git('commit', '-q', '-am', 'web4');
    const changed = await json('ship', '--role', 'changed', '--timeout', '5', '--no-persist');
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stderr).not.toContain('uncommitted');
    expect(changed.json).toMatchObject({ leftBehind: [], next: null });
    expect(Object.fromEntries(changed.results.map((x) => [x.host, x.outcome]))).toEqual({
      web1: 'applied',
      web2: 'applied',
      web4: 'unchanged',
      web9: 'applied',
      db1: 'applied',
      cache1: 'applied',
      bare1: 'applied',
    });
    expect(await lab.probe('web4', `${NET}.21`, 5432)).toBe('open');
    const nothing = await fwgen('ship', '--role', 'changed');
    expect([nothing.code, nothing.stderr]).toEqual([0, expect.stringContaining('nothing to ship')]);
  });

  it('status lists a host that left the inventory with fwgen still on it as orphaned; fwgen remove takes fwgen off', async () => {
    await setInventory({ web4: true, web9: false });
    const shipped = await json('ship', '--role', 'all', '--timeout', '5', '--no-persist');
    expect(shipped.code, shipped.stderr).toBe(0);
    const status = await json('status');
    expect(status.code, status.stderr).toBe(0); // orphans are reported, they do not fail the inventory's hosts
    const rows = shaped('status', status.stdout) as { host: string; state: string }[];
    expect(rows.find((x) => x.host === 'web9')).toMatchObject({
      state: 'orphaned',
      backups: null,
      armed: null,
      lastShip: { run: expect.any(String) },
    });
    expect(status.stderr).toContain(
      '1 orphaned host(s): fwgen shipped to them and they are no longer in the inventory: web9',
    );
    const text = await fwgen('status');
    expect(text.stdout).toMatch(/^web9\s+web\s+orphaned\s+-\s+\S+\s+\S+\s+\?\s+\(not in the inventory any more/m);
    expect(await live('web9')).toContain(':FWGEN-INPUT');

    // As the README says: back in the inventory for a moment, `fwgen remove`, then out again.
    await setInventory({ web4: true });
    const removed = await json('remove', '--host', 'web9', '--timeout', '5');
    expect(removed.code, removed.stderr).toBe(0);
    shaped('run', removed.stdout);
    expect(removed.results[0]).toMatchObject({ outcome: 'applied', boot: { status: 'removed', ok: true, path: HOOK } });
    expect(await live('web9')).not.toContain('FWGEN');
    expect(await lab.probe('outside', `${NET}.19`, 22)).toBe('open');
    for (const f of [HOOK, '/etc/iptables.up.rules.fwgen-state.json', '/etc/iptables.up.rules.fwgen-boot'])
      expect((await lab.exec('web9', ['test', '-e', f])).code, f).toBe(1);
    await setInventory({ web4: true, web9: false });
    const after = await json('status');
    expect((shaped('status', after.stdout) as { host: string }[]).map((x) => x.host)).not.toContain('web9');

    // A host that is gone for good: --forget, and it is no longer listed.
    appendFileSync(
      join(project, '.fwgen/deploy.log'),
      `${JSON.stringify({ time: '2026-01-01T00:00:00.000Z', action: 'ship', run: 'old', who: 'op', inventory: 'inventory/inventory.yaml', commit: null, hosts: [{ host: 'gone7', role: 'web', outcome: 'applied', reason: '' }] })}\n`,
    );
    expect((shaped('status', (await json('status')).stdout) as { host: string }[]).map((x) => x.host)).toContain(
      'gone7',
    );
    shaped('forget', (await json('remove', '--host', 'gone7', '--forget')).stdout);
    expect((shaped('status', (await json('status')).stdout) as { host: string }[]).map((x) => x.host)).not.toContain(
      'gone7',
    );
  });

  it('every host command prints --json as documented: ship --dry-run, rollback, backups (all hosts by default)', async () => {
    const dry = await json('ship', '--role', 'all', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    shaped('run', dry.stdout);
    expect(dry.json).toMatchObject({ dryRun: true });
    const backups = await json('backups');
    expect(backups.code, backups.stderr).toBe(0);
    const listed = shaped('backups', backups.stdout) as { backups: { host: string; size: number | null }[] };
    expect(new Set(listed.backups.map((b) => b.host))).toEqual(
      new Set(['web1', 'web2', 'web4', 'db1', 'cache1', 'bare1']),
    );
    const text = await fwgen('backups', '--host', 'db1');
    expect(text.stdout.split('\n')[0]).toMatch(/^HOST\s+ROLE\s+BACKUP\s+BYTES$/);
    const back = await json('rollback', '--host', 'db1', '--timeout', '5');
    expect(back.code, back.stderr).toBe(0);
    shaped('run', back.stdout);
    expect(back.json).toMatchObject({ action: 'rollback', totals: { applied: 1 } });
    expect(back.results[0].restored).toMatch(/^\d{8}T\d{6}Z$/);
  });
});
