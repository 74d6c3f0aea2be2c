/**
 * `fwgen publish`: the manifest format, the pure plan (new / refreshed / kept, serials), the
 * management lockout check, and the command against real ssh-keygen signatures (key file and
 * ssh-agent), each verified as agents verify them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProject } from '../src/cli/project.js';
import { formatManifest, parseManifest, type Manifest } from '../src/publish/manifest.js';
import { planPublish, roleReleases, type RoleRelease } from '../src/publish/publish-plan.js';
import { releaseLockoutProblems } from '../src/publish/release-lockout.js';
import { allowedSigners, verifySignature } from '../src/publish/sign.js';
import { planShip } from '../src/ship/plan.js';
import { runFwgen } from './support/run-cli.js';

const SHA = (c: string): string => c.repeat(64);

const manifest = (over: Partial<Manifest> = {}): Manifest => ({
  format: 1,
  role: 'web',
  serial: 1000,
  created: 1000,
  expires: 1000 + 7 * 86400,
  commit: 'abcdef1',
  inventory: 'inventory/inventory.yaml',
  preserve: ['DOCKER*', 'f2b-*'],
  files: [{ name: 'iptables.up.rules', sha256: SHA('a'), size: 10 }],
  ...over,
});

describe('the manifest', () => {
  it('is lines of key and words, read back to the same value', () => {
    const m = manifest({ commit: 'abcdef1+dirty' });
    const text = formatManifest(m);
    expect(text).toBe(
      [
        'fwgen-release 1',
        'role web',
        'serial 1000',
        'created 1000 1970-01-01T00:16:40Z',
        'expires 605800 1970-01-08T00:16:40Z',
        'commit abcdef1+dirty',
        'inventory inventory/inventory.yaml',
        'preserve DOCKER* f2b-*',
        `file iptables.up.rules ${SHA('a')} 10`,
        '',
      ].join('\n'),
    );
    expect(parseManifest(text)).toEqual(m);
  });

  it.each([
    ['another format', (t: string) => t.replace('fwgen-release 1', 'fwgen-release 2'), /format/],
    ['a role with a space', (t: string) => t.replace('role web', 'role web x'), /malformed/],
    ['a bad hash', (t: string) => t.replace(SHA('a'), 'zz'), /bad file line/],
    ['a file fwgen does not publish', (t: string) => t.replace('file iptables.up.rules', 'file passwd'), /bad file/],
    ['a pattern with a slash', (t: string) => t.replace('f2b-*', 'a/b'), /preserve/],
    ['no serial', (t: string) => t.replace(/^serial .*\n/m, ''), /missing/],
  ])('refuses %s', (_, edit, why) => {
    expect(parseManifest(edit(formatManifest(manifest())))).toMatch(why);
  });
});

describe('planPublish (pure)', () => {
  const release = (sha: string): RoleRelease => ({
    role: 'web',
    files: [{ name: 'iptables.up.rules', sha256: SHA(sha), size: 10, parts: [] }],
  });
  const settings = { now: 2000, expiresS: 7 * 86400, commit: 'bbbbbbb', inventory: 'inventory/inventory.yaml' };
  const plan = (r: RoleRelease, prev?: Manifest, now = 2000) =>
    planPublish([r], new Map(prev ? [['web', prev]] : []), { ...settings, now, preserve: ['DOCKER*', 'f2b-*'] })[0];

  it('a role never published gets the time as its serial', () => {
    expect(plan(release('a'))).toMatchObject({ action: 'new', manifest: { serial: 2000, created: 2000 } });
  });

  it('the same files keep the published manifest, even from another commit', () => {
    const prev = manifest();
    const p = plan(release('a'), prev);
    expect(p.action).toBe('kept');
    expect(p.manifest).toBe(prev);
  });

  it('changed files, or other kept chains, make a new release with a higher serial', () => {
    expect(plan(release('b'), manifest())).toMatchObject({ action: 'new', manifest: { serial: 2000 } });
    // A serial ahead of the clock (a tree published from a machine whose clock ran ahead) still grows.
    expect(plan(release('b'), manifest({ serial: 5000 }))).toMatchObject({ manifest: { serial: 5001 } });
    expect(plan(release('a'), manifest({ preserve: ['DOCKER*'] })).action).toBe('new');
  });

  it('signs the same release again, same serial, once less than half of its validity is left', () => {
    const prev = manifest();
    const late = prev.created + 4 * 86400;
    const p = plan(release('a'), prev, late);
    expect(p).toMatchObject({ action: 'refreshed', manifest: { serial: prev.serial, created: late } });
    expect(p.manifest.expires).toBe(late + 7 * 86400);
    expect(plan(release('a'), prev, prev.created + 3 * 86400).action).toBe('kept');
  });
});

const SETS_INVENTORY = `
agent: { origin: https://fw.example.net/fleet/, signers: ["KEY"] }
management: [203.0.113.0/28]
sets: ipset
roles:
  web: { public: true, hosts: { web1: 198.51.100.11, web2: 198.51.100.12 } }
  db:
    allow: [{ from: [web], ports: [tcp/5432] }]
    hosts: { db1: 198.51.100.21 }
`;

describe('a project on disk', () => {
  let dir: string;
  let key: string;
  let pub: string;
  const cli = (args: string[], env: Record<string, string> = {}) => runFwgen(dir, args, env);
  const inventory = (text: string) => writeFileSync(join(dir, 'inventory/inventory.yaml'), text.replace('KEY', pub));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-publish-'));
    mkdirSync(join(dir, 'inventory'));
    key = join(dir, 'release');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'release@example', '-f', key]);
    pub = readFileSync(`${key}.pub`, 'utf8').trim();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const BASE = `
agent: { origin: https://fw.example.net/fleet/, signers: ["KEY"], expires: 2d }
management: [203.0.113.0/28]
roles:
  web: { public: true, hosts: { web1: 198.51.100.11 } }
  db: { hosts: { db1: 198.51.100.21 } }
`;

  it('in ipset mode, a role release holds the sets text ship sends to its hosts', async () => {
    inventory(SETS_INVENTORY);
    expect((await cli(['render'])).code).toBe(0);
    const project = renderProject({ inventory: join(dir, 'inventory/inventory.yaml'), out: join(dir, 'rendered') });
    const inv = project.loaded.inventory;
    const releases = roleReleases(inv, project.files);
    const jobs = planShip(inv, inv.hosts, join(dir, 'rendered'));
    for (const r of releases) {
      const sets = r.files.find((f) => f.name === 'ipset.rules')!;
      const job = jobs.find((j) => j.host.role === r.role)!;
      expect(Buffer.concat(sets.parts as Buffer[]).equals(job.sets!)).toBe(true);
      const v4 = r.files.find((f) => f.name === 'iptables.up.rules')!;
      expect(Buffer.concat(v4.parts as Buffer[]).equals(job.v4)).toBe(true);
    }
    expect(releases.map((r) => r.files.map((f) => f.name))).toEqual([
      ['iptables.up.rules', 'ipset.rules'],
      ['iptables.up.rules', 'ipset.rules'],
    ]);
  });

  it('publishes every role, signed in namespace fwgen, verifiable by ssh-keygen -Y verify', async () => {
    inventory(BASE);
    expect((await cli(['render'])).code).toBe(0);
    const r = await cli(['publish', '--out', 'public', '--sign-key', key, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^db +\d+ +new +expires /m);
    expect(r.stderr).toMatch(/published 2 role\(s\) into public\/: 2 new, 0 refreshed, 0 kept; 2 blob\(s\) written/);
    const text = readFileSync(join(dir, 'public/roles/web/manifest'));
    const m = parseManifest(text.toString()) as Manifest;
    expect(m.role).toBe('web');
    const rendered = readFileSync(join(dir, 'rendered/web/iptables.up.rules'));
    expect(readFileSync(join(dir, 'public/blobs', m.files[0].sha256)).equals(rendered)).toBe(true);
    expect(m.files[0].size).toBe(rendered.length);
    const sig = readFileSync(join(dir, 'public/roles/web/manifest.sig'), 'utf8');
    expect(sig).toMatch(/^-----BEGIN SSH SIGNATURE-----/);
    // Dated by the release (a web server's ETag and Last-Modified come from the time): never alike for two.
    for (const f of ['manifest', 'manifest.sig'])
      expect(statSync(join(dir, 'public/roles/web', f)).mtimeMs / 1000).toBe(Math.max(m.serial, m.created));
    expect(await verifySignature(text, sig, [pub])).toBeUndefined();
    // Another namespace, another key, or one changed byte does not verify.
    const other = join(dir, 'other');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    expect(await verifySignature(text, sig, [readFileSync(`${other}.pub`, 'utf8')])).toBeDefined();
    expect(
      await verifySignature(Buffer.from(text.toString().replace('role web', 'role wex')), sig, [pub]),
    ).toBeDefined();
    writeFileSync(join(dir, 'allowed_signers'), allowedSigners([pub]));
    const wrongNs = spawnSync(
      'ssh-keygen',
      ['-Y', 'verify', '-f', join(dir, 'allowed_signers'), '-I', 'fwgen-release', '-n', 'file', '-s', '/dev/stdin'],
      { input: sig },
    );
    expect(wrongNs.status).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      blobsWritten: 2,
      roles: [{ role: 'db', action: 'new' }, { role: 'web' }],
    });
  });

  it('publishing again with nothing changed writes no blob and no manifest', async () => {
    const before = snapshot(join(dir, 'public'));
    const r = await cli(['publish', '--out', 'public', '--sign-key', key]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('0 new, 0 refreshed, 2 kept; 0 blob(s) written');
    expect(snapshot(join(dir, 'public'))).toEqual(before);
  });

  it('a change to one role gives only that role a new manifest and serial', async () => {
    const before = parseManifest(readFileSync(join(dir, 'public/roles/db/manifest'), 'utf8')) as Manifest;
    const web = readFileSync(join(dir, 'public/roles/web/manifest'), 'utf8');
    inventory(
      BASE.replace('db: { hosts: { db1: 198.51.100.21 } }', 'db: { ports: [tcp/5432], hosts: { db1: 198.51.100.21 } }'),
    );
    expect((await cli(['render'])).code).toBe(0);
    const r = await cli(['publish', '--out', 'public', '--sign-key', key]);
    expect(r.code, r.stderr).toBe(0);
    const after = parseManifest(readFileSync(join(dir, 'public/roles/db/manifest'), 'utf8')) as Manifest;
    expect(after.serial).toBeGreaterThan(before.serial);
    expect(after.files[0].sha256).not.toBe(before.files[0].sha256);
    expect(readFileSync(join(dir, 'public/roles/web/manifest'), 'utf8')).toBe(web);
    expect(existsSync(join(dir, 'public/blobs', before.files[0].sha256))).toBe(true);
  });

  it('refuses when rendered/ is stale, and writes nothing', async () => {
    const before = snapshot(join(dir, 'public'));
    inventory(BASE);
    const r = await cli(['publish', '--out', 'public', '--sign-key', key]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /rendered\/ does not match the inventory \(updated: db\/iptables.up.rules\); refusing to publish/,
    );
    expect(snapshot(join(dir, 'public'))).toEqual(before);
  });

  it('refuses a key the hosts do not trust', async () => {
    expect((await cli(['render'])).code).toBe(0);
    const r = await cli(['publish', '--out', 'public', '--sign-key', join(dir, 'other')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not in agent\.signers: hosts would refuse its releases/);
  });

  it('refuses a role whose rules would lock the management networks out', async () => {
    mkdirSync(join(dir, 'inventory/templates/roles'), { recursive: true });
    writeFileSync(
      join(dir, 'inventory/templates/roles/db.njk'),
      '{% extends "base.rules.njk" %}{% block extra %}-A FWGEN-OUTPUT -p tcp -m tcp --sport 22 -j DROP\n{% endblock %}',
    );
    expect((await cli(['render'])).code).toBe(0);
    const before = snapshot(join(dir, 'public'));
    const r = await cli(['publish', '--out', 'public', '--sign-key', key]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('refusing to publish: a release would lock the management networks out');
    expect(r.stderr).toMatch(
      /role db \(db\/iptables.up.rules\): does not admit SSH from management network 203.0.113.0\/28 to port 22 \(decided by table filter, chain OUTPUT, replies: -A FWGEN-OUTPUT -p tcp -m tcp --sport 22 -j DROP\)/,
    );
    expect(snapshot(join(dir, 'public'))).toEqual(before);
    rmSync(join(dir, 'inventory/templates'), { recursive: true });
    expect((await cli(['render'])).code).toBe(0);
  });

  it('signs with a key held by ssh-agent when --sign-key names its public key', async () => {
    const sock = join(dir, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      const agentKey = join(dir, 'agentkey');
      spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'held@agent', '-f', agentKey]);
      expect(spawnSync('ssh-add', ['-q', agentKey], { env: { ...process.env, SSH_AUTH_SOCK: sock } }).status).toBe(0);
      const agentPub = readFileSync(`${agentKey}.pub`, 'utf8').trim();
      // Only the public key stays beside the project: the private one lives in the agent.
      rmSync(agentKey);
      inventory(
        BASE.replace('signers: ["KEY"]', `signers: ["KEY", "${agentPub}"]`).replace(
          'web1: 198.51.100.11',
          'web1: 198.51.100.13',
        ),
      );
      expect((await cli(['render'])).code).toBe(0);
      const r = await cli(['publish', '--out', 'public', '--sign-key', `${agentKey}.pub`], { SSH_AUTH_SOCK: sock });
      expect(r.code, r.stderr).toBe(0);
      const text = readFileSync(join(dir, 'public/roles/web/manifest'));
      const sig = readFileSync(join(dir, 'public/roles/web/manifest.sig'), 'utf8');
      expect(await verifySignature(text, sig, [agentPub])).toBeUndefined();
      expect(await verifySignature(text, sig, [pub])).toBeDefined();
      // Without the agent, the same command cannot sign, says why, and leaves the tree as it was.
      inventory(
        BASE.replace('signers: ["KEY"]', `signers: ["KEY", "${agentPub}"]`).replace(
          'web1: 198.51.100.11',
          'web1: 198.51.100.14',
        ),
      );
      expect((await cli(['render'])).code).toBe(0);
      const before = snapshot(join(dir, 'public'));
      const bad = await cli(['publish', '--out', 'public', '--sign-key', `${agentKey}.pub`]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/ssh-keygen -Y sign failed[\s\S]*hint: is the key loaded into ssh-agent/);
      const after = snapshot(join(dir, 'public'));
      // New blobs may stay (content-addressed, unreferenced); no manifest or signature changed.
      expect(Object.keys(after).filter((p) => p.startsWith('roles/'))).toEqual(
        Object.keys(before).filter((p) => p.startsWith('roles/')),
      );
      for (const p of Object.keys(before).filter((x) => x.startsWith('roles/'))) expect(after[p]).toBe(before[p]);
    } finally {
      agent.kill();
    }
  });

  it('refuses an inventory without agent: or without management networks', async () => {
    inventory(BASE.replace(/^agent:.*$/m, ''));
    expect((await cli(['render'])).code).toBe(0);
    const r = await cli(['publish', '--out', 'public', '--sign-key', key]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no agent: block/);
    inventory(BASE.replace(/^management:.*$/m, ''));
    expect((await cli(['render'])).code).toBe(0);
    const r2 = await cli(['publish', '--out', 'public', '--sign-key', key]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/has no management networks/);
  });
});

describe('releaseLockoutProblems', () => {
  it('checks every management network of the family, on every SSH port of the role', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwgen-lock-'));
    try {
      mkdirSync(join(dir, 'inventory/templates/roles'), { recursive: true });
      writeFileSync(
        join(dir, 'inventory/inventory.yaml'),
        `management: [203.0.113.0/28, 2001:db8:ffff::/48]
roles:
  web: { hosts: { web1: 198.51.100.11, web2: { address: [198.51.100.12, 2001:db8::12], ssh: { port: 2222 } } } }
  db: { hosts: { db1: 198.51.100.21 } }
`,
      );
      const files = () =>
        renderProject({ inventory: join(dir, 'inventory/inventory.yaml'), out: join(dir, 'rendered') });
      const clean = files();
      expect(releaseLockoutProblems(clean.loaded.inventory, clean.files)).toEqual([]);
      writeFileSync(
        join(dir, 'inventory/templates/roles/web.njk'),
        '{% extends "base.rules.njk" %}{% block extra %}-A FWGEN-OUTPUT -p tcp -m tcp --sport 2222 -j DROP\n{% endblock %}',
      );
      const bad = files();
      const problems = releaseLockoutProblems(bad.loaded.inventory, bad.files);
      expect(problems).toEqual([
        expect.stringMatching(
          /^role web \(web\/iptables.up.rules\): does not admit SSH from management network 203.0.113.0\/28 to port 2222 /,
        ),
        expect.stringMatching(
          /^role web \(web\/ip6tables.up.rules\): does not admit SSH from management network 2001:db8:ffff::\/48 to port 2222 /,
        ),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Every file of a tree with its size and modification time. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p, `${rel}${n}/`);
      else out[`${rel}${n}`] = `${st.size} ${st.mtimeMs}`;
    }
  };
  walk(root, '');
  return out;
}
