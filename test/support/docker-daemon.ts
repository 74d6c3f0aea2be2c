/**
 * A real `dockerd` inside a lab host (its network and mount namespace), for tests of how fwgen
 * coexists with the chains Docker writes.
 *
 * Everything of the daemon lives under `<host.root>/docker/`: data root (vfs storage), exec root
 * (its own containerd, sockets, netns files), pid file, API socket, log, CLI config. Container
 * processes sit in the cgroup {@link labCgroupName} (dockerd's `--cgroup-parent`), so `lab.destroy()`
 * kills them too, even though they live in network namespaces of their own. Docker's addresses come
 * from 198.18.0.0/15 only (`--bip`, `default-address-pools` in its daemon.json); IPv6 rules are off
 * (`--ip6tables=false`; docker-proxy still listens on [::]:port).
 *
 * What dockerd 20.10 does to the host's ruleset (observed, see test/fixtures/iptables-save/docker*.txt):
 * at start it sets ip_forward=1 and the FORWARD policy to DROP, creates DOCKER, DOCKER-USER and
 * DOCKER-ISOLATION-STAGE-1/2 in filter (jumps at the top of FORWARD, nothing in INPUT) and DOCKER in nat
 * (PREROUTING/OUTPUT jumps, MASQUERADE for docker0's net). A published port adds an ACCEPT in filter's
 * DOCKER and a DNAT in nat's DOCKER while the container runs. On stop it removes the per-container rules
 * only: the chains, the DROP policy, ip_forward=1 and docker0 stay, as on a real host.
 *
 * Images cannot be pulled: {@link busyboxImageTar} builds a one-file image from the static
 * /bin/busybox (cached per busybox build in the temp dir) and each daemon `docker import`s it.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { killHostCgroups, labCgroupName, type ExecResult, type Lab } from './lab.js';
import { pidAlive, pollUntil, spawnInHost, tailFile as tail, terminatePid, waitPidGone } from './daemon-process.js';

/** The file busybox httpd serves at `/` in {@link DockerDaemon.runHttpd} containers. */
export const HTTPD_BODY = 'fwgen docker test: served by busybox httpd in a container\n';

/** Image name (repository:tag) of the imported busybox image. */
export const BUSYBOX_IMAGE = 'fwgen-test/busybox:latest';

/** Options for {@link startDockerd}. */
export interface DockerdOptions {
  /** docker0 address and prefix (default '198.19.255.1/24') */
  bip?: string;
  /** pool for user-defined networks (default { base: '198.19.128.0/17', size: 24 }) */
  addressPool?: { base: string; size: number };
  /** how long to wait for the API to answer (default 60 s) */
  timeoutMs?: number;
}

/** Options for {@link DockerDaemon.runHttpd}. */
export interface HttpdOptions {
  /** container name (default 'web') */
  name?: string;
  /** published host port, mapped to the container's port 80 (default 8080) */
  hostPort?: number;
  /** Docker restart policy (default 'always': the container comes back with the daemon) */
  restart?: 'no' | 'always' | 'unless-stopped';
}

