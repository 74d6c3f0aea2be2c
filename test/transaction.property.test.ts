/**
 * The change planner, over random live rulesets (other tools' hooks, leftovers, fwgen's old rules,
 * in any order, odd rules among them) and random rendered ones: the change gives what fwgen owns as
 * rendered and leaves the rest; its undo gives back the live ruleset exactly; a rollback to an older
 * snapshot gives back what fwgen owned then. Scripts are applied by a model of iptables-restore
 * (test/support/restore-sim.ts), and by remote/txn.sh's resolver after other tools changed the chains.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PRESERVE } from '../src/inventory/model.js';
import { ownerOf, preserveMatcher } from '../src/model/ownership.js';
import { parseRuleset, ruleLine } from '../src/model/parse.js';
import { chainRules, tableOf, type Rule } from '../src/model/ruleset.js';
import { changeScript, isEmptyChange, planChange, planRestore, undoScript } from '../src/model/transaction.js';
import { remoteDir } from '../src/remote/scripts.js';
import { simApply, simLoad, simSave, type SimState } from './support/restore-sim.js';

const PRESERVE = preserveMatcher(DEFAULT_PRESERVE);
const BUILTINS = ['INPUT', 'FORWARD', 'OUTPUT'] as const;
const OTHER_CHAINS = ['f2b-sshd', 'DOCKER-USER', 'KUBE-FIREWALL', 'ufw-before-input', 'MYTOOL'];

const HOOKS = ['-j f2b-sshd', '-p tcp -m multiport --dports 22 -j f2b-sshd', '-j DOCKER-USER', '-j KUBE-FIREWALL'];
const LEFTOVERS = [
  '-s 192.0.2.1/32 -j ACCEPT',
  '-s 192.0.2.2/32 -j ACCEPT',
  '-i lo -j ACCEPT',
  '-p tcp -m tcp --dport 22 -j ACCEPT',
  '-j ufw-before-input',
  '-j MYTOOL',
  '-p tcp -m tcp --dport 22 -m state --state NEW -m recent --update --seconds 45 --hitcount 5 --name DEFAULT --mask 255.255.255.255 --rsource -j DROP',
  '-m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x1a&0x3c@0x0=0x12345678" -j DROP',
  '-m string --string "GET /x" --algo bm --to 65535 -j DROP',
  '-m comment --comment "it\\\'s a \\"quoted\\" one" -j ACCEPT',
  '-j DROP',
];
const OLD_FWGEN = [
  '-m comment --comment "fwgen old rule" -j ACCEPT',
  '-m comment --comment "fwgen default reject" -j REJECT',
];
const hookOf = (chain: string): string => `-m comment --comment "fwgen hook" -j FWGEN-${chain}`;
const FWGEN_BODIES = [
  '-i lo -m comment --comment "fwgen loopback" -j ACCEPT',
  '-s 192.0.2.0/28 -p tcp -m tcp --dport 22 -m comment --comment "fwgen management ssh" -j ACCEPT',
  '-p tcp -m tcp --dport 80 -m comment --comment "fwgen public" -j ACCEPT',
  '-m comment --comment "fwgen default reject" -j REJECT --reject-with icmp-port-unreachable',
];

/** A built-in chain's live rules: hooks of other tools, leftovers, fwgen's hook and old rules, in any order. */
const liveChain = (chain: string) =>
  fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...HOOKS) },
      { weight: 4, arbitrary: fc.constantFrom(...LEFTOVERS) },
      { weight: 1, arbitrary: fc.constantFrom(...OLD_FWGEN) },
      { weight: 2, arbitrary: fc.constant(hookOf(chain)) },
    ),
    { maxLength: 8 },
  );
const fwgenChains = fc.record(
  Object.fromEntries(BUILTINS.map((c) => [c, fc.option(fc.array(fc.constantFrom(...FWGEN_BODIES), { maxLength: 4 }))])),
) as fc.Arbitrary<Record<string, string[] | null>>;

interface Spec {
  builtins: Record<string, string[]>;
  own: Record<string, string[] | null>;
  policy: string;
}

const liveSpec: fc.Arbitrary<Spec> = fc.record({
  builtins: fc.record(Object.fromEntries(BUILTINS.map((c) => [c, liveChain(c)]))) as fc.Arbitrary<
    Record<string, string[]>
  >,
  own: fwgenChains,
  policy: fc.constantFrom('ACCEPT', 'DROP'),
});

