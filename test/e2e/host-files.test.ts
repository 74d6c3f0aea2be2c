/**
 * Issue 16, findings 2 and 4, on real sshd hosts: what fwgen's steps write on a host, and where.
 * - An unprivileged local user (`nobody`) watches /tmp and $TMPDIR with inotify and plants symlinks
 *   (to a root-only file, to /etc/nologin) and FIFOs at the names a step would use next: nothing is
 *   truncated, created or hung, and no step creates anything there.
 * - A rules folder (or a folder above it) that someone other than root can change is refused per
 *   host, before anything runs or is staged there; the other hosts of the run go on.
 */
import { spawn } from 'node:child_process';
import { accessSync, appendFileSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, parseJson, type HostRow } from '../support/run-cli.js';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';

const NET = '198.18.160';
const NOBODY = 65534;
const VICTIM = '/etc/fwgen-victim';
const SHARED_TMP = '/var/tmp/shared';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** Runs a process; kills it (and reports `timedOut`) after `timeoutMs`. */
function runFor(argv: string[], cwd: string, timeoutMs: number): Promise<Run> {
  const t0 = Date.now();
  return new Promise((done) => {
    const { SSH_AUTH_SOCK: _agent, ...env } = process.env;
    const child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill(-child.pid!, 'SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end();
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0, timedOut });
    });
  });
}

const fwgenFor = (cwd: string, args: string[], timeoutMs = 60_000) =>
  runFor([process.execPath, CLI, ...args], cwd, timeoutMs);

/**
 * The attacker, run as nobody: watches each folder (inotify, through fs.watch) and, for every name
 * that appears there, plants at once a symlink to the victim, a symlink to /etc/nologin, or a FIFO
 * (in turn) at that name plus `.err`, `.out` and `.tmp`. Prints `seen`/`planted` lines.
 */
const ATTACKER = String.raw`
const fs = require('fs');
const { execFileSync } = require('child_process');
const [victim, nologin, ...dirs] = process.argv.slice(1);
const log = (s) => process.stdout.write(s + '\n');
let turn = 0;
for (const dir of dirs) {
  const pool = fs.mkdtempSync(dir + '/.pool-');
  const fifos = [];
  for (let i = 0; i < 24; i++) { execFileSync('mkfifo', [pool + '/f' + i]); fifos.push(pool + '/f' + i); }
  const ours = new Set([pool.slice(dir.length + 1)]);
  fs.watch(dir, (event, name) => {
    if (!name || ours.has(name) || !fs.existsSync(dir + '/' + name)) return;
    log('seen ' + dir + '/' + name);
    const kind = turn++ % 3;
    for (const suffix of ['.err', '.out', '.tmp']) {
      const at = dir + '/' + name + suffix;
      try {
        if (kind === 0) fs.symlinkSync(victim, at);
        else if (kind === 1) fs.symlinkSync(nologin, at);
        else fs.renameSync(fifos.pop(), at);
        ours.add(name + suffix);
        log('planted ' + ['victim', 'nologin', 'fifo'][kind] + ' ' + at);
      } catch (e) {
        log('missed ' + at + ' ' + e.code);
      }
    }
  });
}
log('ready');
`;