/** A running dockerd in a lab host. */
export interface DockerDaemon {
  /** lab host name */
  host: string;
  /** the daemon's private directory (`<host.root>/docker`) */
  dir: string;
  /** API socket path */
  socket: string;
  /** milliseconds the last (re)start took until the API answered */
  startupMs: number;
  /** run the docker CLI against this daemon, inside the host */
  docker(args: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** like docker() but throws unless it exits 0; returns stdout */
  dockerOk(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  /** run busybox httpd serving {@link HTTPD_BODY} with a published port; waits until it listens; returns the id */
  runHttpd(opts?: HttpdOptions): Promise<string>;
  /** wait until the named container runs and its published port accepts connections on the host */
  waitContainer(name: string, hostPort?: number): Promise<void>;
  /**
   * Stop dockerd (its containers stop with it: no live-restore) and start it again; containers with restart
   * policy 'always' come back by themselves (wait with waitContainer). `whileStopped` runs in between.
   */
  restart(opts?: { whileStopped?: () => Promise<void> }): Promise<void>;
  /** stop dockerd and its containerd, kill what is left in its cgroup, delete its directory (Docker's chains stay) */
  stop(): Promise<void>;
  /** `iptables-save` of the host (optionally one table, e.g. 'filter' or 'nat'); `counters` adds `-c` */
  iptablesSave(table?: string, opts?: { counters?: boolean }): Promise<string>;
}

const DEFAULTS = { bip: '198.19.255.1/24', addressPool: { base: '198.19.128.0/17', size: 24 }, timeoutMs: 60_000 };

// `ip netns exec` gives the host a fresh /sys without cgroup mounts. Mount the same hierarchies as the test
// process sees (v1 controllers, named, v2; whatever this kernel and machine use) again, inside the host's private
// mount namespace only. Reads "fstype mountpoint options" lines on stdin; idempotent.
const MOUNT_CGROUPS_SH = `
set -e
while read -r type dir opts; do
  mkdir -p "$dir"
  mountpoint -q "$dir" || mount -t "$type" -o "$opts" "$type" "$dir"
done
`;

/** The cgroup-related mounts under /sys/fs/cgroup of the test process, as "fstype mountpoint options" lines. */
export function cgroupMounts(): string[] {
  const lines: string[] = [];
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = l.split(' - ');
    const dir = pre?.split(' ')[4];
    const [type, , superOpts] = post?.split(' ') ?? [];
    if (!dir || !type || !superOpts || !(dir === '/sys/fs/cgroup' || dir.startsWith('/sys/fs/cgroup/'))) continue;
    if (type === 'tmpfs') lines.push(`tmpfs ${dir} mode=755`);
    else if (type === 'cgroup2') lines.push(`cgroup2 ${dir} rw`);
    else if (type === 'cgroup')
      lines.push(
        `cgroup ${dir} ${superOpts
          .split(',')
          .filter((o) => o !== 'rw')
          .join(',')}`,
      );
  }
  if (!lines.length) throw new Error('docker-daemon: no cgroup hierarchy mounted under /sys/fs/cgroup');
  return lines;
}

/**
 * HTTP/1.0 GET of `/` from lab host `from` (socat; busybox-static's wget crashes in glibc's static NSS).
 * Returns the status line and body, or the failure.
 */
export async function httpGet(
  lab: Lab,
  from: string,
  addr: string,
  port: number,
): Promise<{ status: string; body: string }> {
  const r = await lab.exec(from, ['socat', '-T', '5', '-', `TCP4:${addr}:${port},connect-timeout=5`], {
    input: `GET / HTTP/1.0\r\nHost: ${addr}\r\n\r\n`,
    timeoutMs: 15_000,
  });
  const split = r.stdout.indexOf('\r\n\r\n');
  const status = r.stdout.split('\r\n', 1)[0] ?? '';
  if (r.code !== 0 || split < 0) return { status: `failed (rc=${r.code}): ${r.stderr.trim()} ${status}`, body: '' };
  return { status, body: r.stdout.slice(split + 4) };
}

/** Path of a tar with the static busybox as the only file, its applets as symlinks and /www/index.html; built once. */
export function busyboxImageTar(): string {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) throw new Error('docker-daemon: /bin/busybox missing (apt-get install busybox-static)');
  if (spawnSync('ldd', [busybox]).status === 0) throw new Error('docker-daemon: /bin/busybox is not the static build');
  const sum = createHash('sha256').update(readFileSync(busybox)).update(HTTPD_BODY).digest('hex').slice(0, 12);
  const tar = path.join(os.tmpdir(), `fwgen-busybox-image-${sum}.tar`);
  if (existsSync(tar)) return tar;
  const stage = path.join(os.tmpdir(), `fwgen-busybox-image-${sum}.${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  for (const d of ['bin', 'www', 'tmp', 'etc', 'proc', 'sys', 'dev']) {
    mkdirSync(path.join(stage, d), { recursive: true });
  }
  copyFileSync(busybox, path.join(stage, 'bin/busybox'));
  const applets = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const linkSh = 'cd "$1/bin" && shift 1 && for a; do ln -sf busybox "$a"; done';
  const ln = spawnSync('sh', ['-c', linkSh, 'sh', stage, ...applets]);
  if (ln.status !== 0) throw new Error(`docker-daemon: linking applets failed: ${ln.stderr}`);
  writeFileSync(path.join(stage, 'www/index.html'), HTTPD_BODY);
  writeFileSync(path.join(stage, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  const r = spawnSync('tar', ['-C', stage, '--owner=0', '--group=0', '-cf', `${tar}.${process.pid}`, '.']);
  rmSync(stage, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`docker-daemon: tar failed: ${r.stderr}`);
  renameSync(`${tar}.${process.pid}`, tar); // atomic: parallel test files may build it at the same time
  return tar;
}

/** Start a real dockerd in lab host `host` (which needs privateFs or sshd) and import the busybox image. */
export async function startDockerd(lab: Lab, host: string, opts: DockerdOptions = {}): Promise<DockerDaemon> {
  const h = lab.hosts.get(host);
  if (!h) throw new Error(`docker-daemon: unknown lab host ${host}`);
  if (!h.privateFs) throw new Error(`docker-daemon: host ${host} needs privateFs (dockerd mounts cgroups and more)`);
  const o = { ...DEFAULTS, ...opts };
  const dir = path.join(h.root, 'docker');
  const socket = path.join(dir, 'docker.sock');
  const log = path.join(dir, 'dockerd.log');
  const pidfile = path.join(dir, 'dockerd.pid');
  for (const d of ['data', 'exec', 'cli']) mkdirSync(path.join(dir, d), { recursive: true, mode: 0o700 });
  // dockerd 20.10 takes address pools from the config file only
  writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'default-address-pools': [o.addressPool] }) + '\n');
  const mounts = cgroupMounts().join('\n') + '\n';
  await lab.execOk(host, ['sh', '-c', MOUNT_CGROUPS_SH], { input: mounts, timeoutMs: 20_000 });

  const argv = [
    'dockerd',
    `--config-file=${path.join(dir, 'daemon.json')}`,
    `--data-root=${path.join(dir, 'data')}`,
    `--exec-root=${path.join(dir, 'exec')}`,
    `--pidfile=${pidfile}`,
    `--host=unix://${socket}`,
    '--storage-driver=vfs',
    `--bip=${o.bip}`,
    '--ip6tables=false',
    '--exec-opt=native.cgroupdriver=cgroupfs',
    `--cgroup-parent=/${labCgroupName(lab, host)}`,
    '--shutdown-timeout=3',
  ];
  const cli = ['env', `DOCKER_CONFIG=${path.join(dir, 'cli')}`, 'docker', `--host=unix://${socket}`];
  let pid = 0;
  let stopped = false;