/** A ruleset's text; every chain a rule jumps to is declared. */
function save(spec: Spec): string {
  // A hook's chain exists (the kernel refuses a jump to a missing chain).
  const own = BUILTINS.filter((c) => spec.own[c] !== null || spec.builtins[c].includes(hookOf(c)));
  return [
    '*filter',
    ...BUILTINS.map((c) => `:${c} ${c === 'INPUT' ? spec.policy : 'ACCEPT'} [0:0]`),
    ...BUILTINS.map((c) => `:FWGEN-${c} - [0:0]`),
    ...OTHER_CHAINS.map((c) => `:${c} - [0:0]`),
    ...BUILTINS.flatMap((c) => spec.builtins[c].map((r) => `-A ${c} ${r}`)),
    ...own.flatMap((c) => (spec.own[c] ?? []).map((r) => `-A FWGEN-${c} ${r}`)),
    '-A f2b-sshd -s 203.0.113.9/32 -j REJECT',
    'COMMIT',
    '',
  ]
    .filter((l) => !/^:FWGEN-/.test(l) || own.some((c) => l.startsWith(`:FWGEN-${c} `)))
    .join('\n');
}

/** A rendered file: fwgen's chains and one hook each (FORWARD may be left alone). */
const wantSpec = fc.record({
  own: fc.record({
    INPUT: fc.array(fc.constantFrom(...FWGEN_BODIES), { minLength: 1, maxLength: 4 }),
    FORWARD: fc.option(fc.array(fc.constantFrom(...FWGEN_BODIES), { minLength: 1, maxLength: 2 })),
    OUTPUT: fc.array(fc.constantFrom(...FWGEN_BODIES), { minLength: 1, maxLength: 2 }),
  }),
});

function rendered(w: { own: { INPUT: string[]; FORWARD: string[] | null; OUTPUT: string[] } }): string {
  const own = BUILTINS.filter((c) => w.own[c] !== null);
  return [
    '*filter',
    ...own.map((c) => `:FWGEN-${c} - [0:0]`),
    ...own.map((c) => `-A ${c} ${hookOf(c)}`),
    ...own.flatMap((c) => w.own[c]!.map((r) => `-A FWGEN-${c} ${r}`)),
    'COMMIT',
    '',
  ].join('\n');
}

const isPreserved = (r: Rule): boolean => ownerOf(r, PRESERVE) === 'preserved';
const key = (r: Rule): string => `${r.chain} ${r.args.join(' ')}`;
const rulesIn = (s: SimState, c: string): Rule[] => s.get('filter')!.get(c)?.rules ?? [];
const chainOf = (s: SimState, c: string): string[] => rulesIn(s, c).map(key);

/** What a ship must leave, computed here without the planner: fwgen's part as rendered, the rest as it was. */
function expectedAfterShip(liveText: string, wantText: string): SimState {
  const live = parseRuleset(liveText).ruleset;
  const want = parseRuleset(wantText).ruleset;
  const l = tableOf(live, 'filter')!;
  const w = tableOf(want, 'filter')!;
  const lines = [
    '*filter',
    ...l.chains.filter((c) => !c.name.startsWith('FWGEN-')).map((c) => `:${c.name} ${c.policy} [0:0]`),
    ...w.chains.map((c) => `:${c.name} - [0:0]`),
  ];
  for (const c of BUILTINS) {
    const lr = chainRules(l, c);
    const wr = chainRules(w, c);
    const keep = wr.length > 0 ? lr.filter(isPreserved) : lr.filter((r) => ownerOf(r, PRESERVE) !== 'fwgen');
    lines.push(...[...keep, ...wr].map(ruleLine));
  }
  for (const c of l.chains.filter((x) => !BUILTINS.includes(x.name as never) && !x.name.startsWith('FWGEN-')))
    lines.push(...chainRules(l, c.name).map(ruleLine));
  for (const c of w.chains) lines.push(...chainRules(w, c.name).map(ruleLine));
  return simLoad([...lines, 'COMMIT', ''].join('\n'));
}

