/**
 * remote/agent-lib.sh, the pure parts of the pull agent, under mawk and BusyBox awk: `parse_manifest`
 * accepts exactly the manifests src/publish/manifest.ts accepts, and reads the same values (random
 * manifests, randomly damaged); `merge_pinned` puts the pinned fragment into a release as iptables-save
 * prints a table, and takes nothing of the release away.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedFragments } from '../src/agent/pinned.js';
import { loadInventory } from '../src/inventory/load-inventory.js';
import { parseRuleset } from '../src/model/parse.js';
import { rulesOf } from '../src/model/ruleset.js';
import { formatManifest, parseManifest, type Manifest } from '../src/publish/manifest.js';
import { remoteDir } from '../src/remote/scripts.js';
import { withoutPinned } from '../src/status/agent-status.js';

const dir = mkdtempSync(join(tmpdir(), 'fwgen-agent-lib-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const busybox = join(dir, 'busybox');
mkdirSync(busybox);
symlinkSync('/bin/busybox', join(busybox, 'awk'));
let awkPath = '';

/** Runs a function of agent-lib.sh with its arguments; its exit code and what it wrote to OUT. */
function lib(fn: string, inputs: readonly string[]): { code: number; out: string } {
  const files = inputs.map((text, i) => {
    const f = join(dir, `in${i}`);
    writeFileSync(f, text);
    return f;
  });
  const out = join(dir, 'out');
  rmSync(out, { force: true });
  const r = spawnSync('sh', ['-c', `. ${remoteDir}/agent-lib.sh; ${fn} "$@"`, fn, ...files, out], {
    env: { ...process.env, PATH: `${awkPath}${process.env.PATH}` },
  });
  let text = '';
  try {
    text = readFileSync(out, 'utf8');
  } catch {
    /* none written */
  }
  return { code: r.status ?? -1, out: text };
}

/** What parse_manifest writes for a manifest TypeScript accepts. */
const parsedForm = (m: Manifest): string =>
  `${m.role} ${m.serial} ${m.created} ${m.expires} ${m.commit} ${m.inventory}\n` +
  `preserve${m.preserve.map((p) => ` ${p}`).join('')}\n` +
  m.files.map((f) => `file ${f.name} ${f.sha256} ${f.size}\n`).join('');

const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const manifest: fc.Arbitrary<Manifest> = fc.record({
  format: fc.constant(1),
  role: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,8}$/),
  serial: fc.integer({ min: 0, max: 999_999_999_999 }),
  created: fc.integer({ min: 0, max: 4_000_000_000 }),
  expires: fc.integer({ min: 0, max: 4_000_000_000 }),
  commit: fc.oneof(
    fc.constant('-'),
    hex(7),
    hex(40),
    hex(40).map((h) => `${h}+dirty`),
  ),
  inventory: fc.stringMatching(/^[A-Za-z0-9._/@+~-]{1,20}$/),
  preserve: fc.array(fc.stringMatching(/^[A-Za-z0-9_.*?-]{1,6}$/), { maxLength: 3 }),
  files: fc
    .subarray(['iptables.up.rules', 'ip6tables.up.rules', 'ipset.rules'] as const, { minLength: 1 })
    .chain((names) =>
      fc.tuple(...names.map((name) => fc.record({ name: fc.constant(name), sha256: hex(64), size: fc.nat(99999) }))),
    ),
});

/** Damage a line could take on its way: each keeps or breaks the format, the parsers must agree which. */
const damage = fc.constantFrom(
  (l: string) => l,
  (l: string) => `${l} extra`,
  (l: string) => `${l} `,
  (l: string) => ` ${l}`,
  (l: string) => l.replace(' ', '  '),
  (l: string) => `${l}\n${l}`,
  (l: string) => '',
  (l: string) => l.replace(/ (\d+)/, ' 00$1'),
  (l: string) => l.replace(/ (\d+)/, ' 1$1000000000000'),
  (l: string) => l.replace(/ \S+$/, ' bad/word'),
  (l: string) => l.replace(/ \S+/, ' -'),
  (l: string) => l.replace(/[a-f]/, 'G'),
  (l: string) => `${l}\r`,
  (l: string) => l.replace('fwgen-release 1', 'fwgen-release 2'),
  (l: string) => l.replace(/^(\w+) /, '$1x '),
  (l: string) => `${l}${'a'.repeat(70)}`,
);

