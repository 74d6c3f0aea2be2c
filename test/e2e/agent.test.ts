/**
 * Pull mode end to end: `fwgen publish` writes a signed tree, a real nginx serves it from a lab host,
 * `fwgen agent install` puts the agent on real sshd hosts (one with curl, one with only GNU wget), and
 * `fwgen agent poll` makes them pull and apply. Every `kept:` outcome is made real, and each must
 * leave the host's rules byte for byte as they were.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type Manifest } from '../../src/publish/manifest.js';
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

  const inventory = (o: { webPorts?: string; extraHosts?: string } = {}) => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
agent: { origin: "${origin.url}", signers: ["${pub}"], every: 60, expires: 2d }
management: [${NET}.240/28]
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

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-agent-'));
    lab = await createLab({
      prefix: 'fwag',
      hosts: [
        { name: 'origin', ipv4: `${NET}.5` },
        { name: 'web1', ipv4: `${NET}.11`, sshd: true, listen: [80, 8080, 9100] },
        { name: 'web2', ipv4: `${NET}.12`, sshd: true, listen: [80, 8080] },
        { name: 'db1', ipv4: `${NET}.21`, sshd: true, listen: [5432] },
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
    await renderAndPublish();
  }, 180_000);

  afterAll(async () => {
    await origin?.stop();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('agent install puts the agent, its config and a cron entry on every host; again, it changes nothing', async () => {
    expect((await lab.exec('web2', ['sh', '-c', 'command -v curl'])).code).not.toBe(0);
    const r = await agent('install', '--role', 'all');
    expect(r.code, r.stderr).toBe(0);
    expect(outcomes(r.rows)).toEqual({ db1: 'installed', web1: 'installed', web2: 'installed' });
    const cron = await lab.execOk('web1', ['cat', '/etc/cron.d/fwgen-agent']);
    expect(cron).toContain(`root /bin/sh ${RULES}.fwgen-agent/agent.sh poll ${RULES} delay`);
    const config = await lab.execOk('web1', ['cat', `${RULES}.fwgen-agent/config`]);
    expect(config).toContain(`origin ${origin.url}\n`);
    expect(config).toContain('role web\n');
    const again = await agent('install', '--role', 'all');
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
});
