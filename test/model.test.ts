import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderProject } from '../src/cli/project.js';
import { DEFAULT_PRESERVE } from '../src/inventory/model.js';
import { emitRule, emitText, quoteWord } from '../src/model/emit.js';
import { ownerOf, preserveMatcher } from '../src/model/ownership.js';
import { parseRule, parseRuleset, splitWords } from '../src/model/parse.js';
import { rulesOf, type Ruleset } from '../src/model/ruleset.js';
import { describeTakeover, takeoverLine } from '../src/model/takeover.js';
import { changeScript, isEmptyChange, planChange, removedLeftovers, undoScript } from '../src/model/transaction.js';
import { renderedText } from '../src/render/render-role.js';

const PRESERVE = preserveMatcher(DEFAULT_PRESERVE);

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** The model without shared blocks, for comparing a built ruleset with a parsed one. */
const flat = (rs: Ruleset) =>
  rs.tables.map((t) => ({
    name: t.name,
    chains: t.chains.map((c) => ({ name: c.name, policy: c.policy })),
    rules: rulesOf(t).map((r) => ({ chain: r.chain, args: r.args })),
  }));

const golden = filesUnder('test/golden').filter((f) => f.endsWith('.rules'));
const captured = filesUnder('test/fixtures/iptables-save').filter((f) => f.endsWith('.txt'));

describe('parser and emitter', () => {
  it.each(golden)('emit(parse(text)) == text for %s', (file) => {
    const text = readFileSync(file, 'utf8');
    const { ruleset, problems } = parseRuleset(text);
    expect(problems).toEqual([]);
    expect(emitText(ruleset)).toBe(text);
  });

  it.each(captured)('emit(parse(text)) == text for real iptables-save output: %s', (file) => {
    const text = readFileSync(file, 'utf8');
    const { ruleset, problems } = parseRuleset(text);
    expect(problems).toEqual([]);
    expect(ruleset.tables.length).toBeGreaterThan(0);
    expect(emitText(ruleset)).toBe(text);
  });

  it('parse(emit(model)) == model for every rendered ruleset of the example', () => {
    const project = renderProject({ inventory: 'inventory/inventory.yaml', out: 'rendered' });
    expect(project.files.length).toBeGreaterThan(0);
    for (const f of project.files) {
      const text = renderedText(f);
      const parsed = parseRuleset(text).ruleset;
      expect(emitText(parsed)).toBe(text);
      expect(flat(parseRuleset(emitText(parsed)).ruleset)).toEqual(flat(parsed));
    }
  });

  it('quotes as iptables-save does: string values unless plain, any word with spaces or quotes', () => {
    expect(quoteWord('fwgen-x', true)).toBe('fwgen-x');
    expect(quoteWord('fwgen x', true)).toBe('"fwgen x"');
    expect(quoteWord('a"b', true)).toBe('"a\\"b"');
    expect(quoteWord('198.51.100.1/32', false)).toBe('198.51.100.1/32');
    expect(quoteWord('fwgen:', true)).toBe('"fwgen:"');
    const rule = {
      chain: 'FWGEN-INPUT',
      args: ['-m', 'comment', '--comment', 'odd " quote', '-j', 'LOG', '--log-prefix', 'x: '],
    };
    expect(emitRule(rule)).toBe('-A FWGEN-INPUT -m comment --comment "odd \\" quote" -j LOG --log-prefix "x: "');
    expect(parseRule(emitRule(rule))).toEqual(rule);
  });

  it('splits words inside quotes, keeps counters, and reports lines it cannot read', () => {
    expect(splitWords('-A X -m comment --comment "a -j ACCEPT" -j DROP')).toEqual([
      '-A',
      'X',
      '-m',
      'comment',
      '--comment',
      'a -j ACCEPT',
      '-j',
      'DROP',
    ]);
    expect(parseRule('[12:345] -A INPUT -j ACCEPT')).toEqual({
      chain: 'INPUT',
      args: ['-j', 'ACCEPT'],
      counters: '[12:345]',
    });
    const { problems } = parseRuleset('*filter\n:INPUT ACCEPT [0:0]\n-X FOO\nCOMMIT\n-A INPUT -j ACCEPT\n*nat\n');
    expect(problems.map((p) => p.line)).toEqual([3, 5, 6]);
  });
});

