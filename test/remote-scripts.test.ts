/**
 * The host-side steps (remote/*.sh) run for real under dash, without network namespaces: stub
 * iptables-restore/-save keep a fake kernel in files, PATH holds only the stubs and the coreutils the
 * scripts need (no systemd-run, so the switch runs under the real setsid), and a temp folder stands
 * for /etc. Each step's logic and every fault of issue 8 that a script handles is checked here.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyCall, deadmanPart, type Part } from '../src/remote/apply.js';
import { EXIT, parseStatus, remoteDir } from '../src/remote/scripts.js';

const DASH = ['/usr/bin/dash', '/bin/dash'].find((p) => existsSync(p)) ?? 'dash-not-installed';
const TOOLS = [
  'cat',
  'mkdir',
  'rm',
  'rmdir',
  'mv',
  'cp',
  'head',
  'tail',
  'wc',
  'tr',
  'cut',
  'sed',
  'grep',
  'sort',
  'date',
  'dirname',
  'sha256sum',
  'sleep',
  'setsid',
  'stat',
  'mktemp',
  'printf',
  'ls',
];

// One stub for the four commands: the family from its name; `-save` prints the state, `--test` fails
// on a line with BAD, a restore records begin/end in the log and makes its input the state.
// kernel/slow-NAME (seconds, then a text) slows a restore whose input has that text; kernel/fail-NAME
// (a text) makes such a restore fail.
const STUB = `#!/bin/sh
K=$FAKE_KERNEL me=\${0##*/}
case $me in ip6*) fam=6 ;; *) fam=4 ;; esac
case $me in *-save) cat "$K/state$fam" 2>/dev/null; exit 0 ;; esac
t=0
for a in "$@"; do [ "$a" = --test ] && t=1; done
in="$K/in.$$"
cat > "$in"
if [ "$t" = 1 ]; then
  if grep -q BAD "$in"; then rm -f "$in"; echo "$me: line 2 failed" >&2; exit 1; fi
  rm -f "$in"; exit 0
fi
label=$(head -n 1 "$in")
printf 'begin %s %s\\n' "$me" "$label" >> "$K/log"
if [ -f "$K/slow-$me" ] && grep -qF -- "$(sed -n 2p "$K/slow-$me")" "$in"; then sleep "$(head -n 1 "$K/slow-$me")"; fi
if [ -f "$K/fail-$me" ] && grep -qF -- "$(cat "$K/fail-$me")" "$in"; then
  rm -f "$in"; printf 'fail %s %s\\n' "$me" "$label" >> "$K/log"; echo "$me: line 3 failed" >&2; exit 2
fi
cp "$in" "$K/state$fam"; rm -f "$in"
printf 'end %s %s\\n' "$me" "$label" >> "$K/log"
`;

const table = (label: string, tag: string) =>
  `# ${label}\n*filter\n:INPUT ACCEPT [0:0]\n:FWGEN-INPUT - [0:0]\n` +
  `-A FWGEN-INPUT -m comment --comment "fwgen ${tag}" -j ACCEPT\n-A INPUT -m comment --comment "fwgen hook" -j FWGEN-INPUT\nCOMMIT\n`;
