/**
 * What else filters: native nftables tables beside iptables' (a `table inet filter` dropping tcp/80
 * where fwgen opens it, one that accepts everything), and the lockout check over each host's live
 * rules as the change leaves them (a preserved chain that rejects SSH once the leftover ACCEPT ahead
 * of it is gone; a native chain dropping SSH from where the host sees it come from). Real sshd hosts,
 * real nft, real probes.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { parseJson, runFwgen, runFwgenHosts, savedLines } from '../support/run-cli.js';

const NET = '198.18.98';

interface Row {
  host: string;
  outcome: string;
  reason: string;
  native?: string[];
  lockout?: { table?: string; chain?: string; rule: string; refused: boolean };
}

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, nft, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('native nftables and the lockout check over live rules', () => {
  let lab: Lab;
  let project: string;

  const fwgen = async (...args: string[]) => {
    const r = await runFwgenHosts(project, [...args, '--json', '--connect-timeout', '3']);
    return { ...r, rows: r.results as unknown as Row[] };
  };
  const nft = (host: string, text: string) => lab.execOk(host, ['nft', '-f', '-'], { input: text });
  const saved = async (host: string) => savedLines(await lab.execOk(host, ['iptables-save']));

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwn',
      hosts: [
        { name: 'web', ipv4: `${NET}.10`, sshd: true, listen: [80] },
        { name: 'calm', ipv4: `${NET}.11`, sshd: true, listen: [80] },
        { name: 'locky', ipv4: `${NET}.12`, sshd: true },
        { name: 'guard', ipv4: `${NET}.13`, sshd: true },
        { name: 'peer', ipv4: `${NET}.20` },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-native-'));
    mkdirSync(join(project, 'inventory'));
    writeFileSync(
      join(project, 'inventory/inventory.yaml'),
      `defaults:
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28, 198.51.100.0/24]
trust: none
preserve: [default, MYTOOL]
roles:
  webs: { public: true, hosts: { web: ${NET}.10 } }
  calms: { public: true, hosts: { calm: ${NET}.11 } }
  lockies: { hosts: { locky: ${NET}.12 } }
  guards: { hosts: { guard: ${NET}.13 } }
`,
    );
    const rendered = await runFwgen(project, ['render']);
    expect(rendered.code, rendered.stderr).toBe(0);
    await nft(
      'web',
      'table inet filter {\n chain input {\n type filter hook input priority 0; policy accept;\n tcp dport 80 drop\n }\n}\n',
    );
    await nft(
      'calm',
      'table inet open {\n chain input {\n type filter hook input priority 0; policy accept;\n accept\n }\n}\n',
    );
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  it('doctor lists native base chains and fails where one drops what fwgen accepts; one that accepts all is ok', async () => {
    const r = await runFwgen(project, ['doctor', '--host', 'web', '--host', 'calm', '--json']);
    expect(r.code).toBe(1);
    const checks = parseJson(
      r.stdout,
      [] as { host: string; name: string; level: string; detail: string; fix?: string }[],
    );
    const of = (host: string) => checks.find((c) => c.host === host && c.name === 'native nftables');
    expect(of('web')).toMatchObject({
      level: 'fail',
      detail: expect.stringMatching(
        /^inet filter input \(hook input, priority 0, policy accept\) drops tcp\/80 from any, which fwgen accepts \(tcp dport 80 drop\)/,
      ),
      fix: expect.stringContaining('nft delete table inet filter'),
    });
    expect(of('calm')).toMatchObject({ level: 'ok', detail: expect.stringContaining('none drops what fwgen accepts') });
  });

  it('ship and status warn about the native chain, and stay about fwgen for in-sync', async () => {
    const r = await fwgen('ship', '--role', 'webs,calms', '--timeout', '6');
    expect(r.code, r.stderr).toBe(0);
    const web = r.rows.find((x) => x.host === 'web')!;
    expect(web.outcome).toBe('applied');
    expect(web.native).toEqual([
      'native nftables inet filter input (hook input, priority 0, policy accept) drops what fwgen accepts (tcp/80 from any, tcp/80 from any (IPv6)): tcp dport 80 drop',
    ]);
    expect(web.reason).toContain('warning: native nftables inet filter input');
    expect(r.rows.find((x) => x.host === 'calm')!.native).toEqual([]);
    // The kernel agrees: fwgen opens tcp/80, the native chain drops it.
    expect(await lab.probe('peer', `${NET}.11`, 80)).toBe('open');
    expect(await lab.probe('peer', `${NET}.10`, 80, { timeoutMs: 1500 })).toBe('timeout');
    const st = await runFwgen(project, ['status', '--role', 'webs,calms', '--json']);
    const rows = parseJson(st.stdout, [] as { host: string; state: string; native?: string[] }[]);
    expect(rows.map((x) => [x.host, x.state, x.native?.length ?? 0])).toEqual([
      ['calm', 'in-sync', 0],
      ['web', 'in-sync', 1],
    ]);
  });

  it('refuses, before any change, a host whose preserved chain would reject SSH once the leftover ACCEPT ahead of it is gone', async () => {
    await lab.execOk('locky', ['iptables-restore'], {
      input: `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:MYTOOL - [0:0]\n-A INPUT -s ${lab.controller!.ipv4}/32 -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -j MYTOOL\n-A MYTOOL -p tcp -m tcp --dport 22 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n`,
    });
    const before = await saved('locky');
    const r = await fwgen('ship', '--host', 'locky', '--timeout', '4');
    expect(r.code, r.stderr).toBe(2);
    expect(r.rows[0]).toMatchObject({
      outcome: 'failed',
      lockout: {
        table: 'filter',
        chain: 'INPUT',
        rule: '-A MYTOOL -p tcp -m tcp --dport 22 -j REJECT --reject-with icmp-port-unreachable',
        refused: true,
      },
    });
    expect(r.rows[0].reason).toMatch(
      /^refused: the live rules after this change would not admit SSH from .* nothing changed/,
    );
    expect(await saved('locky')).toEqual(before);
    // --force-lockout-risk ships anyway; the new connection is rejected, and the dead-man switch undoes it.
    const forced = await fwgen('ship', '--host', 'locky', '--timeout', '4', '--force-lockout-risk');
    expect(forced.rows[0]).toMatchObject({ outcome: 'rolled-back', lockout: { refused: false } });
    expect(await saved('locky')).toEqual(before);
  }, 90_000);

  it('refuses a host whose native nftables input chain drops SSH from where the host sees it come from', async () => {
    await nft(
      'guard',
      'table inet guard {\n chain input {\n type filter hook input priority 0; policy accept;\n ip saddr 198.51.100.0/24 tcp dport 22 drop\n }\n}\n',
    );
    const r = await fwgen('ship', '--host', 'guard', '--timeout', '4', '--from', '198.51.100.7');
    expect(r.code, r.stderr).toBe(2);
    expect(r.rows[0]).toMatchObject({
      outcome: 'failed',
      lockout: {
        table: 'nftables',
        chain: 'inet guard input (hook input, priority 0, policy accept)',
        rule: 'ip saddr 198.51.100.0/24 tcp dport 22 drop',
        refused: true,
      },
    });
    expect(await lab.execOk('guard', ['iptables-save', '-t', 'filter'])).not.toContain('FWGEN');
  });
});