describe('ownership', () => {
  const rule = (args: string[]) => ({ chain: 'INPUT', args });
  it("tells fwgen's hooks and legacy rules, preserved hooks, and leftovers apart", () => {
    expect(ownerOf(rule(['-j', 'FWGEN-INPUT']), PRESERVE)).toBe('fwgen');
    expect(ownerOf(rule(['-m', 'comment', '--comment', 'fwgen default reject', '-j', 'REJECT']), PRESERVE)).toBe(
      'fwgen',
    );
    expect(ownerOf(rule(['-p', 'tcp', '-j', 'f2b-sshd']), PRESERVE)).toBe('preserved');
    expect(ownerOf(rule(['-g', 'KUBE-FIREWALL']), PRESERVE)).toBe('preserved');
    expect(ownerOf(rule(['-o', 'docker0', '-j', 'DOCKER']), PRESERVE)).toBe('preserved');
    expect(ownerOf(rule(['-o', 'docker0', '-j', 'ACCEPT']), PRESERVE)).toBe('leftover');
    expect(ownerOf(rule(['-m', 'comment', '--comment', 'fwgenerated', '-j', 'ACCEPT']), PRESERVE)).toBe('leftover');
    expect(ownerOf(rule(['-j', 'MYCHAIN']), preserveMatcher(['MY*']))).toBe('preserved');
  });
});