describe('the change planner over random rulesets', () => {
  it('a ship gives fwgen its rendered part and keeps the rest; its undo gives the live ruleset back exactly', () => {
    fc.assert(
      fc.property(liveSpec, wantSpec, (ls, ws) => {
        const liveText = save(ls);
        const wantText = rendered(ws);
        const live = parseRuleset(liveText).ruleset;
        const c = planChange(live, parseRuleset(wantText).ruleset, PRESERVE);
        const after = simApply(simLoad(live), changeScript(c));
        expect(simSave(after)).toBe(simSave(expectedAfterShip(liveText, wantText)));
        // The next ship finds nothing to do.
        expect(
          isEmptyChange(planChange(parseRuleset(simSave(after)).ruleset, parseRuleset(wantText).ruleset, PRESERVE)),
        ).toBe(true);
        expect(simSave(simApply(after, undoScript(c, PRESERVE)))).toBe(simSave(simLoad(live)));
      }),
      { numRuns: 300 },
    );
  });

  it('a rollback gives back what fwgen owned in the snapshot, keeps the live hooks of other tools; its undo is exact', () => {
    fc.assert(
      fc.property(liveSpec, liveSpec, (ls, ts) => {
        const live = parseRuleset(save(ls)).ruleset;
        const target = parseRuleset(save(ts)).ruleset;
        const c = planRestore(live, target, PRESERVE);
        const after = simApply(simLoad(live), changeScript(c));
        const t = tableOf(target, 'filter')!;
        const l = tableOf(live, 'filter')!;
        for (const chain of BUILTINS) {
          const got = chainOf(after, chain);
          const own = (r: Rule) => ownerOf(r, PRESERVE) === 'fwgen';
          const claimed = chainRules(l, chain).some(own) || chainRules(t, chain).some(own);
          if (!claimed) {
            expect(got).toEqual(chainRules(l, chain).map(key));
            continue;
          }
          const rules = rulesIn(after, chain);
          expect(rules.filter(isPreserved).map(key)).toEqual(chainRules(l, chain).filter(isPreserved).map(key));
          expect(rules.filter((r) => !isPreserved(r)).map(key)).toEqual(
            chainRules(t, chain)
              .filter((r) => !isPreserved(r))
              .map(key),
          );
          // The same hooks of other tools as then: the chain is the snapshot's, exactly.
          if (
            chainRules(t, chain).filter(isPreserved).map(key).join('|') ===
            chainRules(l, chain).filter(isPreserved).map(key).join('|')
          )
            expect(got).toEqual(chainRules(t, chain).map(key));
        }
        for (const chain of BUILTINS)
          expect(chainOf(after, `FWGEN-${chain}`)).toEqual(chainRules(t, `FWGEN-${chain}`).map(key));
        expect(simSave(simApply(after, undoScript(c, PRESERVE)))).toBe(simSave(simLoad(live)));
      }),
      { numRuns: 300 },
    );
  });
});

describe("remote/txn.sh's resolver: positions found again after other tools changed the chains", () => {
  const dir = mkdtempSync(join(tmpdir(), 'fwgen-txn-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const resolve = (liveText: string, script: string): string => {
    writeFileSync(join(dir, 'save'), `${liveText}\n`);
    writeFileSync(join(dir, 'txn'), script);
    const r = spawnSync(
      'sh',
      ['-c', `. "${remoteDir}/txn.sh"; { cat "$1/save"; echo '#@@'; cat "$1/txn"; } | txn_resolve pos`, 'sh', dir],
      {
        encoding: 'utf8',
      },
    );
    if (r.status !== 0) throw new Error(r.stderr);
    return r.stdout;
  };
  /** `racer` inserted at the top of INPUT, as fail2ban inserts its hook. */
  const withRacer = (text: string, racer: string): string =>
    text.replace(/^(-A INPUT |COMMIT)/m, `-A INPUT ${racer}\n$1`);
  const racers = fc.constantFrom('-j KUBE-FIREWALL', '-s 198.51.100.7/32 -j DROP', '-p udp -j f2b-sshd');

  it('unchanged chains: the resolved text does what the planned one does', () => {
    fc.assert(
      fc.property(liveSpec, wantSpec, (ls, ws) => {
        const live = save(ls);
        const script = changeScript(
          planChange(parseRuleset(live).ruleset, parseRuleset(rendered(ws)).ruleset, PRESERVE),
        );
        const resolved = resolve(live, script);
        expect(resolved).not.toMatch(/^#@/m);
        expect(simSave(simApply(simLoad(live), resolved))).toBe(simSave(simApply(simLoad(live), script)));
      }),
      { numRuns: 60 },
    );
  });

  it('a rule another tool inserted at the top since the read stays, and the change and its undo still land exactly', () => {
    fc.assert(
      fc.property(liveSpec, wantSpec, racers, (ls, ws, racer) => {
        const liveText = save(ls);
        fc.pre(!liveText.includes(`-A INPUT ${racer}\n`));
        const live = parseRuleset(liveText).ruleset;
        const wantText = rendered(ws);
        const c = planChange(live, parseRuleset(wantText).ruleset, PRESERVE);
        const raced = simLoad(withRacer(liveText, racer));
        const after = simApply(raced, resolve(simSave(raced), changeScript(c)));
        expect(simSave(after)).toBe(simSave(simLoad(withRacer(simSave(expectedAfterShip(liveText, wantText)), racer))));
        const back = simApply(after, resolve(simSave(after), undoScript(c, PRESERVE)));
        expect(simSave(back)).toBe(simSave(raced));
      }),
      { numRuns: 60 },
    );
  });
});
