import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/audit/audit-log.js';
import type { Inventory } from '../src/inventory/model.js';
import { checkLockout } from '../src/lockout/check-hosts.js';
import type { Reach } from '../src/remote/reach.js';
import type { ShipJob } from '../src/ship/jobs.js';
import { lastShipBackups } from '../src/ship/rollback-plan.js';
import { planStages } from '../src/ship/rollout.js';
import { haltAfter, haltedFleet, runShip, type RunEvent, type RunPlan, type StageCheck } from '../src/ship/run-ship.js';
import { effects, fake, host, job, ok, settings, type FakeHost } from './support/fake-hosts.js';

const roleJob = (name: string, role: string): ShipJob => ({ ...job(name), host: { ...host(name), role } });

function plan(jobs: ShipJob[], over: Partial<RunPlan> = {}): RunPlan {
  return {
    action: 'ship',
    stages: [{ name: 'all', jobs }],
    staged: false,
    maxFailures: 0,
    concurrency: 4,
    settings,
    origin: { who: 'me@here', inventory: 'inventory/inventory.yaml', commit: 'abc' },
    ...over,
  };
}

/** Runs a plan against scripted hosts; `check` answers the post-stage check per host name. */
async function run(p: RunPlan, hosts: Record<string, FakeHost>, check: Record<string, StageCheck> = {}) {
  const audit: AuditEntry[] = [];
  const events: RunEvent[] = [];
  const checked: string[] = [];
  const report = await runShip(p, {
    fx: effects(hosts),
    check: async (j) => (checked.push(j.host.name), check[j.host.name] ?? { inSync: true }),
    audit: (e) => audit.push(e),
    progress: (e) => events.push(e),
  });
  return { report, audit, events, checked };
}

const failing = () => fake({ apply: { code: 13, stdout: '', stderr: 'fwgen: iptables-restore failed\n' } });

describe('runShip (fake transport)', () => {
  it('ships every host, records each as it finishes and the run at the end', async () => {
    const hosts = { a: fake(), b: fake() };
    const { report, audit, events } = await run(plan([job('a'), job('b')]), hosts);
    expect(report.succeeded).toBe(true);
    expect(report.results.map((r) => [r.host, r.outcome, r.stage])).toEqual([
      ['a', 'applied', 'all'],
      ['b', 'applied', 'all'],
    ]);
    expect(audit.map((e) => e.action)).toEqual(['host', 'host', 'ship']);
    expect(audit.at(-1)).toMatchObject({ run: 'run1', who: 'me@here', commit: 'abc', stages: undefined });
    expect(events[0]).toMatchObject({ kind: 'start', total: 2, concurrency: 4, dryRun: false });
    expect(events.filter((e) => e.kind === 'host')).toHaveLength(2);
  });

  it('a dry run writes nothing to the audit log', async () => {
    const hosts = { a: fake() };
    const { report, audit } = await run(plan([job('a')], { settings: { ...settings, dryRun: true } }), hosts);
    expect(report.results[0].outcome).toBe('would-apply');
    expect(audit).toEqual([]);
  });

  it('one failed host fails the run but not the others', async () => {
    const hosts = { a: fake(), b: failing() };
    const { report } = await run(plan([job('a'), job('b')]), hosts);
    expect(report.succeeded).toBe(false);
    expect(Object.fromEntries(report.results.map((r) => [r.host, r.outcome]))).toEqual({
      a: 'applied',
      b: 'rolled-back',
    });
  });

  describe('staged rollouts', () => {
    const jobs = [roleJob('w1', 'web'), roleJob('w2', 'web'), roleJob('d1', 'db'), roleJob('d2', 'db')];
    const staged = (maxFailures = 0): RunPlan =>
      plan(jobs, { stages: planStages(jobs, 1, [50, 100]), staged: true, maxFailures });

    it('stages go in order, each host checked after its stage', async () => {
      const hosts = { w1: fake(), w2: fake(), d1: fake(), d2: fake() };
      const { report, checked, audit, events } = await run(staged(), hosts);
      expect(report.succeeded).toBe(true);
      const p = staged();
      expect(report.results.map((r) => r.stage)).toEqual(p.stages.flatMap((st) => st.jobs.map(() => st.name)));
      expect(p.stages.map((st) => st.jobs.length)).toEqual([1, 1, 2]);
      expect(checked).toHaveLength(4);
      expect(events.filter((e) => e.kind === 'stage')).toHaveLength(3);
      expect(audit.at(-1)?.stages).toEqual(p.stages.map((st) => st.name));
    });

    it('halts after a stage with more failures than allowed: later stages are untouched', async () => {
      const p = staged();
      const canary = p.stages[0].jobs[0].host.name;
      const hosts: Record<string, FakeHost> = { w1: fake(), w2: fake(), d1: fake(), d2: fake(), [canary]: failing() };
      const { report, audit } = await run(p, hosts);
      expect(report.succeeded).toBe(false);
      expect(report.halted).toMatchObject({ stage: 'canary', failures: 1 });
      expect(report.halted?.untouched).toHaveLength(3);
      for (const name of report.halted!.untouched) expect(hosts[name].connects).toBe(0);
      expect(audit.map((e) => e.action)).toEqual(['host', 'ship', 'halt']);
      expect(haltedFleet(report)).toEqual({
        running: [],
        suspect: [],
        notRunning: [canary, ...report.halted!.untouched],
      });
    });

    it('--max-failures lets a stage fail that many hosts and go on', async () => {
      const p = staged(1);
      const canary = p.stages[0].jobs[0].host.name;
      const hosts: Record<string, FakeHost> = { w1: fake(), w2: fake(), d1: fake(), d2: fake(), [canary]: failing() };
      const { report } = await run(p, hosts);
      expect(report.halted).toBeUndefined();
      expect(report.results).toHaveLength(4);
      expect(report.succeeded).toBe(false);
    });

    it('a host that applied but fails its check after the stage counts as failed, and is suspect when halted', async () => {
      const p = staged();
      const canary = p.stages[0].jobs[0].host.name;
      const hosts = { w1: fake(), w2: fake(), d1: fake(), d2: fake() };
      const { report, events } = await run(p, hosts, { [canary]: { inSync: false, problem: 'drifted' } });
      expect(report.results[0]).toMatchObject({ outcome: 'failed', reason: 'check after the stage: drifted' });
      expect(events.some((e) => e.kind === 'check-failed')).toBe(true);
      expect(haltedFleet(report).suspect).toEqual([canary]);
    });

    it("what the host's status said after the stage is printed with its control characters escaped", async () => {
      const p = staged(3);
      const canary = p.stages[0].jobs[0].host.name;
      const hosts = { w1: fake(), w2: fake(), d1: fake(), d2: fake() };
      const { report } = await run(p, hosts, { [canary]: { inSync: false, problem: 'drifted (\x1b[2Kall good)' } });
      expect(report.results[0].reason).toBe('check after the stage: drifted (\\x1b[2Kall good)');
    });

    it('haltAfter is pure: never after the last stage, never when not staged', () => {
      const p = staged();
      const bad = [{ host: 'x', role: 'web', outcome: 'failed' as const, reason: '', ms: 0 }];
      expect(haltAfter(p, 0, bad)?.stage).toBe('canary');
      expect(haltAfter(p, p.stages.length - 1, bad)).toBeUndefined();
      expect(haltAfter({ ...p, staged: false }, 0, bad)).toBeUndefined();
      expect(haltAfter({ ...p, maxFailures: 1 }, 0, bad)).toBeUndefined();
    });
  });

  it('a rollback job reads its backup and uploads the backup files the host sent', async () => {
    const section = (t?: string) => (t === undefined ? '-1\n' : `${Buffer.byteLength(t)}\n${t}`);
    const backup = '*filter\n:FWGEN-INPUT - [0:0]\nCOMMIT\n';
    const read = ok(
      `-1\n${section('*filter\nCOMMIT\n')}${section('')}${section(backup)}status=read backups=1 armed=0 locked=0 fp4=a fp6=-\n`,
    );
    const hosts = { a: fake({ read }) };
    const j = { ...job('a'), kind: 'rollback' as const, to: '20261121T000000Z', ipv6: false };
    const { report } = await run({ ...plan([]), action: 'rollback', stages: [{ name: 'all', jobs: [j] }] }, hosts);
    expect(report.results[0].outcome).toBe('applied');
    expect(hosts.a.stdin[1]!.toString('utf8')).toContain(':FWGEN-INPUT - [0:0]');
  });
});

