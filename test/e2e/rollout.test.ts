/** Staged rollouts against a real fleet: a failure in a wave halts the rollout before the next one. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFwgen } from '../support/run-cli.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.90';
const HOSTS = ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'];

const fwgen = (cwd: string, args: string[]) => runFwgen(cwd, args);

it('has the prerequisites of the end-to-end tests', () => expect(labPrereqs()).toEqual([]));

describe('staged rollout', () => {
  let lab: Lab;
  let project: string;
  const inventory = (port: string) => `
defaults:
  interface: eth1
  ssh: { identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
roles:
  alpha: { ports: [${port}], hosts: { a1: ${NET}.11, a2: ${NET}.12, a3: ${NET}.13 } }
  beta: { ports: [${port}], hosts: { b1: ${NET}.21, b2: ${NET}.22, b3: ${NET}.23 } }
`;
  const setInventory = async (port: string) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(port));
    expect((await fwgen(project, ['render'])).code).toBe(0);
  };
  const liveHas = async (host: string, port: number) =>
    (await lab.execOk(host, ['iptables-save', '-t', 'filter'])).includes(`--dport ${port} `);

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwr',
      hosts: HOSTS.map((name, i) => ({ name, ipv4: `${NET}.${name.startsWith('a') ? 11 + i : 18 + i}`, sshd: true })),
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-rollout-'));
    mkdirSync(join(project, 'inventory'));
    await setInventory('tcp/7001');
    const first = await fwgen(project, ['ship', '--role', 'all']);
    expect(first.code, first.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('halts at the first wave with a failure; later waves keep the old rules; the log says so', async () => {
    await setInventory('tcp/7002');
    // Order: canary a1,b1; wave 1 (50%) a2; wave 2 (100%) b2,a3,b3. A stale lock makes a2 fail.
    await lab.execOk('a2', ['mkdir', '/etc/iptables.up.rules.fwgen-lock']);
    const r = await fwgen(project, ['ship', '--role', 'all', '--canary', '2', '--waves', '50%,100%', '--json']);
    await lab.execOk('a2', ['rmdir', '/etc/iptables.up.rules.fwgen-lock']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('== canary: a1, b1');
    expect(r.stderr).toContain('== wave 1 (50%): a2');
    expect(r.stderr).not.toContain('== wave 2');
    expect(r.stderr).toMatch(
      /rollout halted after wave 1 \(50%\): 1 failure\(s\), more than --max-failures 0\nrun the new rules \(2\): a1, b1\ndo not \(4\): a2, b2, a3, b3/,
    );
    const results = JSON.parse(r.stdout).hosts as { host: string; outcome: string; stage: string }[];
    expect(results.map((x) => [x.host, x.outcome, x.stage])).toEqual([
      ['a1', 'applied', 'canary'],
      ['b1', 'applied', 'canary'],
      ['a2', 'failed', 'wave 1 (50%)'],
    ]);
    for (const h of ['a1', 'b1']) expect(await liveHas(h, 7002)).toBe(true);
    for (const h of ['a2', 'a3', 'b2', 'b3']) {
      expect(await liveHas(h, 7001)).toBe(true);
      expect(await liveHas(h, 7002)).toBe(false);
    }
    const log = await fwgen(project, ['log', '--last', '2']);
    expect(log.stdout).toMatch(/ship {5}run .*: 2 applied, 0 unchanged, 0 rolled-back, 1 failed/);
    expect(log.stdout).toContain('HALTED at wave 1 (50%) after 1 failure(s); 3 host(s) untouched');
    const lines = readFileSync(join(project, '.fwgen/deploy.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({
      action: 'halt',
      halted: { stage: 'wave 1 (50%)', failures: 1, untouched: ['b2', 'a3', 'b3'] },
    });
  }, 120_000);

  it('rollback --wave last undoes the shipped part', async () => {
    const r = await fwgen(project, ['rollback', '--wave', 'last', '--timeout', '5', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout).hosts as { host: string; outcome: string }[]).map((x) => [x.host, x.outcome])).toEqual(
      [
        ['a1', 'applied'],
        ['b1', 'applied'],
      ],
    );
    for (const h of HOSTS) expect(await liveHas(h, 7002)).toBe(false);
    for (const h of ['a1', 'b1']) expect(await liveHas(h, 7001)).toBe(true);
    const log = await fwgen(project, ['log', '--json', '--last', '1']);
    expect(JSON.parse(log.stdout)).toMatchObject({ action: 'rollback' });
  }, 120_000);

  it('a rollout without failures runs every stage and checks each host after its stage', async () => {
    const r = await fwgen(project, ['ship', '--role', 'all', '--canary', '1', '--waves', '50%,100%', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout).hosts as { host: string; outcome: string; stage: string }[];
    expect(results.map((x) => x.stage)).toEqual([
      'canary',
      'wave 1 (50%)',
      'wave 1 (50%)',
      'wave 2 (100%)',
      'wave 2 (100%)',
      'wave 2 (100%)',
    ]);
    expect(results.every((x) => x.outcome === 'applied' || x.outcome === 'unchanged')).toBe(true);
    for (const h of HOSTS) expect(await liveHas(h, 7002)).toBe(true);
  }, 120_000);

  it('a host whose rules another tool changes right after the ship fails its check and halts the rollout', async () => {
    await setInventory('tcp/7003');
    // A rogue tool on the canary keeps inserting a rule; the check after the canary stage must see it.
    await lab.execOk('a1', [
      'sh',
      '-c',
      'while :; do iptables -C INPUT -s 192.0.2.66/32 -j ACCEPT 2>/dev/null || iptables -I INPUT -s 192.0.2.66/32 -j ACCEPT; sleep 0.05; done </dev/null >/dev/null 2>&1 & echo $! > /tmp/rogue.pid',
    ]);
    try {
      const r = await fwgen(project, ['ship', '--role', 'all', '--canary', '1', '--waves', '100%', '--json']);
      expect(r.code).toBe(1);
      const results = JSON.parse(r.stdout).hosts as {
        host: string;
        outcome: string;
        reason: string;
        backup?: string;
      }[];
      expect(results).toHaveLength(1);
      expect(results[0]).toMatchObject({
        host: 'a1',
        outcome: 'failed',
        reason: expect.stringMatching(/^check after the stage: drifted/),
      });
      expect(results[0].backup).toMatch(/^\d{8}T\d{6}Z/);
      expect(r.stderr).toMatch(
        /took the new rules but failed the check after their stage \(1\): a1\ndo not \(5\): b1, a2, b2, a3, b3/,
      );
      for (const h of ['b1', 'a2', 'b3']) expect(await liveHas(h, 7003)).toBe(false);
    } finally {
      await lab.execOk('a1', ['sh', '-c', 'kill $(cat /tmp/rogue.pid)']);
    }
    const back = await fwgen(project, ['rollback', '--wave', 'last', '--json', '--timeout', '5']);
    expect(back.code, back.stderr).toBe(0);
    expect(
      (JSON.parse(back.stdout).hosts as { host: string; outcome: string }[]).map((x) => [x.host, x.outcome]),
    ).toEqual([['a1', 'applied']]);
    expect(await liveHas('a1', 7003)).toBe(false);
  }, 120_000);
});