describe('planChange: fwgen changes only what it owns', () => {
  const want = readFileSync('test/golden/focused/app/iptables.up.rules', 'utf8');
  const wantRs = parseRuleset(want).ruleset;
  const live = (lines: string[]) =>
    parseRuleset(
      ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ...lines, 'COMMIT', ''].join(
        '\n',
      ),
    ).ruleset;
  const body = want.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':FWGEN'));

  it("is empty when the host runs the file, other tools' hooks ahead of fwgen's", () => {
    const hooks = [':f2b-sshd - [0:0]', '-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd'];
    expect(
      isEmptyChange(
        planChange(
          live([
            ...hooks.slice(0, 1),
            ...body.filter((l) => l.startsWith(':')),
            hooks[1],
            ...body.filter((l) => l.startsWith('-A')),
          ]),
          wantRs,
          PRESERVE,
        ),
      ),
    ).toBe(true);
  });

  it('on a fresh host: creates the chains, appends the hooks; the undo removes both', () => {
    const c = planChange(live([]), wantRs, PRESERVE);
    const script = changeScript(c);
    expect(script).toContain(':FWGEN-INPUT - [0:0]');
    expect(script).toContain('-A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT');
    expect(script).not.toMatch(/^-D /m);
    const undo = undoScript(c, PRESERVE);
    expect(undo).toContain('#@del 1 -A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT\n-D INPUT 1');
    expect(undo).toContain('-X FWGEN-INPUT');
  });

  it('removes hand-written leftovers and old fwgen rules from the built-in chains, keeps preserved hooks', () => {
    const c = planChange(
      live([
        ':DOCKER-USER - [0:0]',
        '-A INPUT -s 192.0.2.7/32 -j ACCEPT',
        '-A INPUT -m comment --comment "fwgen default reject" -j REJECT',
        '-A FORWARD -j DOCKER-USER',
      ]),
      wantRs,
      PRESERVE,
    );
    const script = changeScript(c);
    // By position, last first, each led by the rule it must be (the host finds it again by that).
    expect(script).toContain(
      '#@del 1 -A INPUT -m comment --comment "fwgen default reject" -j REJECT\n-D INPUT 2\n' +
        '#@del 1 -A INPUT -s 192.0.2.7/32 -j ACCEPT\n-D INPUT 1\n',
    );
    expect(script).not.toMatch(/#@del \d+ -A FORWARD -j DOCKER-USER/);
    // The undo puts the removed rules back where they were.
    const undo = undoScript(c, PRESERVE);
    expect(undo).toMatch(/^-A INPUT -s 192.0.2.7\/32 -j ACCEPT\n/m);
    expect(undo).toContain(
      '#@ins after 1 -A INPUT -s 192.0.2.7/32 -j ACCEPT\n-I INPUT 2 -m comment --comment "fwgen default reject" -j REJECT',
    );
  });

  it('moves its hook back to the end when a preserved hook was appended after it', () => {
    const lines = [
      ...body.filter((l) => l.startsWith(':')),
      ':f2b-sshd - [0:0]',
      ...body.filter((l) => l.startsWith('-A')),
      '-A INPUT -j f2b-sshd',
    ];
    const script = changeScript(planChange(live(lines), wantRs, PRESERVE));
    expect(script).toMatch(/#@del 1 -A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT\n-D INPUT 1\n/);
    expect(script).toContain(
      '#@ins after 1 -A INPUT -j f2b-sshd\n-I INPUT 2 -m comment --comment "fwgen hook" -j FWGEN-INPUT',
    );
    expect(script).not.toMatch(/FWGEN-INPUT - \[0:0\]/); // the chain itself is unchanged: not refilled
  });

  it('with forward: leave, does not touch FORWARD but removes its own old FORWARD chain and hook', () => {
    const leave = parseRuleset(readFileSync('test/golden/focused/lb/iptables.up.rules', 'utf8')).ruleset;
    const c = planChange(live([...body, '-A FORWARD -o docker0 -j ACCEPT']), leave, PRESERVE);
    const script = changeScript(c);
    expect(script).toMatch(/#@del 1 -A FORWARD -m comment --comment "fwgen hook" -j FWGEN-FORWARD\n-D FORWARD \d+/);
    expect(script).toContain('-X FWGEN-FORWARD');
    expect(script).not.toContain('docker0');
  });
});

describe('describeTakeover: the tools whose rules a ship removes', () => {
  const want = parseRuleset(readFileSync('test/golden/focused/app/iptables.up.rules', 'utf8')).ruleset;
  const removedFrom = (fixture: string) =>
    removedLeftovers(
      planChange(parseRuleset(readFileSync(`test/fixtures/takeover/${fixture}`, 'utf8')).ruleset, want, PRESERVE),
      PRESERVE,
    );
  it('knows ufw and Shorewall by their chains; anything else is hand-written', () => {
    expect(describeTakeover(removedFrom('ufw.v4'))).toEqual({ from: ['ufw'], removed: 18 });
    expect(describeTakeover(removedFrom('shorewall.v4'))).toEqual({ from: ['Shorewall'], removed: 13 });
    expect(describeTakeover(removedFrom('router.v4'))).toEqual({ from: ['hand-written rules'], removed: 14 });
    expect(describeTakeover([])).toBeUndefined();
    expect(describeTakeover(removedFrom('odd.v4'))).toEqual({ from: ['hand-written rules'], removed: 9 });
    expect(takeoverLine({ from: ['ufw'], removed: 18 }, 'web1', false)).toBe(
      'takes over from ufw: 18 rule(s) removed, kept in the backup; `fwgen rollback --host web1` restores them',
    );
  });

  // The real-world-style corpus: which tool each takeover line names.
  it.each([
    ['apf.v4', ['APF']],
    ['arno.v4', ["Arno's iptables-firewall"]],
    ['centos6.v4', ['system-config-firewall']],
    ['centos7.v4', ['hand-written rules']],
    ['csf.v4', ['csf']],
    ['firehol.v4', ['FireHOL']],
    ['firewalld.v4', ['firewalld']],
    ['fwbuilder.v4', ['Firewall Builder']],
    ['mailcow.v4', ['mailcow']],
    ['openwrt.v4', ['OpenWrt fw3']],
    ['proxmox.v4', ['Proxmox VE']],
    ['sshguard.v4', ['hand-written rules']],
    ['webflood.v4', ['hand-written rules']],
  ])('%s: takes over from %j', (file, from) => {
    expect(describeTakeover(removedFrom(`corpus/${file}`))?.from).toEqual(from);
  });
});