describe.each([
  ['mawk', ''],
  ['busybox awk', `${busybox}:`],
])('remote/agent-lib.sh under %s', (_, path) => {
  beforeAll(() => {
    awkPath = path;
    const awk = execFileSync('sh', ['-c', 'readlink -f "$(command -v awk)"'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${path}${process.env.PATH}` },
    });
    expect(awk).toMatch(path ? /busybox/ : /mawk/);
  });

  it('parse_manifest reads what formatManifest writes', () => {
    fc.assert(
      fc.property(manifest, (m) => {
        expect(lib('parse_manifest', [formatManifest(m)])).toEqual({ code: 0, out: parsedForm(m) });
      }),
      { numRuns: 60 },
    );
  });

  it('parse_manifest accepts exactly what parseManifest accepts, damaged or not, with the same values', () => {
    const seen = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(manifest, fc.array(fc.tuple(fc.nat(12), damage), { maxLength: 3 }), (m, edits) => {
        const lines = formatManifest(m).split('\n');
        for (const [at, edit] of edits) lines[at % lines.length] = edit(lines[at % lines.length]);
        const text = lines.join('\n');
        const ts = parseManifest(text);
        const awk = lib('parse_manifest', [text]);
        if (typeof ts === 'string') expect(awk.code, `${ts}\n${text}`).not.toBe(0);
        else expect(awk, text).toEqual({ code: 0, out: parsedForm(ts) });
        seen[typeof ts === 'string' ? 'refused' : 'accepted']++;
      }),
      { numRuns: 250 },
    );
    // Both sides of the line were walked.
    expect(seen.accepted).toBeGreaterThan(40);
    expect(seen.refused).toBeGreaterThan(40);
  });

  it('merge_pinned: the pinned chain in iptables-save order, hooks first in INPUT and OUTPUT, the release intact', () => {
    const inv = loadInventory('inventory/inventory.yaml').inventory;
    const hosts = inv.hosts.filter((h) => ['web2', 'db1', 'metrics1'].includes(h.name));
    const pinned = pinnedFragments(inv, hosts);
    for (const h of hosts) {
      for (const [family, file] of [
        ['ipv4', 'iptables.up.rules'],
        ['ipv6', 'ip6tables.up.rules'],
      ] as const) {
        const release = readFileSync(`rendered/${h.role}/${file}`, 'utf8');
        const { code, out } = lib('merge_pinned', [release, pinned.get(h.name)![family]]);
        expect(code).toBe(0);
        expect(withoutPinned(out)).toBe(release);
        const table = parseRuleset(out).ruleset.tables[0];
        const rules = rulesOf(table);
        const chains = table.chains.map((c) => c.name);
        expect(chains.slice(3)).toEqual([...chains.slice(3)].sort());
        expect(chains).toContain('FWGEN-AGENT');
        // Rules grouped by chain, in the order of the declarations (as iptables-save prints them).
        const order = rules.map((r) => chains.indexOf(r.chain));
        expect(order).toEqual([...order].sort((a, b) => a - b));
        for (const c of ['INPUT', 'OUTPUT'])
          expect(rules.find((r) => r.chain === c)?.args).toEqual([
            '-m',
            'comment',
            '--comment',
            'fwgen agent pinned',
            '-j',
            'FWGEN-AGENT',
          ]);
        if (family === 'ipv4')
          expect(out).toContain(
            `-A FWGEN-AGENT -s 203.0.113.0/28 -p tcp -m tcp --dport ${h.ssh.port} -m comment --comment "fwgen agent management ssh" -j ACCEPT`,
          );
      }
    }
    expect(pinned.get('web2')!.ipv4).toContain('--dport 2222');
    expect(pinned.get('db1')!.ipv4).toContain('--comment "fwgen agent monitoring#1 from metrics/metrics1" -j ACCEPT');
    expect(pinned.get('db1')!.ipv6).toContain('-s 2001:db8:ffff::/48');
  });
});