it('has the prerequisites of the end-to-end tests (root, sshd, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('host-side files: no capture in /tmp or $TMPDIR, no rules folder others can change', () => {
  let lab: Lab;
  let project: string;

  const inventory = (rulesPath?: string, hosts = `race: ${NET}.11`) => `
defaults:
  interface: eth1
  ${rulesPath ? `rules_path: ${rulesPath}` : ''}
  ssh: { user: root, identity: ${lab.sshKey.privatePath}, known_hosts: ${lab.knownHostsPath} }
management: [${NET}.240/28]
roles:
  web:
    public: true
    hosts: { ${hosts} }
`;
  const useInventory = async (text: string) => {
    writeFileSync(join(project, 'inventory/inventory.yaml'), text);
    expect((await fwgenFor(project, ['render'])).code).toBe(0);
  };
  const sh = (host: string, script: string) => lab.execOk(host, ['sh', '-c', script]);

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwhf',
      hosts: [
        { name: 'race', ipv4: `${NET}.11`, sshd: true },
        { name: 'good', ipv4: `${NET}.12`, sshd: true },
        { name: 'owned', ipv4: `${NET}.13`, sshd: true },
      ],
    });
    project = mkdtempSync(join(tmpdir(), 'fwgen-host-files-'));
    mkdirSync(join(project, 'inventory'));
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    if (project) rmSync(project, { recursive: true, force: true });
  }, 60_000);

  describe('finding 2: a local user racing the steps in /tmp and $TMPDIR', () => {
    let attackerLog: string;
    const effects = async () => {
      const out = await sh('race', `wc -c < ${VICTIM}; [ -e /etc/nologin ] && echo nologin || echo none`);
      const [size, nologin] = out.trim().split('\n');
      return { victimBytes: Number(size), nologin: nologin === 'nologin' };
    };
    const restore = () => sh('race', `printf 'secret\\n' > ${VICTIM}; chmod 600 ${VICTIM}; rm -f /etc/nologin`);
    const sshRace = (script: string, timeoutMs: number) =>
      runFor(['ssh', ...lab.sshArgs('race'), script], project, timeoutMs);
    const logLines = async () => (await sh('race', 'cat /run/fwgen-attacker.log')).split('\n').filter(Boolean);

    beforeAll(async () => {
      accessSync(process.execPath, constants.X_OK);
      const host = lab.hosts.get('race')!;
      // Root's sessions get a TMPDIR that is world-writable without the sticky bit (a slip some hosts
      // have): the kernel's protected_symlinks/protected_fifos do not cover it, so the attack works
      // there whatever those sysctls say. /tmp is watched too.
      appendFileSync(join(host.etcDir, 'ssh/sshd_config_lab'), `SetEnv TMPDIR=${SHARED_TMP}\n`);
      await lab.stopSshd('race');
      await lab.startSshd('race');
      await sh('race', `mkdir -p ${SHARED_TMP} && chmod 0777 ${SHARED_TMP}`);
      await restore();
      await useInventory(inventory());
      // (The script and paths reach sh as arguments.)
      await lab.execOk('race', [
        'sh',
        '-c',
        'setsid setpriv --reuid="$1" --regid="$1" --clear-groups "$2" -e "$3" "$4" /etc/nologin /tmp "$5" ' +
          '> /run/fwgen-attacker.log 2>&1 < /dev/null &',
        'sh',
        String(NOBODY),
        process.execPath,
        ATTACKER,
        VICTIM,
        SHARED_TMP,
      ]);
      for (let i = 0; i < 100 && !(await logLines()).includes('ready'); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(await logLines(), 'the attacker started').toContain('ready');
      const tmpdirSeen = await sshRace('printf %s "$TMPDIR"', 10_000);
      expect(tmpdirSeen.stdout).toBe(SHARED_TMP);
    }, 60_000);

    it('the attacker is real: it beats a step that keeps stderr in "$(mktemp).err", as read.sh did', async () => {
      // The old read.sh's first lines: mktemp, the two file sections, then the capture.
      const oldRead =
        'T=$(mktemp) || exit 1; stat -L -c %s /etc/hostname; cat /etc/hostname; stat -L -c %s /etc/hosts; ' +
        'cat /etc/hosts; iptables-save -t filter > "$T" 2> "$T.err"; rm -f "$T" "$T.err"';
      const wins: string[] = [];
      for (let i = 0; i < 9 && wins.length < 3; i++) {
        const r = await sshRace(oldRead, 5000);
        const e = await effects();
        if (r.timedOut) wins.push('hung on a FIFO');
        if (e.victimBytes === 0) wins.push(`truncated ${VICTIM}`);
        if (e.nologin) wins.push('created /etc/nologin');
        await restore();
      }
      expect(wins.length, `the attacker won ${wins.length} race(s): ${wins.join(', ')}`).toBeGreaterThan(0);
    }, 90_000);

    it('ship, status, backups, doctor and rollback: nothing truncated, created or hung; no file made in /tmp or $TMPDIR', async () => {
      await restore();
      const before = (await logLines()).length;
      const runs = [
        ['ship', '--role', 'all', '--json', '--timeout', '5', '--connect-timeout', '5', '--persist'],
        ['status', '--connect-timeout', '5'],
        ['backups', '--host', 'race', '--connect-timeout', '5'],
        ['doctor', '--connect-timeout', '5'],
        ['ship', '--role', 'all', '--json', '--timeout', '5', '--connect-timeout', '5', '--force'],
        ['rollback', '--json', '--host', 'race', '--timeout', '5', '--connect-timeout', '5'],
        ['status', '--connect-timeout', '5'],
      ];
      for (const args of runs) {
        const r = await fwgenFor(project, args, 60_000);
        expect(r.timedOut, `fwgen ${args.join(' ')} hung`).toBe(false);
        if (args[0] !== 'doctor') expect(r.code, `fwgen ${args.join(' ')}: ${r.stderr}`).toBe(0);
        if (args[0] === 'ship' || args[0] === 'rollback')
          expect(parseJson<{ hosts: HostRow[] }>(r.stdout, { hosts: [] }).hosts[0]?.outcome).toBe('applied');
      }
      expect(await effects()).toEqual({ victimBytes: 7, nologin: false });
      const after = (await logLines()).slice(before);
      expect(
        after.filter((l) => l.startsWith('seen ')),
        'names that appeared in /tmp or $TMPDIR',
      ).toEqual([]);
    }, 180_000);
  });

  describe('finding 4: a rules folder someone other than root can change', () => {
    const RULES = '/etc/iptables/rules.v4';
    const ship = () =>
      fwgenFor(project, ['ship', '--json', '--role', 'all', '--timeout', '5', '--connect-timeout', '5']);
    const rows = (r: Run) =>
      Object.fromEntries(parseJson<{ hosts: HostRow[] }>(r.stdout, { hosts: [] }).hosts.map((x) => [x.host, x]));
    const untouched = async (folder: string) => {
      expect(await sh('owned', `ls -A ${folder}`)).toBe('');
      expect(await sh('owned', 'iptables-save -t filter | grep -c FWGEN || true')).toBe('0\n');
    };

    beforeAll(async () => {
      await useInventory(inventory(RULES, `good: ${NET}.12, owned: ${NET}.13`));
      await sh('good', 'mkdir -p /etc/iptables');
    });

    it('a folder owned by an unprivileged user is refused on that host before anything runs there; the other host ships', async () => {
      await sh('owned', `mkdir -p /etc/iptables && chown ${NOBODY} /etc/iptables`);
      const r = await ship();
      expect(r.code, r.stderr).toBe(1);
      const byHost = rows(r);
      expect(byHost.good.outcome).toBe('applied');
      expect(byHost.owned.outcome).toBe('failed');
      expect(byHost.owned.reason).toMatch(
        /refusing the folder of \/etc\/iptables\/rules\.v4: \/etc\/iptables is owned by uid 65534, not root\. .*owned by root and writable by root only/,
      );
      await untouched('/etc/iptables');
      const status = await fwgenFor(project, ['status', '--json', '--connect-timeout', '5']);
      expect(status.stdout).toMatch(/refusing the folder of \/etc\/iptables\/rules\.v4/);
      const doctor = await fwgenFor(project, ['doctor', '--json', '--host', 'owned', '--connect-timeout', '5']);
      expect(doctor.stdout).toMatch(/"name": "rules folder",\s*"level": "fail"/);
    });

    it('a group-writable folder is refused', async () => {
      await sh('owned', 'chown root /etc/iptables && chmod 0775 /etc/iptables');
      const r = await ship();
      expect(rows(r).owned.reason).toMatch(/\/etc\/iptables is writable by group or others \(mode 775\)/);
      await untouched('/etc/iptables');
    });

    it('a symlinked folder whose real parent an unprivileged user owns is refused, naming that parent', async () => {
      await sh(
        'owned',
        `rmdir /etc/iptables && mkdir -p /var/tmp/fwx/iptables && chown ${NOBODY} /var/tmp/fwx && ` +
          'ln -s /var/tmp/fwx/iptables /etc/iptables',
      );
      const r = await ship();
      expect(rows(r).owned.reason).toMatch(/\/var\/tmp\/fwx is owned by uid 65534, not root/);
      await untouched('/var/tmp/fwx/iptables');
    });

    it('once root owns it alone, the host ships', async () => {
      await sh('owned', 'rm /etc/iptables && mkdir -m 0755 /etc/iptables');
      const r = await ship();
      expect(r.code, r.stderr).toBe(0);
      expect(rows(r).owned.outcome).toBe('applied');
    });
  });
});
