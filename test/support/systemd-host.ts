/**
 * A test host that runs a REAL systemd as PID 1, with sshd, booted by systemd-nspawn into a lab
 * network namespace. Safety first, because systemd booted on the machine's shared filesystem starts
 * the machine's services and its tmpfiles service empties the real /tmp:
 *
 * - the root filesystem is an overlay in a PRIVATE mount namespace (`unshare -m --propagation
 *   private`): lower = a read-only bind of /, upper and work on a tmpfs of their own, so nothing
 *   the container writes reaches the machine's files, and the mounts vanish with the container;
 * - /tmp, /var/tmp (and /run, as nspawn always does) are private tmpfs inside the container;
 * - no unit file of the machine is visible: /usr/lib/systemd/system and the generators folder are
 *   empty tmpfs, and /etc/systemd/system is a read-only folder holding only this file's units (an
 *   sshd service and empty targets that transient timers and services depend on);
 * - systemctl only ever runs inside the container (nsenter into its PID 1), never on the machine.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SystemdHost {
  /** PID (in the machine's PID namespace) of the container's systemd */
  readonly initPid: number;
  /** the host's sshd public host key line */
  readonly hostKeyPub: string;
  /** runs argv inside the container (all its namespaces); never throws */
  exec(argv: string[]): { code: number; stdout: string; stderr: string };
  /** kills the container (its PID 1, so the kernel ends every process in it) and waits for nspawn */
  stop(): Promise<void>;
}

/** Only these targets exist, all empty: what transient timers and services depend on by default. */
const EMPTY_TARGETS = [
  'sysinit',
  'basic',
  'timers',
  'time-set',
  'time-sync',
  'shutdown',
  'sockets',
  'paths',
  'slices',
  'local-fs',
];

const SSHD_UNIT = `[Unit]
Description=sshd of the fwgen test host
DefaultDependencies=no
[Service]
ExecStartPre=/bin/mkdir -p /run/sshd
ExecStart=/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
`;

const SSHD_CONFIG = `HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
`;

/**
 * Boots the container in `dir` (a fresh folder of the test) inside network namespace `netns`. With
 * `writableUnits`, the host may write its /etc/systemd/system (the test's `units` folder, never the
 * machine's): for steps that install units, such as the pull agent's timer.
 */
export async function bootSystemdHost(
  dir: string,
  netns: string,
  authorizedKey: string,
  opts: { writableUnits?: boolean } = {},
): Promise<SystemdHost> {
  for (const d of ['lower', 'rw', 'root', 'units', 'ssh', 'roothome/.ssh'])
    mkdirSync(join(dir, d), { recursive: true });
  for (const t of EMPTY_TARGETS)
    writeFileSync(join(dir, 'units', `${t}.target`), `[Unit]\nDescription=${t} (empty: fwgen test host)\n`);
  writeFileSync(
    join(dir, 'units', 'fwgen-test.target'),
    '[Unit]\nDescription=fwgen test host\nWants=fwgen-sshd.service\n',
  );
  writeFileSync(join(dir, 'units', 'fwgen-sshd.service'), SSHD_UNIT);
  writeFileSync(join(dir, 'ssh', 'sshd_config'), SSHD_CONFIG);
  const keygen = spawnSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'fwgen-systemd-host',
    '-f',
    join(dir, 'ssh', 'ssh_host_ed25519_key'),
  ]);
  if (keygen.status !== 0) throw new Error(`ssh-keygen failed: ${keygen.stderr}`);
  chmodSync(join(dir, 'roothome'), 0o700);
  chmodSync(join(dir, 'roothome/.ssh'), 0o700);
  writeFileSync(join(dir, 'roothome/.ssh/authorized_keys'), `${authorizedKey.trim()}\n`, { mode: 0o600 });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = `set -eu
mount --bind / ${q(join(dir, 'lower'))}
mount -o remount,bind,ro ${q(join(dir, 'lower'))}
mount -t tmpfs -o mode=700 fwgen-rw ${q(join(dir, 'rw'))}
mkdir ${q(join(dir, 'rw/upper'))} ${q(join(dir, 'rw/work'))}
mount -t overlay fwgen-root -o lowerdir=${q(join(dir, 'lower'))},upperdir=${q(join(dir, 'rw/upper'))},workdir=${q(join(dir, 'rw/work'))} ${q(join(dir, 'root'))}
exec systemd-nspawn --quiet --register=no --keep-unit --console=passive --boot -D ${q(join(dir, 'root'))} \\
  --network-namespace-path=${q(`/run/netns/${netns}`)} --capability=CAP_NET_ADMIN \\
  --tmpfs=/tmp --tmpfs=/var/tmp --tmpfs=/usr/lib/systemd/system --tmpfs=/usr/lib/systemd/system-generators \\
  --bind${opts.writableUnits ? '' : '-ro'}=${q(join(dir, 'units'))}:/etc/systemd/system --bind-ro=${q(join(dir, 'ssh'))}:/etc/ssh \\
  --bind=${q(join(dir, 'roothome'))}:/root \\
  systemd.unit=fwgen-test.target
`;
  writeFileSync(join(dir, 'boot.sh'), script);
  const log = join(dir, 'nspawn.log');
  writeFileSync(log, '');
  const child: ChildProcess = spawn('unshare', ['-m', '--propagation', 'private', 'sh', join(dir, 'boot.sh')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  const initPid = await waitFor(
    () => childPid(child.pid!),
    15_000,
    () => `systemd-nspawn did not start systemd:\n${output}`,
  );
  const exec = (argv: string[]) => {
    const r = spawnSync('nsenter', ['-t', String(initPid), '-m', '-u', '-i', '-n', '-p', '--', ...argv], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  await waitFor(
    () => (exec(['systemctl', 'is-active', 'fwgen-sshd.service']).stdout.trim() === 'active' ? true : undefined),
    20_000,
    () => {
      return `sshd did not start in the systemd host:\n${output}\n${exec(['systemctl', 'status', '--no-pager', 'fwgen-sshd.service']).stdout}`;
    },
  );
  return {
    initPid,
    hostKeyPub: readFileSync(join(dir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8').trim(),
    exec,
    async stop() {
      if (child.exitCode === null) {
        try {
          process.kill(initPid, 'SIGKILL');
        } catch {
          // already gone
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      }
    },
  };
}

/** The single child of `pid` (nspawn's child is the container's PID 1), once it runs systemd. */
function childPid(pid: number): number | undefined {
  const r = spawnSync('ps', ['-o', 'pid=,comm=', '--ppid', String(pid)], { encoding: 'utf8' });
  const line = r.stdout
    .trim()
    .split('\n')
    .find((l) => /\bsystemd$/.test(l.trim()));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

async function waitFor<T>(probe: () => T | undefined, ms: number, why: () => string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(why());
    await new Promise((r) => setTimeout(r, 200));
  }
}
