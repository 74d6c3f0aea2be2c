/**
 * The pull agent computes the change to the live rules on the host (remote/plan.sh, POSIX awk) where
 * ship computes it on the controller (src/model/transaction.ts). Both must be the same transaction:
 * for random live rulesets (fwgen's chains and hooks, other tools' hooks, leftovers, quoted comments,
 * extra tables) and random wanted ones, the awk change and undo are byte for byte those of
 * changeScript and undoScript; and for the recorded iptables-save texts of Docker and fail2ban hosts.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PRESERVE } from '../src/inventory/model.js';
import { emitText } from '../src/model/emit.js';
import { preserveMatcher } from '../src/model/ownership.js';
import { parseRuleset } from '../src/model/parse.js';
import type { ChainDecl, Rule, Ruleset, Table } from '../src/model/ruleset.js';
import { changeScript, planChange, undoScript } from '../src/model/transaction.js';
import { remoteDir } from '../src/remote/scripts.js';

const dir = mkdtempSync(join(tmpdir(), 'fwgen-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Hosts without Debian's mawk (Alpine, embedded) have BusyBox awk: the planner runs under both.
const busybox = join(dir, 'busybox');
mkdirSync(busybox);
symlinkSync('/bin/busybox', join(busybox, 'awk'));
let awkPath = '';

function awkPlan(
  live: string,
  want: string,
  preserve: readonly string[],
): { change: string; undo: string; tables: number } {
  const [l, w, c, u] = ['live', 'want', 'change', 'undo'].map((n) => join(dir, n));
  writeFileSync(l, live);
  writeFileSync(w, want);
  const out = execFileSync(
    'sh',
    ['-c', `. ${remoteDir}/plan.sh; plan_change "$@"`, 'plan', l, w, preserve.join(' '), c, u],
    { encoding: 'utf8', env: { ...process.env, PATH: `${awkPath}${process.env.PATH}` } },
  );
  return {
    change: readFileSync(c, 'utf8'),
    undo: readFileSync(u, 'utf8'),
    tables: Number(/tables=(\d+)/.exec(out)![1]),
  };
}

function tsPlan(live: string, want: string, preserve: readonly string[]) {
  const c = planChange(parseRuleset(live).ruleset, parseRuleset(want).ruleset, preserveMatcher(preserve));
  return { change: changeScript(c), undo: undoScript(c), tables: c.tables.length };
}

const rule = (chain: string, ...args: string[]): Rule => ({ chain, args });
const cmt = (text: string): string[] => ['-m', 'comment', '--comment', text];

/** Rules a built-in chain may hold on a host: fwgen's hooks, other tools' hooks, leftovers. */
const builtinRule = (chain: string): fc.Arbitrary<Rule> =>
  fc.constantFrom(
    rule(chain, ...cmt('fwgen hook'), '-j', `FWGEN-${chain}`),
    rule(chain, ...cmt('fwgen agent pinned'), '-j', 'FWGEN-AGENT'),
    rule(chain, '-j', 'f2b-sshd'),
    rule(chain, '-p', 'tcp', '-m', 'multiport', '--dports', '22', '-j', 'f2b-sshd'),
    rule(chain, '-j', 'DOCKER-USER'),
    rule(chain, '-j', 'MYCHAIN'),
    rule(chain, '-p', 'tcp', '-m', 'tcp', '--dport', '22', '-j', 'ACCEPT'),
    rule(chain, '-s', '192.0.2.7/32', ...cmt('fwgen management (old fwgen)'), '-j', 'ACCEPT'),
    rule(chain, ...cmt('-j FWGEN-INPUT is only a comment'), '-j', 'ACCEPT'),
    rule(chain, ...cmt('fwgenius'), '-j', 'DROP'),
    rule(chain),
  );

const chainRule = (chain: string): fc.Arbitrary<Rule> =>
  fc.oneof(
    fc
      .integer({ min: 1, max: 6 })
      .map((n) => rule(chain, '-s', `198.51.100.${n}/32`, ...cmt(`fwgen fleet h${n}`), '-j', 'ACCEPT')),
    fc.constantFrom(
      rule(chain, ...cmt('fwgen default reject'), '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable'),
      rule(
        chain,
        '-m',
        'limit',
        '--limit',
        '5/min',
        ...cmt('fwgen log denied'),
        '-j',
        'LOG',
        '--log-prefix',
        'fwgen denied: ',
      ),
      rule(chain, '-j', 'FWGEN-AGENT'),
    ),
  );

