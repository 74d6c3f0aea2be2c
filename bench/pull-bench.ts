/**
 * Benchmark of pull mode against a 50-host fleet of network namespaces, each with a real sshd
 * (test/support/lab.ts), and a real nginx origin in another namespace. Needs root and nginx.
 *
 *   npm run bench:pull
 *   PULL_BENCH_RUNS=3 npm run bench:pull     # publish-to-converged rounds (default 2)
 *   PULL_BENCH_EVERY=20 npm run bench:pull   # the agents' period, seconds (default 10, the least allowed)
 *
 * Each host's agent runs on the schedule a systemd timer gives it (OnCalendar every EVERY seconds plus
 * a fixed per-host delay within the period: here a shell loop per host doing the same, since lab hosts
 * run no systemd), logging each poll's outcome with its time. Measured:
 *   converge    from the end of `fwgen publish` of a change to every role (a monitoring port) to the
 *               last host's `applied SERIAL`; target (issue 18): <= one period + 10 s
 *   ship        `fwgen ship --role all --force` of the same kind of change to the same 50 hosts
 *               (--force: they run agents), wall time
 *   no-change   one poll with nothing new, on one host, 20 times: HTTP requests and bytes (nginx's
 *               access log: request and response bytes, headers included), and the host's CPU for the
 *               whole poll (user + sys of sh and all it runs, bash's time); target: 1 request, < 1 KB,
 *               <= 50 ms of CPU
 * Prints a table; the test asserts only that every round converged.
 *
 * Addresses: 198.18.61.0/24 (hosts .1-.50, origin .100, controller .254); no other test file uses them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { cleanupStaleLabs, createLab, labPrereqs, type Lab } from '../test/support/lab.js';
import { labNginx, type Nginx } from '../test/support/nginx.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const NET = '198.18.61';
const ROLES = ['web', 'app', 'db', 'cache', 'queue'] as const;
const PER_ROLE = 10;
const RUNS = positiveEnv('PULL_BENCH_RUNS', 2);
const EVERY = positiveEnv('PULL_BENCH_EVERY', 10);
const RULES = '/etc/iptables.up.rules';
const out = (s: string): void => void process.stdout.write(s);

function positiveEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${v} is not a positive integer`);
  return n;
}

const hostNames = ROLES.flatMap((r) => Array.from({ length: PER_ROLE }, (_, i) => `${r}${i + 1}`));
const addressOf = (i: number) => `${NET}.${i + 1}`;

/**
 * The schedule of a systemd timer `OnCalendar=` every EVERY s with `RandomizedDelaySec=EVERY` and
 * `FixedRandomDelay=true`, as a loop: at each period's start plus this host's fixed offset, one poll;
 * its outcome goes to /root/polls.log (the host's private /root) with the time it ended.
 */
const LOOP = `
E=$1 H=$2
sum=$(printf '%s' "$H" | cksum); off=$(( \${sum%% *} % E ))
while [ ! -e /root/stop ]; do
  now=$(date +%s); next=$(( (now / E + 1) * E + off ))
  sleep $((next - now))
  [ -e /root/stop ] && break
  o=$(/bin/sh ${RULES}.fwgen-agent/agent.sh poll ${RULES} now | sed -n 's/^status=polled.* outcome=//p')
  echo "$(date +%s.%N) $o" >> /root/polls.log
done
`;

