/**
 * Staged releases end to end: agents installed in waves (one canary, then the rest), a real nginx
 * serving the tree. A new release reaches the canary only; the next wave stays on the old serial until
 * `publish --advance` finds the canary on the new one; a release the canary's kernel rejects stops the
 * rollout there.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type Manifest } from '../../src/publish/manifest.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { labNginx, type Nginx } from '../support/nginx.js';
import { parseJson, runFwgen } from '../support/run-cli.js';

const NET = '198.18.142';

it('has the prerequisites (root, sshd, iptables, nginx)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('staged releases: canary first, the next wave once the canary runs the release', () => {
  let lab: Lab;
  let dir: string;
  let project: string;
  let tree: string;
  let origin: Nginx;
  let key: string;

  const inventory = (ports: string) => `
defaults:
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
agent: { origin: "${origin.url}", signers: ["${readFileSync(`${key}.pub`, 'utf8').trim()}"] }
management: [${NET}.240/28]
trust: none
roles:
  web:
    ports: [${ports}]
    hosts: { w1: ${NET}.11, w2: ${NET}.12, w3: ${NET}.13 }
`;
  const fwgen = (...args: string[]) => runFwgen(project, args);
  const publish = async (ports: string, ...args: string[]) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(ports));
    expect((await fwgen('render')).code).toBe(0);
    const r = await fwgen('publish', '--out', tree, '--sign-key', key, ...args);
    expect(r.code, r.stderr).toBe(0);
    return (parseManifest(readFileSync(join(tree, 'roles/web/manifest'), 'utf8')) as Manifest).serial;
  };
  const poll = async () => {
    const r = await fwgen('agent', 'poll', '--role', 'all', '--json', '--connect-timeout', '5');
    return Object.fromEntries(
      parseJson(r.stdout, [] as { host: string; outcome: string }[]).map((x) => [x.host, x.outcome]),
    );
  };
  const advance = () => fwgen('publish', '--out', tree, '--advance', '--connect-timeout', '5');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-agent-waves-'));
    lab = await createLab({
      prefix: 'fwaw',
      hosts: [
        { name: 'origin', ipv4: `${NET}.5` },
        { name: 'w1', ipv4: `${NET}.11`, sshd: true },
        { name: 'w2', ipv4: `${NET}.12`, sshd: true },
        { name: 'w3', ipv4: `${NET}.13`, sshd: true },
      ],
    });
    project = join(dir, 'project');
    tree = join(dir, 'tree');
    mkdirSync(join(project, 'inventory'), { recursive: true });
    mkdirSync(tree);
    key = join(dir, 'release');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    origin = labNginx(lab, 'origin', tree, join(dir, 'nginx'));
    await origin.start();
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory('tcp/8080'));
    expect((await fwgen('render')).code).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await origin?.stop();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('agents are installed in waves; the first release reaches the canary, then the rest once it runs it', async () => {
    const inst = await fwgen(
      'agent',
      'install',
      '--role',
      'all',
      '--canary',
      '1',
      '--waves',
      '100%',
      '--connect-timeout',
      '5',
    );
    expect(inst.code, inst.stderr).toBe(0);
    expect(await lab.execOk('w1', ['cat', '/etc/iptables.up.rules.fwgen-agent/config'])).toContain('wave 1\n');
    expect(await lab.execOk('w3', ['cat', '/etc/iptables.up.rules.fwgen-agent/config'])).toContain('wave 2\n');
    const s1 = await publish('tcp/8080', '--canary', '1', '--waves', '100%');
    expect(readFileSync(join(tree, 'waves'), 'utf8')).toContain('open 1\n');
    // The rest have no release of the role yet: their wave's manifest is not there.
    expect(await poll()).toEqual({ w1: `applied ${s1}`, w2: 'kept: http-404', w3: 'kept: http-404' });
    const r = await advance();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('opened wave 2 of 2');
    expect(await poll()).toEqual({ w1: 'unchanged', w2: `applied ${s1}`, w3: `applied ${s1}` });
  }, 90_000);

  it('a new release: the second wave stays on the old serial until the canary converged', async () => {
    const s1 = (parseManifest(readFileSync(join(tree, 'roles/web/manifest'), 'utf8')) as Manifest).serial;
    const s2 = await publish('tcp/8080, tcp/8081');
    const early = await advance();
    expect(early.code).toBe(1);
    expect(early.stderr).toContain(`w1: runs serial ${s1}, not yet ${s2}`);
    expect(await poll()).toEqual({ w1: `applied ${s2}`, w2: 'unchanged', w3: 'unchanged' });
    expect(await lab.execOk('w2', ['cat', '/etc/iptables.up.rules.fwgen-agent/state'])).toContain(`serial=${s1}\n`);
    expect((await advance()).code).toBe(0);
    expect(await poll()).toEqual({ w1: 'unchanged', w2: `applied ${s2}`, w3: `applied ${s2}` });
  }, 90_000);

  it("a release the canary's kernel rejects stops the rollout at the canary", async () => {
    mkdirSync(join(project, 'inventory/templates/roles'), { recursive: true });
    writeFileSync(
      join(project, 'inventory/templates/roles/web.njk'),
      '{% extends "base.rules.njk" %}{% block extra %}-A FWGEN-INPUT -p tcp -m tcp --dport 9999 -m nosuchmatch -j ACCEPT\n{% endblock %}',
    );
    const before = (parseManifest(readFileSync(join(tree, 'roles/web/manifest'), 'utf8')) as Manifest).serial;
    await publish('tcp/8080, tcp/8081');
    expect(await poll()).toEqual({ w1: 'kept: test-failed', w2: 'unchanged', w3: 'unchanged' });
    const r = await advance();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('w1: last poll kept: test-failed');
    expect(readFileSync(join(tree, 'waves'), 'utf8')).toContain('open 1\n');
    for (const h of ['w2', 'w3'])
      expect(await lab.execOk(h, ['cat', '/etc/iptables.up.rules.fwgen-agent/state'])).toContain(`serial=${before}\n`);
  }, 90_000);
});