  const docker = (args: string[], x: { timeoutMs?: number } = {}): Promise<ExecResult> =>
    lab.exec(host, [...cli, ...args], { timeoutMs: x.timeoutMs ?? 60_000 });
  const dockerOk = async (args: string[], x: { timeoutMs?: number } = {}): Promise<string> => {
    const r = await docker(args, x);
    if (r.code !== 0) {
      throw new Error(`docker-daemon: docker ${args.join(' ')} failed (rc=${r.code}): ${r.stderr.trim()}`);
    }
    return r.stdout;
  };

  const apiAnswers = async (): Promise<boolean> =>
    existsSync(socket) &&
    (await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 })).code === 0;

  /** Spawn dockerd and wait until its API answers; returns how long that took. */
  const launch = async (): Promise<number> => {
    const t0 = Date.now();
    pid = await spawnInHost(lab, host, log, argv);
    await pollUntil(
      o.timeoutMs,
      async () => {
        if (!pidAlive(pid)) throw new Error(`docker-daemon: dockerd on ${host} exited during startup:\n${tail(log)}`);
        return apiAnswers();
      },
      () => `docker-daemon: dockerd on ${host} not answering after ${o.timeoutMs} ms:\n${tail(log)}`,
    );
    return Date.now() - t0;
  };

  const terminate = async (): Promise<void> => {
    if (!pid) return;
    // containers get their --stop-timeout (1 s), the daemon its --shutdown-timeout (3 s)
    await terminatePid(pid, 20_000);
    // dockerd stops the containerd it started; wait for it, or the next start finds its socket busy
    const ctdPid = Number(tail(path.join(dir, 'exec/containerd/containerd.pid'), 20).trim());
    if (ctdPid > 0) await waitPidGone(ctdPid, 5_000);
  };

  const daemon: DockerDaemon = {
    host,
    dir,
    socket,
    startupMs: 0,
    docker,
    dockerOk,
    async runHttpd(x = {}) {
      const name = x.name ?? 'web';
      const hostPort = x.hostPort ?? 8080;
      const idOut = await dockerOk([
        'run',
        '-d',
        '--name',
        name,
        '--restart',
        x.restart ?? 'always',
        '--stop-timeout',
        '1',
        '-p',
        `${hostPort}:80`,
        BUSYBOX_IMAGE,
        'httpd',
        '-f',
        '-p',
        '80',
        '-h',
        '/www',
      ]);
      await daemon.waitContainer(name, hostPort);
      return idOut.trim();
    },
    async waitContainer(name, hostPort) {
      let running = false;
      await pollUntil(
        30_000,
        async () => {
          const r = await docker(['inspect', '-f', '{{.State.Running}}', name]);
          running = r.code === 0 && r.stdout.trim() === 'true';
          if (!running || hostPort === undefined) return running;
          return (await lab.probe(host, h.ipv4, hostPort, { timeoutMs: 1000 })) === 'open';
        },
        async () => {
          const logs = await docker(['logs', '--tail', '20', name]);
          return `docker-daemon: container ${name} on ${host} not up (running=${running}):\n${logs.stdout}${logs.stderr}`;
        },
      );
    },
    async restart(x = {}) {
      await terminate();
      await x.whileStopped?.();
      daemon.startupMs = await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate();
      // anything dockerd left (a container it could not stop) is in its cgroup: same cleanup as lab.destroy()
      killHostCgroups(lab, host);
      // delete from the root namespace: the daemon's leftover mounts (private to the host) are not followed
      rmSync(dir, { recursive: true, force: true });
    },
    iptablesSave: (table, x = {}) =>
      lab.execOk(host, ['iptables-save', ...(x.counters ? ['-c'] : []), ...(table ? ['-t', table] : [])]),
  };

  try {
    daemon.startupMs = await launch();
    const tar = busyboxImageTar();
    copyFileSync(tar, path.join(dir, 'busybox.tar'));
    await dockerOk(['import', path.join(dir, 'busybox.tar'), BUSYBOX_IMAGE], { timeoutMs: 60_000 });
  } catch (e) {
    await daemon.stop().catch(() => undefined);
    throw e;
  }
  return daemon;
}
