// What a ship, rollback or remove reports: the audit lines runShip writes, the `--json` object, the
// summary a person reads, the dry run's per-role blocks, and the progress lines on long waits.
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/audit/audit-log.js';
import { WaitProgress, watchTransport } from '../src/cli/progress.js';
import { formatSummary, reportJson } from '../src/cli/run-output.js';
import { table } from '../src/cli/table.js';
import { runBootHook } from '../src/remote/boot-hook.js';
import type { Session } from '../src/remote/transport.js';
import { summarizeDryRun } from '../src/ship/dry-run-summary.js';
import { bootProblems, runShip, type RunEvent, type RunPlan, type StagedResult } from '../src/ship/run-ship.js';
import type { HostJob, HostResult, RunSettings } from '../src/ship/ship-host.js';
import { effects, fake, FakeTransport, job, settings, type FakeHost } from './support/fake-hosts.js';

const PATHS = { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' };
const persist: RunSettings = { ...settings, persist: { marker: 'm1', run: (s: Session) => runBootHook(s, PATHS) } };

function plan(jobs: HostJob[] = [job('a')], over: Partial<RunPlan> = {}): RunPlan {
  return {
    action: 'ship',
    stages: [{ name: 'all', jobs }],
    staged: false,
    maxFailures: 0,
    concurrency: 4,
    settings: persist,
    origin: { who: 'me@here', inventory: 'inventory/inventory.yaml', commit: 'abc+dirty' },
    ...over,
  };
}

async function run(p: RunPlan, hosts: Record<string, FakeHost>) {
  const audit: AuditEntry[] = [];
  const events: RunEvent[] = [];
  const report = await runShip(p, {
    fx: effects(hosts),
    check: async () => ({ inSync: true }),
    audit: (e) => audit.push(e),
    progress: (e) => events.push(e),
  });
  return { report, audit, events };
}

const unsupported = { code: 21, stdout: 'status=unsupported\n', stderr: 'fwgen: neither ifupdown nor systemd\n' };

describe('runShip and the boot-hook step', () => {
  it("records each host's rules digest and boot status in the deploy log", async () => {
    const { report, audit } = await run(plan([{ ...job('a'), digest: 'd1' }]), { a: fake() });
    expect(report.succeeded).toBe(true);
    expect(audit[0].hosts[0]).toMatchObject({ host: 'a', outcome: 'applied', rules: 'd1', boot: 'installed' });
    expect(audit.at(-1)?.hosts[0]).toMatchObject({ rules: 'd1', boot: 'installed' });
  });

  it('a host that got the rules but will not load them at boot fails the run, not the host', async () => {
    const { report } = await run(plan([job('a'), job('b')]), { a: fake({ boot: unsupported }), b: fake() });
    expect(report.results.map((r) => r.outcome)).toEqual(['applied', 'applied']);
    expect(report.succeeded).toBe(false);
    expect(bootProblems(report.results).map((r) => r.host)).toEqual(['a']);
  });

  it('a rollback records the backup it restored', async () => {
    const section = (t?: string) => (t === undefined ? '-1\n' : `${Buffer.byteLength(t)}\n${t}`);
    const read = {
      code: 0,
      stdout: `-1\n${section('*filter\nCOMMIT\n')}${section('')}${section('*filter\nCOMMIT\n')}status=read backups=1 armed=0 locked=0 fp4=a fp6=-\n`,
      stderr: '',
    };
    const back = { ...job('a'), kind: 'rollback' as const, to: '20261121T000000Z', ipv6: false };
    const { report, audit } = await run(
      plan([], { action: 'rollback', settings: { ...settings, force: true }, stages: [{ name: 'all', jobs: [back] }] }),
      {
        a: fake({ read }),
      },
    );
    expect(report.results[0].reason).toMatch(
      /^restored backup 20261121T000000Z; the rules it replaced were backed up as /,
    );
    expect(audit[0].hosts[0]).toMatchObject({ restored: '20261121T000000Z', rules: undefined });
    expect(reportJson(report, plan([back], { action: 'rollback' })).hosts).toMatchObject([
      { host: 'a', restored: '20261121T000000Z' },
    ]);
  });
});

describe('ship --json', () => {
  it('is one object: run, commit, totals, and per-host rows whose backup, removed rules and boot step are fields', async () => {
    const { report } = await run(plan([job('a'), job('b')]), { a: fake(), b: fake({ boot: unsupported }) });
    const json = reportJson(report, plan());
    expect(json).toMatchObject({
      run: 'run1',
      action: 'ship',
      dryRun: false,
      inventory: 'inventory/inventory.yaml',
      commit: 'abc+dirty',
      who: 'me@here',
      succeeded: false,
      totals: { hosts: 2, applied: 2, unchanged: 0, wouldApply: 0, rolledBack: 0, failed: 0, notLoadedAtBoot: 1 },
      halted: null,
    });
    const [a, b] = json.hosts as Record<string, unknown>[];
    expect(a).toEqual({
      host: 'a',
      role: 'web',
      stage: 'all',
      outcome: 'applied',
      reason: 'first rules file; the live rules were backed up as 20261121T000000Z',
      ms: 0,
      backup: '20261121T000000Z',
      restored: null,
      removed: [],
      boot: expect.objectContaining({ status: 'installed', ok: true }),
      diff: null,
    });
    expect(b.boot).toMatchObject({ status: 'unsupported', ok: false, path: null });
  });
});

describe('the summary a person reads', () => {
  const result = (host: string, over: Partial<StagedResult> = {}): StagedResult => ({
    host,
    role: 'web',
    outcome: 'applied',
    reason: 'ok',
    ms: 1200,
    stage: 'all',
    ...over,
  });

  it('has a header row, a totals line, and the hosts whose rules will not load at boot', () => {
    const report = {
      id: 'r',
      action: 'ship' as const,
      dryRun: false,
      succeeded: false,
      results: [
        result('web1', { boot: { status: 'installed', ok: true, path: '/x', detail: 'boot hook installed: /x' } }),
        result('web2', { boot: { status: 'unsupported', ok: false, path: null, detail: 'not loaded at boot: no' } }),
        result('web3', { outcome: 'unchanged' }),
      ],
    };
    const lines = formatSummary(report, undefined, false).split('\n');
    expect(lines.slice(1, 5)).toEqual([
      'HOST  ROLE  OUTCOME    TIME  BOOT                              REASON',
      'web1  web   applied    1.2s  installed                         ok',
      'web2  web   applied    1.2s  unsupported (not loaded at boot)  ok',
      'web3  web   unchanged  1.2s  -                                 ok',
    ]);
    expect(lines).toContain('3 host(s): 2 applied, 1 unchanged, 0 rolled-back, 0 failed');
    expect(lines).toContain('  web2: not loaded at boot: no');
  });

  it('a dry run: one block per role with its change once, hosts that differ from it apart', () => {
    const change = '--- a\n+++ b\n+-A FWGEN-INPUT -p tcp -m tcp --dport 8080 -j ACCEPT';
    const results: HostResult[] = [
      { host: 'db1', role: 'db', outcome: 'would-apply', reason: 'rules file differs', ms: 0, diff: change },
      { host: 'db2', role: 'db', outcome: 'would-apply', reason: 'rules file differs', ms: 0, diff: change },
      {
        host: 'db3',
        role: 'db',
        outcome: 'would-apply',
        reason: "rules file differs; would remove 1 rule(s) that are neither fwgen's nor another tool's hook",
        ms: 0,
        diff: `${change}\n-D INPUT -s 192.0.2.7/32 -j ACCEPT`,
        removed: ['-A INPUT -s 192.0.2.7/32 -j ACCEPT'],
      },
      { host: 'web1', role: 'web', outcome: 'unchanged', reason: 'fwgen rules and rules file already match', ms: 0 },
      { host: 'web2', role: 'web', outcome: 'failed', reason: 'cannot connect', ms: 0 },
    ];
    const dry = summarizeDryRun(results);
    expect(dry.roles.map((b) => [b.role, b.change?.hosts, b.apart.map((a) => a.host), b.unchanged, b.failed])).toEqual([
      ['db', ['db1', 'db2'], ['db3'], [], []],
      ['web', undefined, [], ['web1'], [{ host: 'web2', reason: 'cannot connect' }]],
    ]);
    const report = {
      id: 'r',
      action: 'ship' as const,
      dryRun: true,
      succeeded: false,
      results: results.map((r) => ({ ...r, stage: 'all' })),
    };
    const text = formatSummary(report, dry, false);
    // The role's change once, however many hosts share it.
    expect(text.split('--dport 8080').length - 1).toBe(1);
    expect(text).toContain('role db:\n  would apply to 2 host(s): db1, db2 (rules file differs)\n');
    expect(text).toContain('  db3 differs from its role: rules file differs; would remove 1 rule(s)');
    expect(text).toContain('would remove: -A INPUT -s 192.0.2.7/32 -j ACCEPT');
    expect(text).toContain("(--verbose prints every host's full change)");
    // --verbose: every host's change in full, under its name.
    const verbose = formatSummary(report, dry, true);
    expect(verbose.split('--dport 8080').length - 1).toBe(3);
    expect(verbose).toContain('== db3 (db)\n');
  });

  it('tables align every column but the last', () => {
    expect(table(['A', 'BB', 'C'], [['xxx', 'y', 'z z']])).toEqual(['A    BB  C', 'xxx  y   z z']);
  });
});

describe('progress on long waits', () => {
  const progress = (enabled = true) => {
    let now = 0;
    const lines: string[] = [];
    const p = new WaitProgress({ write: (l) => lines.push(l), now: () => now, enabled });
    return { p, lines, at: (ms: number) => (now = ms) };
  };

  it('one line at most every 5 s, naming the hosts that waited 3 s or more, and for what', () => {
    const { p, lines, at } = progress();
    p.start('db1', 'the dead-man switch', 32_000);
    p.start('web1', 'connecting');
    at(2000);
    p.tick();
    expect(lines).toEqual([]);
    at(3000);
    p.tick();
    at(4000);
    p.tick();
    expect(lines).toEqual(['... waiting on 2 host(s): db1 (the dead-man switch, 29s left), web1 (connecting, 3s)\n']);
    p.end('web1');
    at(8000);
    p.tick();
    expect(lines.at(-1)).toBe('... waiting on 1 host(s): db1 (the dead-man switch, 24s left)\n');
    p.end('db1');
    at(20_000);
    p.tick();
    expect(lines).toHaveLength(2);
  });

  it('is quiet when disabled (--json, or stderr not a terminal)', () => {
    const { p, lines, at } = progress(false);
    p.start('db1', 'connecting');
    at(60_000);
    p.tick();
    expect(lines).toEqual([]);
    expect(p.line(60_000)).toContain('db1 (connecting, 60s)');
  });

  it('a watched transport reports each connection and command while it is pending', async () => {
    const { p, at } = progress();
    const hosts = { a: fake() };
    const seen: (string | undefined)[] = [];
    const inner = new FakeTransport(hosts);
    const slow = {
      connect: async (t: Parameters<FakeTransport['connect']>[0]) => {
        at(5000);
        seen.push(p.line(5000));
        const s = await inner.connect(t);
        return {
          close: () => s.close(),
          run: async (call: Parameters<Session['run']>[0], stdin?: Buffer) => {
            at(10_000);
            seen.push(p.line(10_000));
            return s.run(call, stdin);
          },
        };
      },
    };
    const watched = watchTransport(slow, p);
    at(0);
    const session = await watched.connect({ name: 'a', ssh: job('a').host.ssh, acceptNew: false, timeoutMs: 1000 });
    at(5000);
    await session.run({ name: 'read', script: ':', args: [] });
    expect(seen).toEqual(['... waiting on 1 host(s): a (connecting, 5s)', '... waiting on 1 host(s): a (reading, 5s)']);
    expect(p.line(20_000)).toBeUndefined();
  });
});