const FWGEN_CHAINS = ['FWGEN-AGENT', 'FWGEN-FORWARD', 'FWGEN-INPUT', 'FWGEN-OUTPUT', 'FWGEN-OLD'];

/** A filter table (and sometimes nat) as iptables-save prints one. */
const table = (name: 'filter' | 'nat'): fc.Arbitrary<Table> => {
  const builtin = name === 'filter' ? ['INPUT', 'FORWARD', 'OUTPUT'] : ['PREROUTING', 'POSTROUTING'];
  return fc
    .record({
      own: fc.subarray(FWGEN_CHAINS),
      other: fc.subarray(['f2b-sshd', 'DOCKER-USER', 'MYCHAIN']),
      builtinRules: fc.tuple(...builtin.map((c) => fc.array(builtinRule(c), { maxLength: 4 }))),
      ownRules: fc.tuple(...FWGEN_CHAINS.map((c) => fc.array(chainRule(c), { maxLength: 4 }))),
      policy: fc.constantFrom('ACCEPT', 'DROP'),
    })
    .map(({ own, other, builtinRules, ownRules, policy }) => {
      const chains: ChainDecl[] = [
        ...builtin.map((c) => ({ name: c, policy })),
        ...[...own, ...other].sort().map((c) => ({ name: c, policy: '-' })),
      ];
      const rules = [
        ...builtinRules.flat(),
        ...FWGEN_CHAINS.flatMap((c, i) => (own.includes(c) ? ownRules[i] : [])),
        ...(other.includes('f2b-sshd') ? [rule('f2b-sshd', '-j', 'RETURN')] : []),
      ];
      return { name, chains, rules };
    });
};

const ruleset: fc.Arbitrary<Ruleset> = fc
  .record({ filter: table('filter'), nat: fc.option(table('nat'), { nil: undefined }) })
  .map(({ filter, nat }) => ({ tables: nat ? [filter, nat] : [filter] }));

describe.each([
  ['mawk', ''],
  ['busybox awk', `${busybox}:`],
])('remote/plan.sh under %s against src/model/transaction.ts', (_, path) => {
  beforeAll(() => {
    awkPath = path;
    expect(
      execFileSync('sh', ['-c', 'readlink -f "$(command -v awk)"'], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${path}${process.env.PATH}` },
      }),
    ).toMatch(path ? /busybox/ : /mawk/);
  });

  it('computes the same change and undo for random live and wanted rulesets', () => {
    fc.assert(
      fc.property(ruleset, ruleset, fc.constantFrom(DEFAULT_PRESERVE, ['f2b-*'], ['MY?HAIN', 'DOCKER*']), (l, w, p) => {
        const live = emitText(l, ['# Generated by iptables-save v1.8.9 on Sat Dec  6 20:00:00 2026']);
        const want = emitText(w, ['# Generated by fwgen']);
        expect(awkPlan(live, want, p)).toEqual(tsPlan(live, want, p));
      }),
      { numRuns: 150 },
    );
  });

  it('finds nothing to do when the live rules are the wanted ones, other tools aside', () => {
    fc.assert(
      fc.property(ruleset, (w) => {
        const want = emitText(w);
        // What the host runs after the change: apply it to the wanted file itself.
        const again = awkPlan(want, want, DEFAULT_PRESERVE);
        expect(again).toEqual(tsPlan(want, want, DEFAULT_PRESERVE));
      }),
      { numRuns: 40 },
    );
  });

  it('matches on recorded Docker and fail2ban hosts, to and from the example roles', () => {
    const fixtures = readdirSync('test/fixtures/iptables-save').map((f) => join('test/fixtures/iptables-save', f));
    const roles = ['web', 'db'].map((r) => `rendered/${r}/iptables.up.rules`);
    let changes = 0;
    for (const live of [...fixtures, ...roles])
      for (const want of roles) {
        const [l, w] = [readFileSync(live, 'utf8'), readFileSync(want, 'utf8')];
        const awk = awkPlan(l, w, DEFAULT_PRESERVE);
        expect(awk, `${live} -> ${want}`).toEqual(tsPlan(l, w, DEFAULT_PRESERVE));
        changes += awk.tables;
      }
    expect(changes).toBeGreaterThan(4);
    expect(awkPlan(readFileSync(roles[0], 'utf8'), readFileSync(roles[0], 'utf8'), DEFAULT_PRESERVE).tables).toBe(0);
  });
});