it('pull mode: 50 hosts converge on a publish; a no-change poll costs one small request', async () => {
  expect(labPrereqs()).toEqual([]);
  if (!existsSync(CLI)) spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  await cleanupStaleLabs('fwpb');
  const dir = mkdtempSync(join(tmpdir(), 'fwgen-pull-bench-'));
  let lab: Lab | undefined;
  let origin: Nginx | undefined;
  const loops: Promise<unknown>[] = [];
  try {
    lab = await createLab({
      prefix: 'fwpb',
      hosts: [
        ...hostNames.map((name, i) => ({ name, ipv4: addressOf(i), sshd: true })),
        { name: 'origin', ipv4: `${NET}.100` },
      ],
      concurrency: 8,
    });
    const project = join(dir, 'project');
    const tree = join(dir, 'tree');
    mkdirSync(join(project, 'inventory'), { recursive: true });
    mkdirSync(tree);
    const key = join(dir, 'release');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    origin = labNginx(lab, 'origin', tree, join(dir, 'nginx'));
    await origin.start();
    const pub = readFileSync(`${key}.pub`, 'utf8').trim();
    const inventory = (port: number) => `
defaults:
  interface: eth1
  ssh: { user: root, identity: ${lab!.sshKey.privatePath}, known_hosts: ${lab!.knownHostsPath} }
agent: { origin: "${origin!.url}", signers: ["${pub}"], every: ${EVERY}, expires: 1h }
management: [${NET}.240/28]
monitoring: [{ from: [192.0.2.5], ports: [tcp/${port}] }]
trust: fleet
roles:
${ROLES.map(
  (r) =>
    `  ${r}:\n    ports: [tcp/8080]\n    hosts: { ${hostNames
      .map((h, i) => [h, i] as const)
      .filter(([h]) => h.replace(/\d+$/, '') === r)
      .map(([h, i]) => `${h}: ${addressOf(i)}`)
      .join(', ')} }`,
).join('\n')}
`;
    const fwgen = (...args: string[]) => {
      const t = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [CLI, ...args], { cwd: project, encoding: 'utf8', maxBuffer: 1 << 26 });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr, s: Number(process.hrtime.bigint() - t) / 1e9 };
    };
    let port = 9100;
    const change = () => {
      port++;
      writeFileSync(join(project, 'inventory/inventory.yaml'), inventory(port));
      expect(fwgen('render').code).toBe(0);
    };
    const publish = () => {
      const r = fwgen('publish', '--out', tree, '--sign-key', key, '--json');
      expect(r.code, r.stderr).toBe(0);
      return {
        end: Date.now() / 1000,
        serials: new Map(
          (JSON.parse(r.stdout) as { roles: { role: string; serial: number }[] }).roles.map((x) => [x.role, x.serial]),
        ),
      };
    };
    change();
    publish();
    const install = fwgen('agent', 'install', '--role', 'all', '--connect-timeout', '10');
    expect(install.code, install.stderr).toBe(0);
    const first = fwgen('agent', 'poll', '--role', 'all', '--connect-timeout', '10');
    expect(first.code, first.stderr).toBe(0);
    out(
      `\nagent install (50 hosts): ${install.s.toFixed(1)} s; first \`agent poll --role all\`: ${first.s.toFixed(1)} s\n`,
    );

    // The no-change poll: one host, 20 polls, each timed by GNU time on the host.
    const probe = hostNames[0];
    const before = origin.accessLog().length;
    const cpu: number[] = [];
    for (let i = 0; i < 20; i++) {
      // bash's `time`: user and sys of the poll and all it runs, to the millisecond (GNU time rounds to 10 ms).
      const r = await lab.exec(probe, [
        'bash',
        '-c',
        `TIMEFORMAT='CPU %3U %3S'; time /bin/sh ${RULES}.fwgen-agent/agent.sh poll ${RULES} now`,
      ]);
      expect(r.stdout).toContain('outcome=unchanged');
      const m = /CPU ([\d.]+) ([\d.]+)/.exec(r.stderr)!;
      cpu.push((Number(m[1]) + Number(m[2])) * 1000);
    }
    const lines = origin.accessLog().slice(before);
    const bytes = lines.map((l) => /" \d+ (\d+) (\d+)$/.exec(l)!).map((m) => Number(m[1]) + Number(m[2]));
    const statuses = [...new Set(lines.map((l) => /" (\d+) /.exec(l)![1]))];

    // The schedule: one loop per host, on the period, each with its fixed offset.
    for (const h of hostNames)
      loops.push(lab.exec(h, ['sh', '-c', LOOP, 'loop', String(EVERY), h], { timeoutMs: 3_600_000 }));
    await new Promise((r) => setTimeout(r, (EVERY + 2) * 1000));
    const logOf = (h: string) => join(lab!.hosts.get(h)!.rootHome, 'polls.log');
    const converge: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      change();
      const { end, serials } = publish();
      let last = 0;
      for (;;) {
        const times = hostNames.map((h) => {
          const serial = serials.get(ROLES.find((r) => h.startsWith(r))!)!;
          const hit = (existsSync(logOf(h)) ? readFileSync(logOf(h), 'utf8') : '')
            .split('\n')
            .find((l) => l.endsWith(` applied ${serial}`));
          return hit ? Number(hit.split(' ')[0]) : undefined;
        });
        if (times.every((t) => t !== undefined)) {
          last = Math.max(...(times as number[])) - end;
          break;
        }
        if (Date.now() / 1000 - end > EVERY * 3 + 60) throw new Error(`not converged after ${EVERY * 3 + 60} s`);
        await new Promise((r) => setTimeout(r, 250));
      }
      converge.push(last);
      out(`round ${run + 1}: converged ${last.toFixed(1)} s after publish\n`);
    }
    for (const h of hostNames) writeFileSync(join(lab.hosts.get(h)!.rootHome, 'stop'), '');
    await Promise.all(loops);

    // The same kind of change, pushed.
    change();
    const ship = fwgen('ship', '--role', 'all', '--force', '--connect-timeout', '10', '--json');
    expect(ship.code, ship.stderr).toBe(0);

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    out(
      `\npull mode, 50 hosts (5 roles x 10), every ${EVERY} s; ${cpus().length} cores, load ${loadavg()[0].toFixed(1)}\n` +
        `| measure | value | target |\n|---|---:|---|\n` +
        `| publish -> all 50 applied (rounds: ${converge.map((c) => c.toFixed(1)).join(', ')}) | max ${Math.max(...converge).toFixed(1)} s | <= ${EVERY + 10} s (period + 10 s) |\n` +
        `| ship --role all --force, same change | ${ship.s.toFixed(1)} s | |\n` +
        `| no-change poll: requests | ${(lines.length / 20).toFixed(1)} (HTTP ${statuses.join(',')}) | 1 |\n` +
        `| no-change poll: bytes on the wire (HTTP, headers included) | ${median(bytes)} | < 1024 |\n` +
        `| no-change poll: host CPU, median (min-max) of 20 | ${median(cpu).toFixed(0)} ms (${Math.min(...cpu).toFixed(0)}-${Math.max(...cpu).toFixed(0)}) | <= 50 ms |\n`,
    );
    expect(Math.max(...converge)).toBeLessThan(EVERY * 3 + 60);
  } finally {
    if (lab) for (const h of hostNames) writeFileSync(join(lab.hosts.get(h)!.rootHome, 'stop'), '', { flag: 'a' });
    await origin?.stop();
    await lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}, 3_600_000);
