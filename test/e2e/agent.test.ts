/**
 * Pull mode end to end: `fwgen publish` writes a signed tree, a real nginx serves it from a lab host,
 * `fwgen agent install` puts the agent on real sshd hosts (one with curl, one with only GNU wget), and
 * `fwgen agent poll` makes them pull and apply. Every `kept:` outcome is made real, and each must
 * leave the host's rules byte for byte as they were.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatManifest, parseManifest, type Manifest } from '../../src/publish/manifest.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { labNginx, type Nginx } from '../support/nginx.js';
import { parseJson, runFwgen, savedLines } from '../support/run-cli.js';

const NET = '198.18.140';
const RULES = '/etc/iptables.up.rules';

interface AgentRow {
  host: string;
  role: string;
  outcome: string;
  ok: boolean;
  detail: string;
  serial?: number;
}

it('has the prerequisites (root, sshd, iptables, nginx, curl, wget)', () => {
  expect(labPrereqs()).toEqual([]);
  for (const tool of ['nginx', 'curl', 'wget'])
    expect(spawnSync('sh', ['-c', `PATH=$PATH:/usr/sbin command -v ${tool}`]).status, tool).toBe(0);
});

describe('pull mode: agents on real hosts pull signed releases from a real nginx', () => {
  let lab: Lab;
  let dir: string;
  let project: string;
  let tree: string;
  let origin: Nginx;
  let key: string;
  let pub: string;

  const inventory = (o: { webPorts?: string; extraHosts?: string; management?: string } = {}) => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
agent: { origin: "${origin.url}", signers: ["${pub}"], every: 60, expires: 2d }
management: [${o.management ?? `${NET}.240/28`}]
monitoring: [{ from: [192.0.2.5], ports: [tcp/9100] }]
trust: fleet
roles:
  web:
    public: true
    ${o.webPorts ? `ports: [${o.webPorts}]` : ''}
    hosts: { web1: ${NET}.11, web2: ${NET}.12 ${o.extraHosts ?? ''} }
  db:
    allow: [{ from: [web], ports: [tcp/5432] }]
    hosts: { db1: ${NET}.21 }
`;
  const fwgen = (...args: string[]) => runFwgen(project, args);
  const renderAndPublish = async (o: Parameters<typeof inventory>[0] = {}) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(o));
    const r = await fwgen('render');
    expect(r.code, r.stderr).toBe(0);
    const p = await fwgen('publish', '--out', tree, '--sign-key', key);
    expect(p.code, p.stderr).toBe(0);
    return p;
  };
  const agent = async (...args: string[]) => {
    const r = await fwgen('agent', ...args, '--json', '--connect-timeout', '5');
    return { ...r, rows: parseJson(r.stdout, [] as AgentRow[]) };
  };
  const outcomes = (rows: AgentRow[]) => Object.fromEntries(rows.map((r) => [r.host, r.outcome]));
  const manifestOf = (role: string) =>
    parseManifest(readFileSync(join(tree, 'roles', role, 'manifest'), 'utf8')) as Manifest;
  const live = (host: string) => lab.execOk(host, ['iptables-save']);
  /** What a failed poll must leave as it was: every table (counters aside), the rules file, ship's state file. */
  const snapshot = async (host: string) => ({
    live: savedLines(await live(host)),
    file: await lab.execOk(host, ['cat', RULES]),
    state: await lab.execOk(host, ['cat', `${RULES}.fwgen-state.json`]),
  });
  const agentState = async (host: string) =>
    Object.fromEntries(
      (await lab.execOk(host, ['cat', `${RULES}.fwgen-agent/state`]))
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  /** A release written as publish writes it, but with any content and any key: what a compromised origin could serve. */
  const craft = (role: string, edit: (m: Manifest) => Manifest, o: { blob?: string; signKey?: string } = {}) => {
    let m = manifestOf(role);
    if (o.blob !== undefined) {
      const bytes = Buffer.from(o.blob, 'utf8');
      const sha = createHash('sha256').update(bytes).digest('hex');
      writeFileSync(join(tree, 'blobs', sha), bytes);
      m = { ...m, files: [{ name: 'iptables.up.rules', sha256: sha, size: bytes.length }] };
    }
    const path = join(tree, 'roles', role, 'manifest');
    writeFileSync(`${path}.new`, formatManifest(edit(m)));
    const signed = spawnSync('ssh-keygen', ['-q', '-Y', 'sign', '-n', 'fwgen', '-f', o.signKey ?? key, `${path}.new`]);
    expect(signed.status, signed.stderr.toString()).toBe(0);
    cpSync(`${path}.new.sig`, `${path}.sig`);
    cpSync(`${path}.new`, path);
    rmSync(`${path}.new`);
    rmSync(`${path}.new.sig`);
  };
  const saveTree = () => {
    rmSync(join(dir, 'tree.saved'), { recursive: true, force: true });
    cpSync(tree, join(dir, 'tree.saved'), { recursive: true, preserveTimestamps: true });
  };
  const restoreTree = () => {
    rmSync(tree, { recursive: true, force: true });
    cpSync(join(dir, 'tree.saved'), tree, { recursive: true, preserveTimestamps: true });
  };
  const webRelease = () => readFileSync(join(project, 'rendered/web/iptables.up.rules'), 'utf8');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-agent-'));
    lab = await createLab({
      prefix: 'fwag',
      hosts: [
        { name: 'origin', ipv4: `${NET}.5` },
        { name: 'web1', ipv4: `${NET}.11`, sshd: true, listen: [80, 8080, 9100] },
        { name: 'web2', ipv4: `${NET}.12`, sshd: true, listen: [80, 8080] },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true, listen: [5432] },
        { name: 'web3', ipv4: `${NET}.13`, sshd: true, listen: [80, 8080] },
        { name: 'outside', ipv4: `${NET}.99` },
      ],
    });
    project = join(dir, 'project');
    tree = join(dir, 'tree');
    mkdirSync(join(project, 'inventory'), { recursive: true });
    mkdirSync(tree);
    key = join(dir, 'release');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'release@test', '-f', key]);
    pub = readFileSync(`${key}.pub`, 'utf8').trim();
    origin = labNginx(lab, 'origin', tree, join(dir, 'nginx'));
    await origin.start();
    // web2 has GNU wget and no curl: a file that is not executable hides it (in web2's own mounts).
    await lab.execOk('web2', ['sh', '-c', ': > /root/nocurl && mount --bind /root/nocurl /usr/bin/curl']);
    await lab.execOk('web1', ['mkdir', '-p', '/var/log/textfile']);
    await renderAndPublish();
  }, 180_000);

  afterAll(async () => {
    await origin?.stop();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('agent install puts the agent, its config and a cron entry on every host; again, it changes nothing', async () => {
    expect((await lab.exec('web2', ['sh', '-c', 'command -v curl'])).code).not.toBe(0);
    const r = await agent('install', '--role', 'all', '--textfile-dir', '/var/log/textfile');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r.rows)).toEqual({ db1: 'installed', web1: 'installed', web2: 'installed' });
    expect(r.rows[0].detail).toMatch(/^schedule: cron; \d+ file\(s\) written; boot hook installed: /);
    const cron = await lab.execOk('web1', ['cat', '/etc/cron.d/fwgen-agent']);
    expect(cron).toContain(`root /bin/sh ${RULES}.fwgen-agent/agent.sh poll ${RULES} delay`);
    const config = await lab.execOk('web1', ['cat', `${RULES}.fwgen-agent/config`]);
    expect(config).toContain(`origin ${origin.url}\n`);
    expect(config).toContain('role web\n');
    const again = await agent('install', '--role', 'all', '--textfile-dir', '/var/log/textfile');
    expect(outcomes(again.rows)).toEqual({ db1: 'unchanged', web1: 'unchanged', web2: 'unchanged' });
  }, 60_000);

  it('a poll applies the release on the curl host and the wget-only host; probes show the rules', async () => {
    const serial = manifestOf('web').serial;
    const r = await agent('poll', '--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r.rows)).toEqual({
      db1: `applied ${manifestOf('db').serial}`,
      web1: `applied ${serial}`,
      web2: `applied ${serial}`,
    });
    const rendered = readFileSync(join(project, 'rendered/web/iptables.up.rules'), 'utf8');
    const onHost = await lab.execOk('web2', ['cat', RULES]);
    // The release, with the pinned chain of the agent's config merged in.
    expect(onHost).toContain('-A INPUT -m comment --comment "fwgen agent pinned" -j FWGEN-AGENT');
    expect(onHost).toContain(
      `-A FWGEN-AGENT -s ${NET}.240/28 -p tcp -m tcp --dport 22 -m comment --comment "fwgen agent management ssh" -j ACCEPT`,
    );
    expect(onHost.split('\n').filter((l) => !l.includes('FWGEN-AGENT'))).toEqual(rendered.split('\n'));
    expect(savedLines(await live('web2')).filter((l) => !l.startsWith(':INPUT') && !l.startsWith(':OUTPUT'))).toEqual(
      savedLines(onHost).filter((l) => !l.startsWith(':INPUT') && !l.startsWith(':OUTPUT')),
    );
    expect(await lab.probe('outside', `${NET}.11`, 80)).toBe('open');
    expect(await lab.probe('outside', `${NET}.11`, 8080)).toBe('refused');
    expect(await lab.probe('outside', `${NET}.21`, 5432)).toBe('refused');
    expect(await lab.probe('web1', `${NET}.21`, 5432)).toBe('open');
  }, 60_000);

  it('a poll with nothing new: one conditional request (304), under 1 KB, and the host unchanged', async () => {
    const before = origin.accessLog().length;
    const r = await agent('poll', '--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r.rows)).toEqual({ db1: 'unchanged', web1: 'unchanged', web2: 'unchanged' });
    const lines = origin.accessLog().slice(before);
    for (const h of [`${NET}.11`, `${NET}.12`, `${NET}.21`]) {
      const mine = lines.filter((l) => l.startsWith(`${h} `));
      expect(mine, h).toHaveLength(1);
      const [, status, sent, received] = /" (\d+) (\d+) (\d+)$/.exec(mine[0])!;
      expect(status).toBe('304');
      expect(Number(sent) + Number(received)).toBeLessThan(1024);
    }
    const metrics = await lab.execOk('web1', ['cat', '/var/log/textfile/fwgen_agent.prom']);
    expect(metrics).toContain(`fwgen_agent_serial ${manifestOf('web').serial}\n`);
    expect(metrics).toContain('fwgen_agent_outcome{outcome="unchanged"} 1\n');
    expect(metrics).toMatch(/^fwgen_agent_last_success_timestamp_seconds \d{10}$/m);
  }, 60_000);

  it('a change is published and pulled: only its role gets a new serial; fail2ban and Docker chains survive', async () => {
    // What fail2ban and Docker add to a host's tables, before fwgen's rules.
    await lab.execOk('web1', [
      'sh',
      '-c',
      'iptables -N f2b-sshd && iptables -A f2b-sshd -s 192.0.2.66/32 -j REJECT && iptables -A f2b-sshd -j RETURN && ' +
        'iptables -I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd && ' +
        'iptables -N DOCKER-USER && iptables -A DOCKER-USER -j RETURN && iptables -I FORWARD 1 -j DOCKER-USER',
    ]);
    const db = manifestOf('db');
    const old = manifestOf('web');
    await renderAndPublish({ webPorts: 'tcp/8080' });
    expect(manifestOf('db')).toEqual(db);
    const serial = manifestOf('web').serial;
    expect(serial).toBeGreaterThan(old.serial);
    const r = await agent('poll', '--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r.rows)).toEqual({ db1: 'unchanged', web1: `applied ${serial}`, web2: `applied ${serial}` });
    expect(await lab.probe('outside', `${NET}.11`, 8080)).toBe('open');
    expect(await lab.probe('outside', `${NET}.12`, 8080)).toBe('open');
    const saved = await live('web1');
    expect(saved).toContain('-A f2b-sshd -s 192.0.2.66/32 -j REJECT');
    expect(saved).toMatch(
      /-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A INPUT -m comment --comment "fwgen agent pinned"/,
    );
    expect(saved).toContain('-A FORWARD -j DOCKER-USER');
    expect(await agentState('web1')).toMatchObject({ serial: String(serial), outcome: `applied ${serial}` });
  }, 60_000);

  it('a new host with only the agent installed gets its rules by pulling; the fleet pulls the new trust', async () => {
    await renderAndPublish({ webPorts: 'tcp/8080', extraHosts: `, web3: ${NET}.13` });
    const web = manifestOf('web').serial;
    const inst = await agent('install', '--host', 'web3');
    expect(outcomes(inst.rows)).toEqual({ web3: 'installed' });
    const r = await agent('poll', '--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r.rows)).toEqual({
      db1: `applied ${manifestOf('db').serial}`,
      web1: `applied ${web}`,
      web2: `applied ${web}`,
      web3: `applied ${web}`,
    });
    const rules = (text: string) => text.split('\n').filter((l) => l.startsWith('-A '));
    expect(rules(await lab.execOk('db1', ['iptables-save', '-t', 'filter']))).toEqual(
      rules(await lab.execOk('db1', ['cat', RULES])),
    );
    expect(rules(await lab.execOk('db1', ['cat', RULES])).filter((l) => !l.includes('FWGEN-AGENT'))).toEqual(
      rules(readFileSync(join(project, 'rendered/db/iptables.up.rules'), 'utf8')),
    );
    expect(await lab.probe('outside', `${NET}.13`, 8080)).toBe('open');
    expect(await lab.probe('outside', `${NET}.13`, 22)).toBe('refused');
  }, 60_000);

  it("status shows each agent host's serial, last outcome and poll age, and flags hosts behind; ship refuses them", async () => {
    interface StatusRow {
      host: string;
      state: string;
      agent?: { serial: number; outcome: string; published?: number };
    }
    const status = async () => {
      const r = await fwgen('status', '--json', '--connect-timeout', '5');
      return { ...r, rows: parseJson(r.stdout, [] as StatusRow[]) };
    };
    const serial = manifestOf('web').serial;
    const st = await status();
    expect(st.code, st.stderr).toBe(0);
    expect(Object.fromEntries(st.rows.map((r) => [r.host, r.state]))).toEqual({
      db1: 'in-sync',
      web1: 'in-sync',
      web2: 'in-sync',
      web3: 'in-sync',
    });
    expect(st.rows.find((r) => r.host === 'web2')!.agent).toMatchObject({ serial, outcome: `applied ${serial}` });
    // The table (without --json) has the agent's serial, last outcome and poll age in its notes.
    const table = await fwgen('status', '--connect-timeout', '5');
    expect(table.stdout).toMatch(
      new RegExp(`^web2 +web +in-sync .*agent serial ${serial}, last poll applied ${serial} \\d+s ago`, 'm'),
    );

    await renderAndPublish({ webPorts: 'tcp/8080, tcp/8081', extraHosts: `, web3: ${NET}.13` });
    const next = manifestOf('web').serial;
    const behind = await status();
    expect(behind.code).toBe(1);
    expect(behind.rows.find((r) => r.host === 'web1')).toMatchObject({
      state: 'behind',
      agent: { serial, published: next },
    });
    expect(behind.rows.find((r) => r.host === 'db1')!.state).toBe('in-sync');

    const ship = await fwgen('ship', '--role', 'web', '--json', '--connect-timeout', '5');
    expect(ship.code).toBe(1);
    const shipped = parseJson(ship.stdout, { hosts: [] as { outcome: string; reason: string }[] });
    expect(shipped.hosts.length).toBeGreaterThan(0);
    for (const row of shipped.hosts) {
      expect(row.outcome).toBe('failed');
      expect(row.reason).toMatch(/the host runs the fwgen agent \(pull mode\)/);
    }
    // A rollback or a removal would be undone by the next poll just the same: refused, nothing changed.
    const before = await snapshot('web1');
    for (const args of [
      ['rollback', '--host', 'web1'],
      ['remove', '--host', 'web1'],
    ]) {
      const r = await fwgen(...args, '--json', '--connect-timeout', '5');
      expect(r.code, r.stderr).toBe(1);
      const [row] = parseJson(r.stdout, { hosts: [] as { outcome: string; reason: string }[] }).hosts;
      expect(row).toMatchObject({ outcome: 'failed' });
      expect(row!.reason).toContain('`fwgen agent install --host web1 --uninstall`');
    }
    expect(await snapshot('web1')).toEqual(before);
    const poll = await agent('poll', '--role', 'web');
    expect(poll.code, poll.stderr).toBe(0);
    expect((await status()).code).toBe(0);
  }, 90_000);

  describe('any answer but a good one keeps the live rules, byte for byte', () => {
    let before: Awaited<ReturnType<typeof snapshot>>;
    let serial: number;
    beforeAll(async () => {
      saveTree();
      serial = manifestOf('web').serial;
      before = await snapshot('web1');
    });
    const pollKept = async (outcome: string) => {
      const r = await agent('poll', '--host', 'web1');
      expect(r.code, r.stdout).toBe(1);
      expect(r.rows[0]).toMatchObject({ outcome, ok: false, serial });
      expect(await snapshot('web1')).toEqual(before);
      expect(await agentState('web1')).toMatchObject({ serial: String(serial), outcome });
      return r.rows[0];
    };
    const newer = (m: Manifest): Manifest => ({ ...m, serial: m.serial + 100 });

    it('the origin is down: unreachable', async () => {
      await origin.stop();
      try {
        await pollKept('kept: unreachable');
      } finally {
        await origin.start();
      }
    });

    it('the origin answers 404, then 500', async () => {
      try {
        await origin.start(404);
        await pollKept('kept: http-404');
        await origin.start(500);
        await pollKept('kept: http-500');
      } finally {
        await origin.start();
      }
    });

    it('a newer manifest signed by a key the hosts do not trust: bad-signature', async () => {
      const other = join(dir, 'other');
      spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
      craft('web', newer, { signKey: other });
      const row = await pollKept('kept: bad-signature');
      expect(row.detail).toMatch(/does not verify/);
      restoreTree();
    });

    it("another role's manifest served in its place: wrong-role", async () => {
      for (const f of ['manifest', 'manifest.sig']) cpSync(join(tree, 'roles/db', f), join(tree, 'roles/web', f));
      await pollKept('kept: wrong-role');
      restoreTree();
    });

    it('an older manifest replayed: replay', async () => {
      craft('web', (m) => ({ ...m, serial: m.serial - 1 }));
      await pollKept('kept: replay');
      restoreTree();
    });

    it('a newer manifest that expired: expired', async () => {
      const now = Math.floor(Date.now() / 1000);
      craft('web', (m) => ({ ...newer(m), created: now - 7200, expires: now - 3600 }));
      await pollKept('kept: expired');
      restoreTree();
    });

    it('a blob changed after signing: hash-mismatch', async () => {
      craft('web', newer, { blob: webRelease().replace('tcp/8080', 'tcp/8081') });
      const sha = manifestOf('web').files[0].sha256;
      writeFileSync(join(tree, 'blobs', sha), webRelease().replace('--dport 8080', '--dport 8081'));
      await pollKept('kept: hash-mismatch');
      restoreTree();
    });

    it('rules the kernel rejects: test-failed', async () => {
      craft('web', newer, { blob: webRelease().replace('COMMIT', '-A FWGEN-INPUT -m nosuchmatch -j ACCEPT\nCOMMIT') });
      const row = await pollKept('kept: test-failed');
      expect(row.detail).toMatch(/iptables-restore --test rejected/);
      restoreTree();
    });

    it('the lock held by a ship: locked; once it is gone, the next poll applies', async () => {
      craft('web', newer, {
        blob: webRelease().replace('-A FWGEN-INPUT -p icmp', '-A FWGEN-INPUT -p tcp -m tcp --dport 9100 -j ACCEPT\n$&'),
      });
      const now = Math.floor(Date.now() / 1000);
      const lock = `${RULES}.fwgen-lock`;
      await lab.execOk('web1', [
        'sh',
        '-c',
        `mkdir ${lock} && echo "deployer@ctl (fwgen 0.1.0, pid 1)" > ${lock}/owner && echo 20261206T000000Z-abcdef > ${lock}/run && ` +
          `echo ${now} > ${lock}/since && echo ${now + 600} > ${lock}/until`,
      ]);
      try {
        const row = await pollKept('kept: locked');
        expect(row.detail).toMatch(/another fwgen run holds the lock/);
      } finally {
        await lab.execOk('web1', ['rm', '-rf', lock]);
      }
      const r = await agent('poll', '--host', 'web1');
      expect(r.rows[0].outcome).toBe(`applied ${serial + 100}`);
      expect(await lab.probe('outside', `${NET}.11`, 9100)).toBe('open');
    });
  });

  it('drift is repaired from the cache with the origin down', async () => {
    const good = await snapshot('web1');
    await origin.stop();
    try {
      await lab.execOk('web1', [
        'sh',
        '-c',
        'iptables -I FWGEN-INPUT 1 -p tcp --dport 8081 -j ACCEPT && iptables -D FWGEN-AGENT 1 && echo "# edited" >> ' +
          RULES,
      ]);
      expect(await snapshot('web1')).not.toEqual(good);
      const r = await agent('poll', '--host', 'web1');
      expect(r.code, r.stderr).toBe(0);
      expect(r.rows[0]).toMatchObject({ outcome: 'drift-repaired', ok: true });
      expect(r.rows[0].detail).toMatch(/re-applied from the cache \(origin: unreachable\)/);
      const after = await snapshot('web1');
      expect(after.live).toEqual(good.live);
      expect(after.file).toBe(good.file);
      // And with nothing to repair, the origin still down: the rules are kept.
      const again = await agent('poll', '--host', 'web1');
      expect(again.rows[0].outcome).toBe('kept: unreachable');
    } finally {
      await origin.start();
    }
  }, 60_000);

  it('at boot the cached release is applied by the boot hook, the origin down', async () => {
    const good = await snapshot('web2');
    await origin.stop();
    try {
      // A reboot, as the kernel sees it: no rules at all; then the hook runs (once per interface).
      await lab.execOk('web2', ['sh', '-c', 'iptables -F && iptables -X']);
      expect(await lab.probe('outside', `${NET}.12`, 22)).toBe('open');
      const hook = '/etc/network/if-pre-up.d/fwgen-iptables';
      await lab.execOk('web2', ['sh', hook]);
      await lab.execOk('web2', ['sh', hook]);
      expect((await snapshot('web2')).live).toEqual(good.live);
      expect(await lab.probe('outside', `${NET}.12`, 22)).toBe('refused');
      const r = await agent('poll', '--host', 'web2');
      expect(r.rows[0].outcome).toBe('kept: unreachable');
      expect(await snapshot('web2')).toEqual(good);
    } finally {
      await origin.start();
    }
  }, 60_000);

  it('agent install with other management networks: the next poll applies the new pinned rules', async () => {
    writeFileSync(
      join(project, 'inventory/inventory.yaml'),
      inventory({
        webPorts: 'tcp/8080, tcp/8081',
        extraHosts: `, web3: ${NET}.13`,
        management: `${NET}.240/28, 192.0.2.0/24`,
      }),
    );
    expect((await agent('poll', '--host', 'web2')).rows[0].ok).toBe(true); // on the newest release first
    const r = await agent('install', '--host', 'web2');
    expect(r.rows[0]).toMatchObject({ outcome: 'updated' });
    const poll = await agent('poll', '--host', 'web2');
    expect(poll.rows[0].outcome).toBe('drift-repaired');
    expect(await lab.execOk('web2', ['iptables-save', '-t', 'filter'])).toContain(
      '-A FWGEN-AGENT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -m comment --comment "fwgen agent management ssh" -j ACCEPT',
    );
    expect((await agent('poll', '--host', 'web2')).rows[0].outcome).toBe('unchanged');
  }, 60_000);

  it('a poll whose commit never comes is undone by the dead-man switch the agent armed (txn.sh goes with it)', async () => {
    const A = `${RULES}.fwgen-agent`;
    // Drift for the poll to repair (an apply), a commit step that fails, and a 3 s switch.
    await lab.execOk('db1', ['iptables', '-I', 'FWGEN-INPUT', '1', '-p', 'tcp', '--dport', '8082', '-j', 'ACCEPT']);
    const drifted = await snapshot('db1');
    await lab.execOk('db1', [
      'sh',
      '-c',
      `cp ${A}/commit.sh ${A}/commit.sh.real && printf 'exit 1\\n' > ${A}/commit.sh && ` +
        `cp ${A}/config ${A}/config.real && sed -i 's/^timeout .*/timeout 3/' ${A}/config`,
    ]);
    try {
      const r = await agent('poll', '--host', 'db1');
      expect(r.rows[0].outcome).toBe('kept: error');
      expect(r.rows[0].detail).toMatch(/commit step exited with 1/);
      // Applied, not committed: the repair is live until the switch fires.
      expect((await snapshot('db1')).live).not.toEqual(drifted.live);
      // The switch logs what it did beside the rules: `rolled back` (its undo restored fwgen's part) or
      // `ROLLBACK FAILED`.
      const log = () => lab.execOk('db1', ['sh', '-c', `cat ${RULES}.fwgen-rollbacks 2>/dev/null || true`]);
      let logged = '';
      for (let i = 0; i < 60 && !/ship \S+: not confirmed within 3s/.test(logged); i++) {
        await new Promise((res) => setTimeout(res, 250));
        logged = await log();
      }
      expect(logged).toMatch(/ rolled back ship \S+: not confirmed within 3s\n$/);
      // Its undo transaction ran: the live rules are the drifted ones the apply replaced.
      const after = await snapshot('db1');
      expect(after.live).toEqual(drifted.live);
    } finally {
      await lab.execOk('db1', ['sh', '-c', `mv ${A}/commit.sh.real ${A}/commit.sh && mv ${A}/config.real ${A}/config`]);
    }
    // With the commit step back, the next poll repairs the drift for good.
    expect((await agent('poll', '--host', 'db1')).rows[0].outcome).toBe('drift-repaired');
    expect((await snapshot('db1')).live).not.toContain('-A FWGEN-INPUT -p tcp -m tcp --dport 8082 -j ACCEPT');
  }, 60_000);

  it('agent install --uninstall removes the agent and its schedule; the rules stay', async () => {
    const good = await snapshot('db1');
    const r = await agent('install', '--host', 'db1', '--uninstall');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r.rows)).toEqual({ db1: 'uninstalled' });
    expect(
      await lab.execOk('db1', ['sh', '-c', `ls -d /etc/cron.d/fwgen-agent ${RULES}.fwgen-agent 2>&1 || true`]),
    ).toMatch(/No such file[\s\S]*No such file/);
    expect(await snapshot('db1')).toEqual(good);
    expect(outcomes((await agent('install', '--host', 'db1', '--uninstall')).rows)).toEqual({ db1: 'absent' });
    const poll = await agent('poll', '--host', 'db1');
    expect(poll.rows[0]).toMatchObject({ outcome: 'not-installed', ok: false });
  }, 60_000);
});