describe('rollback --wave last, from the audit log', () => {
  const entry = (backup: string): AuditEntry => ({
    time: 't',
    action: 'ship',
    run: 'r1',
    who: 'me',
    inventory: 'i',
    commit: null,
    hosts: [{ host: 'a', role: 'web', outcome: 'applied', reason: '', backup }],
  });
  it('takes the backup each host got', () => {
    expect(lastShipBackups([entry('20261121T000000Z')], 'log').backups.get('a')).toBe('20261121T000000Z');
  });
  it('refuses a backup id that is not a timestamp (an edited log never reaches a host)', () => {
    expect(() => lastShipBackups([entry('$(reboot)')], 'log')).toThrow(/backup of host "a" is not a backup timestamp/);
  });
});

describe('the lockout verdict, as a value', () => {
  const inv = { hosts: [], hasIpv6: false } as unknown as Inventory;
  const denyAll = Buffer.from('*filter\n:INPUT DROP [0:0]\nCOMMIT\n');
  const reach = (jumps: Reach['jumps']): Reach =>
    ({ target: { host: '198.18.0.1', port: 22 }, jumps }) as unknown as Reach;

  it('names every host that would lock this machine out, with a hint', async () => {
    const sshOnly = Buffer.from('*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n');
    const subjects = [
      { ...job('a'), v4: denyAll },
      { ...roleJob('b', 'db'), v4: sshOnly },
    ];
    const reaches = new Map([
      ['a', reach([])],
      ['b', reach([])],
    ]);
    const v = await checkLockout(subjects, inv, reaches, '198.51.100.7');
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.problems).toHaveLength(1);
    expect(v.problems.join('\n')).toContain(
      'a: the new rules would not admit SSH from 198.51.100.7 (--from) to port 22',
    );
    expect(v.hint).toContain('--from');
  });

  it('refuses when the address behind a jump host cannot be determined (never skipped silently)', async () => {
    const reaches = new Map([
      ['a', reach([{ name: 'bastion', host: 'no-such-host.invalid', port: 22, user: 'root' }] as never)],
    ]);
    const v = await checkLockout([{ ...job('a'), v4: denyAll }], inv, reaches);
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.problems[0]).toContain('a: cannot tell which address the host sees SSH come from');
    expect(v.hint).toContain('--from ADDR or ssh.source');
  });
});