const OLD4 = table('old4', 'old v4');
const OLD6 = table('old6', 'old v6');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('remote/*.sh under dash with stub iptables', () => {
  let dir: string;
  let etc: string;
  let kernel: string;
  let bin: string;
  let rules: string;
  let rules6: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-remote-'));
    etc = join(dir, 'etc');
    kernel = join(dir, 'kernel');
    bin = join(dir, 'bin');
    for (const d of [etc, kernel, bin]) mkdirSync(d);
    for (const t of TOOLS) {
      const found = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => join(d, t)).find((p) => existsSync(p));
      if (!found) throw new Error(`test needs ${t}`);
      symlinkSync(found, join(bin, t));
    }
    for (const n of ['iptables-restore', 'iptables-save', 'ip6tables-restore', 'ip6tables-save']) {
      writeFileSync(join(bin, n), STUB);
      chmodSync(join(bin, n), 0o755);
    }
    writeFileSync(join(kernel, 'state4'), OLD4);
    writeFileSync(join(kernel, 'state6'), OLD6);
    rules = join(etc, 'iptables.up.rules');
    rules6 = join(etc, 'ip6tables.up.rules');
    writeFileSync(rules, 'old file v4\n');
    writeFileSync(rules6, 'old file v6\n');
  });

  afterEach(() => {
    spawnSync('chattr', ['-i', rules], { stdio: 'ignore' });
    // Switches still sleeping (a test that failed half-way) die with their process group.
    for (const f of readdirSync(etc).filter((n) => n.endsWith('.pid'))) {
      const pid = Number(readFileSync(join(etc, f), 'utf8'));
      if (pid > 0) spawnSync('kill', ['--', `-${pid}`], { stdio: 'ignore' });
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({ PATH: bin, FAKE_KERNEL: kernel });
  const script = (name: string, args: (string | number)[], input?: Buffer): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(DASH, [join(remoteDir, name), ...args.map(String)], { env: env(), cwd: dir });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? Buffer.alloc(0));
      child.on('error', (e) => resolve({ code: -1, stdout, stderr: String(e) }));
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  const fingerprint = (text: string): string =>
    spawnSync(DASH, ['-c', `. "${remoteDir}/lib.sh"; fingerprint`], {
      input: text,
      env: env(),
      encoding: 'utf8',
    }).stdout.trim();
  const state = (fam: 4 | 6) => readFileSync(join(kernel, `state${fam}`), 'utf8');
  const log = () =>
    existsSync(join(kernel, 'log')) ? readFileSync(join(kernel, 'log'), 'utf8').split('\n').filter(Boolean) : [];
  const leftovers = () => readdirSync(etc).filter((n) => /fwgen-(lock|stage|armed|applying|deadman)/.test(n));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const waitFor = async (what: string, cond: () => boolean, ms = 10_000) => {
    for (const end = Date.now() + ms; !cond(); await sleep(50))
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  };

  interface ApplyOpts {
    id?: string;
    timeoutS?: number;
    keep?: number;
    breakLock?: boolean;
    fp4?: string;
    ipv6?: boolean;
    file4?: string;
    /** Mangles the upload after the manifest was computed. */
    tamper?: (upload: Buffer) => Buffer;
  }
  const NEW4 = table('change4', 'new v4');
  const NEW6 = table('change6', 'new v6');
  const apply = (o: ApplyOpts = {}): Promise<Run> => {
    const id = o.id ?? 'run1';
    const ipv6 = o.ipv6 ?? true;
    const b = (s: string) => Buffer.from(s, 'utf8');
    const parts: Part[] = [
      { name: 'file4', bytes: b(o.file4 ?? 'new file v4\n') },
      { name: 'change4', bytes: b(NEW4) },
      { name: 'undo4', bytes: b(OLD4.replace('# old4', '# undo4')) },
      ...(ipv6
        ? [
            { name: 'file6', bytes: b('new file v6\n') },
            { name: 'change6', bytes: b(NEW6) },
            { name: 'undo6', bytes: b(OLD6.replace('# old6', '# undo6')) },
          ]
        : []),
      deadmanPart(),
    ];
    const settings = {
      id,
      ipv6,
      owner: 'alice@ctl (fwgen 0.1.0)',
      timeoutS: o.timeoutS ?? 30,
      keep: o.keep ?? 10,
      breakLock: !!o.breakLock,
      fp4: o.fp4 ?? fingerprint(state(4)),
      fp6: ipv6 ? fingerprint(state(6)) : '-',
    };
    const call = applyCall({ rules, rules6 }, settings, parts);
    const upload = Buffer.concat(parts.map((p) => p.bytes));
    return script('apply.sh', call.args as string[], o.tamper ? o.tamper(upload) : upload);
  };
  const commit = (id = 'run1', backup = '-') => script('commit.sh', [rules, rules6, id, 1, backup, '{"ok":true}']);
  const holdLock = (o: { run: string; since: number; until: number; owner?: string }) => {
    const lock = `${rules}.fwgen-lock`;
    mkdirSync(lock);
    writeFileSync(join(lock, 'run'), `${o.run}\n`);
    writeFileSync(join(lock, 'owner'), `${o.owner ?? 'bob@elsewhere (fwgen 0.1.0)'}\n`);
    writeFileSync(join(lock, 'since'), `${o.since}\n`);
    writeFileSync(join(lock, 'until'), `${o.until}\n`);
  };
  const now = () => Math.floor(Date.now() / 1000);

  it('shellcheck -x -s sh finds nothing in remote/*.sh', () => {
    const files = readdirSync(remoteDir)
      .filter((f) => f.endsWith('.sh'))
      .map((f) => join(remoteDir, f));
    expect(files.length).toBeGreaterThanOrEqual(10);
    // doctor's facts and the `ship --persist` installer too, with their library.
    for (const f of ['boot.sh', 'facts.sh', 'boot-hook.sh']) expect(files).toContain(join(remoteDir, f));
    const r = spawnSync('shellcheck', ['-x', '-s', 'sh', ...files], { encoding: 'utf8' });
    expect(r.error, 'shellcheck is needed: bash scripts/install-test-deps.sh').toBeUndefined();
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  describe('apply: lock', () => {
    it('a lock held by a live run refuses, naming holder, since and when it clears; nothing is applied', async () => {
      holdLock({ run: 'other', since: now() - 5, until: now() + 60 });
      const r = await apply();
      expect(r.code).toBe(EXIT.locked);
      expect(r.stdout).toMatch(
        /^lock=held now=\d+ since=\d+ until=\d+ run=other owner=bob@elsewhere \(fwgen 0\.1\.0\)/m,
      );
      expect(r.stderr).toContain('another fwgen run holds the lock');
      expect(log()).toEqual([]);
      expect(readFileSync(`${rules}.fwgen-lock/run`, 'utf8')).toBe('other\n');
    });

    it('an expired lock of a run that is gone is taken, and the ship goes on', async () => {
      holdLock({ run: 'gone', since: now() - 100, until: now() - 1 });
      const r = await apply();
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/broke the lock of a run that is gone: since=\d+ until=\d+ run=gone owner=bob/);
      expect(readFileSync(`${rules}.fwgen-lock/run`, 'utf8')).toBe('run1\n');
      expect(state(4)).toBe(NEW4);
    });

    it('an expired lock whose switch is still armed is still held', async () => {
      holdLock({ run: 'gone', since: now() - 100, until: now() - 1 });
      writeFileSync(`${rules}.fwgen-armed.gone`, '');
      expect((await apply()).code).toBe(EXIT.locked);
    });

    it('BREAK=1 takes a live lock at once', async () => {
      holdLock({ run: 'other', since: now(), until: now() + 600 });
      const r = await apply({ breakLock: true });
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(`${rules}.fwgen-lock/run`, 'utf8')).toBe('run1\n');
    });

    it('BREAK=1 on a run whose switch is armed fires that switch now; the live rules changed, so this apply stops (19)', async () => {
      const first = await apply({ id: 'killed', timeoutS: 60 });
      expect(first.code, first.stderr).toBe(0);
      expect(state(4)).toBe(NEW4);
      const fpNew = fingerprint(state(4));
      const r = await apply({ id: 'run2', breakLock: true, fp4: fpNew });
      expect(r.stderr).toContain('fired the dead-man switch of run killed');
      expect(r.code).toBe(EXIT.changed);
      expect(state(4)).toBe(OLD4.replace('# old4', '# undo4'));
      expect(state(6)).toBe(OLD6.replace('# old6', '# undo6'));
      expect(readFileSync(`${rules}.fwgen-rollbacks`, 'utf8')).toMatch(/rolled back ship killed:/);
      expect(leftovers()).toEqual([]);
      // Read again (as ship does) and apply: it goes through.
      expect((await apply({ id: 'run3' })).code).toBe(0);
    });

    it("the lock records when it clears: the switch's time after arming", async () => {
      const r = await apply({ timeoutS: 40 });
      expect(r.code, r.stderr).toBe(0);
      const since = Number(readFileSync(`${rules}.fwgen-lock/since`, 'utf8'));
      const until = Number(readFileSync(`${rules}.fwgen-lock/until`, 'utf8'));
      expect(until - since).toBeGreaterThanOrEqual(40);
      expect(until - since).toBeLessThanOrEqual(44);
    });
  });

  describe('apply: staging, fingerprint, test', () => {
    const untouched = () => {
      expect(log()).toEqual([]);
      expect(state(4)).toBe(OLD4);
      expect(readFileSync(rules, 'utf8')).toBe('old file v4\n');
      expect(leftovers()).toEqual([]);
    };

    it('a short upload (a full disk) stops at staging: 18, nothing applied, lock released', async () => {
      const r = await apply({ tamper: (u) => u.subarray(0, u.length - 100) });
      expect(r.code).toBe(EXIT.stageFailed);
      expect(r.stderr).toMatch(/staged deadman has \d+ bytes, expected \d+ \(disk full\?\); nothing changed/);
      untouched();
    });

    it('an IPv6 file that came out empty stops at staging', async () => {
      const r = await apply({
        tamper: (u) => Buffer.from(u.toString('latin1').replace('new file v6\n', ''), 'latin1'),
      });
      expect(r.code).toBe(EXIT.stageFailed);
      expect(r.stderr).toMatch(/staged file6 does not match its SHA-256/);
      untouched();
    });

    it('bytes that do not match their SHA-256 stop at staging: 18', async () => {
      const r = await apply({
        tamper: (u) => Buffer.from(u.toString('latin1').replace('new file v4', 'NEW FILE V4'), 'latin1'),
      });
      expect(r.code).toBe(EXIT.stageFailed);
      expect(r.stderr).toContain('staged file4 does not match its SHA-256; nothing changed');
      untouched();
    });

    it("fwgen's live rules changed since the read: 19, nothing applied", async () => {
      const r = await apply({ fp4: 'f'.repeat(64) });
      expect(r.code).toBe(EXIT.changed);
      expect(r.stderr).toContain("fwgen's live IPv4 rules changed since they were read");
      untouched();
    });

    it('rules the kernel rejects fail at --test: 11, nothing applied, no backup', async () => {
      const r = await apply({ file4: '*filter\n-A FWGEN-INPUT BAD\nCOMMIT\n' });
      expect(r.code).toBe(EXIT.testFailed);
      expect(r.stderr).toContain('iptables-restore --test rejected the new rules: iptables-restore: line 2 failed');
      untouched();
      expect(readdirSync(etc).filter((n) => n.includes('.bak.'))).toEqual([]);
    });
  });

  describe('apply: faults during the apply', () => {
    it('an ip6tables-restore that fails after IPv4 applied: both undone, 13, switch stopped', async () => {
      writeFileSync(join(kernel, 'fail-ip6tables-restore'), '# change6');
      const r = await apply({ timeoutS: 1 });
      expect(r.code).toBe(EXIT.applyFailed);
      expect(r.stderr).toMatch(
        /ip6tables-restore failed: ip6tables-restore: line 3 failed\s*; previous rules restored/,
      );
      expect(fingerprint(state(4))).toBe(fingerprint(OLD4));
      expect(fingerprint(state(6))).toBe(fingerprint(OLD6));
      expect(leftovers()).toEqual([]);
      const applied = log();
      await sleep(1800);
      // The stopped switch never runs its undo a second time.
      expect(log()).toEqual(applied);
      expect(existsSync(`${rules}.fwgen-rollbacks`)).toBe(false);
    });

    it('an undo that fails too is not reported as restored', async () => {
      writeFileSync(join(kernel, 'fail-ip6tables-restore'), '# change6');
      writeFileSync(join(kernel, 'fail-iptables-restore'), '# undo4');
      const r = await apply();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('the previous rules could NOT be restored');
    });

    it('a switch that fires during a slow apply waits for it, then undoes both families; apply reports 14 after the undo', async () => {
      writeFileSync(join(kernel, 'slow-ip6tables-restore'), '3\n# change6\n');
      const r = await apply({ timeoutS: 1 });
      expect(r.code).toBe(EXIT.rolledBack);
      expect(parseStatus(r.stdout)).toMatchObject({ status: 'fired', rollback: 'ok' });
      const l = log();
      expect(l.indexOf('end ip6tables-restore # change6')).toBeGreaterThan(-1);
      expect(l.indexOf('begin iptables-restore # undo4')).toBeGreaterThan(l.indexOf('end ip6tables-restore # change6'));
      // When apply.sh exits, the host already runs the old rules again: the report is true.
      expect(fingerprint(state(4))).toBe(fingerprint(OLD4));
      expect(fingerprint(state(6))).toBe(fingerprint(OLD6));
      expect(readFileSync(`${rules}.fwgen-rollbacks`, 'utf8')).toMatch(
        /rolled back ship run1: not confirmed within 1s/,
      );
      expect(leftovers()).toEqual([]);
      expect(readFileSync(rules, 'utf8')).toBe('old file v4\n');
    });

    it('a switch that fires during a slow IPv4 apply: IPv6 is never applied', async () => {
      writeFileSync(join(kernel, 'slow-iptables-restore'), '3\n# change4\n');
      const r = await apply({ timeoutS: 1 });
      expect(r.code).toBe(EXIT.rolledBack);
      expect(log()).not.toContain('begin ip6tables-restore # change6');
      expect(fingerprint(state(4))).toBe(fingerprint(OLD4));
      expect(fingerprint(state(6))).toBe(fingerprint(OLD6));
    });
  });

  describe('commit and the switch', () => {
    it('commit claims the switch: files in place, state recorded, unlocked; the switch then does nothing', async () => {
      const a = await apply({ timeoutS: 1 });
      expect(a.code, a.stderr).toBe(0);
      const backup = parseStatus(a.stdout).backup;
      expect(existsSync(`${rules}.fwgen-armed.run1`)).toBe(true);
      const c = await commit('run1', backup);
      expect(c.code, c.stderr).toBe(0);
      expect(c.stdout).toContain('status=committed');
      expect(readFileSync(rules, 'utf8')).toBe('new file v4\n');
      expect(readFileSync(rules6, 'utf8')).toBe('new file v6\n');
      expect(readFileSync(`${rules}.fwgen-state.json`, 'utf8')).toBe('{"ok":true}\n');
      expect(readFileSync(`${rules}.bak.${backup}`, 'utf8')).toBe('old file v4\n');
      expect(leftovers()).toEqual([]);
      await sleep(1800);
      expect(state(4)).toBe(NEW4);
      expect(existsSync(`${rules}.fwgen-rollbacks`)).toBe(false);
    });

    it('without a commit the switch fires after the timeout, undoes, logs and unlocks; a late commit says rolled-back', async () => {
      const a = await apply({ timeoutS: 1 });
      expect(a.code, a.stderr).toBe(0);
      await waitFor('the switch', () => existsSync(`${rules}.fwgen-rollbacks`) && !existsSync(`${rules}.fwgen-lock`));
      expect(fingerprint(state(4))).toBe(fingerprint(OLD4));
      expect(fingerprint(state(6))).toBe(fingerprint(OLD6));
      const c = await commit('run1', parseStatus(a.stdout).backup);
      expect(c.code).toBe(EXIT.rolledBack);
      expect(c.stdout).toContain('status=rolled-back');
      expect(readFileSync(rules, 'utf8')).toBe('old file v4\n');
      expect(leftovers()).toEqual([]);
    });

    it('an immutable rules file (chattr +i): commit undoes at once, 20, old file intact, unlocked', async () => {
      const a = await apply({ timeoutS: 30 });
      expect(a.code, a.stderr).toBe(0);
      const ch = spawnSync('chattr', ['+i', rules], { encoding: 'utf8' });
      expect(ch.status, `chattr +i needs a file system that supports it (${tmpdir()}): ${ch.stderr}`).toBe(0);
      const c = await commit('run1', parseStatus(a.stdout).backup);
      expect(c.code).toBe(EXIT.fileNotReplaced);
      expect(c.stderr).toMatch(/cannot replace .*iptables\.up\.rules .*previous rules restored/);
      expect(fingerprint(state(4))).toBe(fingerprint(OLD4));
      expect(fingerprint(state(6))).toBe(fingerprint(OLD6));
      expect(readFileSync(rules, 'utf8')).toBe('old file v4\n');
      expect(readFileSync(rules6, 'utf8')).toBe('old file v6\n');
      expect(readFileSync(`${rules}.fwgen-rollbacks`, 'utf8')).toMatch(
        /rolled back ship run1: the rules file could not be replaced/,
      );
      expect(leftovers()).toEqual([]);
    });

    it('a rules path that is a folder is not "replaced" by moving the file into it', async () => {
      const a = await apply();
      expect(a.code, a.stderr).toBe(0);
      rmSync(rules6);
      mkdirSync(rules6);
      const c = await commit('run1', parseStatus(a.stdout).backup);
      expect(c.code).toBe(EXIT.fileNotReplaced);
      expect(readdirSync(rules6)).toEqual([]);
      expect(readFileSync(rules, 'utf8')).toBe('old file v4\n');
      expect(fingerprint(state(4))).toBe(fingerprint(OLD4));
    });
  });

  describe('verify.sh and backups.sh', () => {
    const verify = async (id = 'run1') => {
      const r = await script('verify.sh', [rules, id]);
      expect(r.stderr).toBe('');
      return parseStatus(r.stdout).status;
    };

    it('verify tells each state of a run apart', async () => {
      mkdirSync(`${rules}.fwgen-stage.run1`);
      expect(await verify()).toBe('unknown');
      writeFileSync(`${rules}.fwgen-armed.run1`, '');
      expect(await verify()).toBe('still-armed');
      rmSync(`${rules}.fwgen-armed.run1`);
      writeFileSync(
        `${rules}.fwgen-rollbacks`,
        '2024-01-01T00:00:00Z rolled back ship run1: not confirmed within 4s\n',
      );
      expect(await verify()).toBe('rolled-back');
      expect(await verify('run2')).toBe('committed-or-gone');
      writeFileSync(
        `${rules}.fwgen-rollbacks`,
        '2024-01-01T00:00:00Z ROLLBACK FAILED ship run2: not confirmed within 4s\n',
        { flag: 'a' },
      );
      expect(await verify('run2')).toBe('rollback-failed');
      rmSync(`${rules}.fwgen-stage.run1`, { recursive: true });
      expect(await verify('run3')).toBe('committed-or-gone');
    });

    it('apply keeps the newest KEEP backups; backups.sh lists them newest first', async () => {
      for (let i = 1; i <= 5; i++) {
        const ts = `2020010${i}T000000Z`;
        for (const ext of ['', '.live', '.undo4', '.live6', '.undo6'])
          writeFileSync(`${rules}.bak.${ts}${ext}`, `old ${i}\n`);
        writeFileSync(`${rules6}.bak.${ts}`, `old6 ${i}\n`);
      }
      const a = await apply({ keep: 3 });
      expect(a.code, a.stderr).toBe(0);
      const backup = parseStatus(a.stdout).backup;
      const live = readdirSync(etc)
        .filter((n) => n.endsWith('.live'))
        .sort();
      expect(live).toEqual([
        'iptables.up.rules.bak.20200104T000000Z.live',
        'iptables.up.rules.bak.20200105T000000Z.live',
        `iptables.up.rules.bak.${backup}.live`,
      ]);
      // Every file of a pruned backup goes with it, the IPv6 ones too.
      expect(readdirSync(etc).filter((n) => /2020010[123]/.test(n))).toEqual([]);
      const listed = (await script('backups.sh', [rules])).stdout.split('\n').filter(Boolean);
      expect(listed).toEqual([`${backup} ${'old file v4\n'.length}`, '20200105T000000Z 6', '20200104T000000Z 6']);
    });

    it('two ships within one second get distinct backups, and the second is listed first (rollback takes it)', async () => {
      const a = await apply({ id: 'run1' });
      expect(a.code, a.stderr).toBe(0);
      expect((await commit('run1', parseStatus(a.stdout).backup)).code).toBe(0);
      const b = await apply({ id: 'run2', file4: 'newer file v4\n' });
      expect(b.code, b.stderr).toBe(0);
      expect((await commit('run2', parseStatus(b.stdout).backup)).code).toBe(0);
      const [first, second] = [parseStatus(a.stdout).backup, parseStatus(b.stdout).backup];
      expect(second).not.toBe(first);
      const listed = (await script('backups.sh', [rules])).stdout.split('\n').filter(Boolean);
      expect(listed.map((l) => l.split(' ')[0])).toEqual([second, first]);
      expect(readFileSync(`${rules}.bak.${second}`, 'utf8')).toBe('new file v4\n');
    });
  });
});
