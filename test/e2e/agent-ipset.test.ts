/**
 * The pull agent in ipset mode (`sets: ipset`), against a real nginx and a real sshd host: a release
 * carries the role's sets; the agent loads them with ship's transaction (staged names, swapped in),
 * finds them unchanged on the next poll, swaps in new members, and drops them (sets file included) when
 * the inventory goes back to `sets: none`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { labNginx, type Nginx } from '../support/nginx.js';
import { parseJson, runFwgen } from '../support/run-cli.js';

const NET = '198.18.144';
const RULES = '/etc/iptables.up.rules';

it('has the prerequisites (root, sshd, iptables, ipset, nginx)', () => {
  expect(labPrereqs()).toEqual([]);
  expect(spawnSync('sh', ['-c', 'PATH=$PATH:/usr/sbin command -v ipset']).status).toBe(0);
});

describe('the pull agent with sets: ipset', () => {
  let lab: Lab;
  let dir: string;
  let project: string;
  let tree: string;
  let origin: Nginx;
  let key: string;

  const inventory = (sets: 'ipset' | 'none', clients: string) => `
defaults:
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
agent: { origin: "${origin.url}", signers: ["${readFileSync(`${key}.pub`, 'utf8').trim()}"] }
management: [${NET}.240/28]
trust: none
sets: ${sets}
roles:
  db:
    allow: [{ from: [${clients}], ports: [tcp/5432] }]
    hosts: { db1: ${NET}.21 }
`;
  const fwgen = (...args: string[]) => runFwgen(project, args);
  const publish = async (sets: 'ipset' | 'none', clients: string) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(sets, clients));
    expect((await fwgen('render')).code).toBe(0);
    const r = await fwgen('publish', '--out', tree, '--sign-key', key);
    expect(r.code, r.stderr).toBe(0);
  };
  const poll = async () => {
    const r = await fwgen('agent', 'poll', '--host', 'db1', '--json', '--connect-timeout', '5');
    return parseJson(r.stdout, [] as { outcome: string }[])[0]?.outcome;
  };
  /** Members of fwgen's sets, the management network's aside. */
  const members = async () =>
    (
      await lab.execOk('db1', [
        'sh',
        '-c',
        `ipset save | grep "^add fwgen-" | cut -d" " -f3 | grep -v "^${NET}.240/28$" | sort || true`,
      ])
    )
      .split('\n')
      .filter(Boolean);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-agent-ipset-'));
    lab = await createLab({
      prefix: 'fwai',
      hosts: [
        { name: 'origin', ipv4: `${NET}.5` },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true, listen: [5432] },
        { name: 'client', ipv4: `${NET}.50`, extraIpv4: [`${NET}.52`] },
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
    await publish('ipset', `${NET}.50`);
    const inst = await fwgen('agent', 'install', '--host', 'db1', '--connect-timeout', '5');
    expect(inst.code, inst.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await origin?.stop();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('a release with sets: loaded and matched; the next poll finds them unchanged', async () => {
    expect(await poll()).toMatch(/^applied \d+$/);
    expect(await members()).toEqual([`${NET}.50`]);
    expect(await lab.execOk('db1', ['cat', `${RULES}.ipset`])).toMatch(/^create fwgen-/m);
    expect(await lab.probe('client', `${NET}.21`, 5432, { source: `${NET}.50` })).toBe('open');
    expect(await lab.probe('client', `${NET}.21`, 5432, { source: `${NET}.52` })).toBe('refused');
    expect(await poll()).toBe('unchanged');
  }, 60_000);

  it('new members are swapped in; members changed by hand are drift, repaired', async () => {
    await publish('ipset', `${NET}.50, ${NET}.52`);
    expect(await poll()).toMatch(/^applied \d+$/);
    expect(await members()).toEqual([`${NET}.50`, `${NET}.52`]);
    expect(await lab.probe('client', `${NET}.21`, 5432, { source: `${NET}.52` })).toBe('open');
    expect(await lab.execOk('db1', ['sh', '-c', 'ipset save | grep -c "^create fwgen~" || true'])).toBe('0\n');
    const set = (
      await lab.execOk('db1', ['sh', '-c', `ipset save | awk '$1 == "add" && $3 == "${NET}.52" { print $2 }'`])
    ).trim();
    await lab.execOk('db1', ['ipset', 'del', set, `${NET}.52`]);
    expect(await poll()).toBe('drift-repaired');
    expect(await members()).toEqual([`${NET}.50`, `${NET}.52`]);
  }, 60_000);

  it('back to sets: none: the rules match addresses again, the sets and their file go', async () => {
    await publish('none', `${NET}.50`);
    expect(await poll()).toMatch(/^applied \d+$/);
    expect(await members()).toEqual([]);
    expect((await lab.exec('db1', ['test', '-e', `${RULES}.ipset`])).code).not.toBe(0);
    expect(await lab.probe('client', `${NET}.21`, 5432, { source: `${NET}.50` })).toBe('open');
    expect(await lab.probe('client', `${NET}.21`, 5432, { source: `${NET}.52` })).toBe('refused');
    expect(await poll()).toBe('unchanged');
  }, 60_000);
});
