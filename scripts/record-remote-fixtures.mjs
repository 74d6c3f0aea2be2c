#!/usr/bin/env node
// Records what every host step (remote/*.sh) really prints, for test/remote-steps.test.ts to replay
// through its parser (pyinfra's tests/facts: one file a case, pinning the call, the output and the
// parsed result). The steps run as ship, rollback, status and doctor run them, through the real
// orchestration (dist/), on this machine inside a network namespace of its own (real iptables, real
// kernel), with the rules files under /run/fwgen-record. Needs root and `npm run build`.
//
//   node scripts/record-remote-fixtures.mjs        # rewrites test/fixtures/remote/<step>/<case>.json
//   FWGEN_RECORD_STEPS=agent-install,agent-poll node scripts/record-remote-fixtures.mjs   # only those steps
//
// Review the diff: a changed `expected` is a changed parser result.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (m) => import(join(ROOT, 'dist', m));
const { LocalTransport } = await dist('remote/local-transport.js');
const { shipHost } = await dist('ship/ship-host.js');
const { runSettings } = await dist('ship/run-settings.js');
const { verifyCall } = await dist('remote/verify.js');
const { commitCall } = await dist('remote/commit.js');
const { listBackups } = await dist('remote/backups.js');
const { factsCall, TOOLS } = await dist('remote/facts.js');
const { bootHookCall, bootRemoveCall } = await dist('remote/boot-hook.js');
const { readCall } = await dist('remote/read.js');
const { agentInstallCall, agentUninstallCall, agentScriptParts } = await dist('remote/agent-install.js');
const { agentPollCall } = await dist('remote/agent-poll.js');
const { formatManifest } = await dist('publish/manifest.js');
const { allowedSigners } = await dist('remote/release-trust.js');

const NS = `fwrec-${process.pid}`;
const DIR = '/run/fwgen-record';
const paths = { rules: `${DIR}/etc/iptables.up.rules`, rules6: `${DIR}/etc/ip6tables.up.rules` };
const OUT = join(ROOT, 'test/fixtures/remote');

/** The parser of each step, as the code that runs the step uses it (src/remote/step-parsers.ts). */
const { STEP_PARSERS: PARSERS } = await dist('remote/step-parsers.js');
const ONLY = process.env.FWGEN_RECORD_STEPS?.split(',');
/** The origin of the agent's polls (recordAgent). */
let nginx;

let label = 'none';
const recorded = [];
// The boot steps write to /etc: they (and the read that follows them) get an /etc of their own, kept
// between calls; `ifup` exists (a stub: ifupdown) unless the case is about a host without it.
const ETC = `${DIR}/host-etc`;
const STUB = `${DIR}/stub-bin`;
const BOOT_CASES = new Set(['unsupported', 'installed', 'present', 'boot-recorded', 'removed']);
const transport = new LocalTransport(
  (call) =>
    BOOT_CASES.has(label) || call.name === 'agent-install'
      ? // the boot steps and the agent's schedule go to /etc: give them an /etc of their own (and no
        // systemd to talk to: the cron branch)
        [
          'ip',
          'netns',
          'exec',
          NS,
          'unshare',
          '-m',
          '--propagation',
          'private',
          'sh',
          '-c',
          // (the agent's /etc lasts from one call to the next: its second install finds its cron entry)
          `mount --bind "$0" /etc && { [ ! -d /run/systemd ] || mount -t tmpfs fwrec /run/systemd; } && exec "$@"`,
          call.name === 'agent-install' ? `${DIR}/sysetc` : ETC,
          'env',
          `PATH=${label === 'unsupported' ? '' : `${STUB}:`}/usr/sbin:/usr/bin:/sbin:/bin`,
        ]
      : ['ip', 'netns', 'exec', NS],
  (call, result) => recorded.push({ label, call, result }),
);

const rendered = (role, file) => readFileSync(join(ROOT, 'rendered', role, file));
const host = {
  name: 'h1',
  role: 'web',
  addresses: [],
  ssh: { host: '198.18.0.1', user: 'root', port: 22, knownHosts: '', sudo: false },
};
const job = (role) => ({
  kind: 'ship',
  host,
  paths,
  preserve: () => false,
  v4: rendered(role, 'iptables.up.rules'),
  v6: rendered(role, 'ip6tables.up.rules'),
});
const settings = (id, timeoutS = 30) =>
  runSettings(
    { id, timeoutS, keep: 10, force: false, dryRun: false, acceptNew: false, connectTimeoutMs: 1000 },
    {
      who: 'recorder@fwgen',
      inventory: 'inventory/inventory.yaml',
      commit: null,
      version: '0.0.0',
      pid: 1,
      start: new Date(0),
    },
  );
const fx = (t = transport) => ({
  transport: t,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => Date.now(),
});
const session = () => transport.connect({ name: 'h1', ssh: host.ssh, acceptNew: false, timeoutMs: 1000 });
const at = (l) => (label = l);
const check = (r, outcome) => {
  if (r.outcome !== outcome) throw new Error(`${label}: expected ${outcome}, got ${r.outcome}: ${r.reason}`);
};

try {
  execFileSync('ip', ['netns', 'add', NS]);
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(`${DIR}/etc`, { recursive: true, mode: 0o755 });
  mkdirSync(`${DIR}/sysetc`, { recursive: true, mode: 0o755 });

  at('first-ship');
  check(await shipHost(job('web'), settings('20261201T000000Z-aaaaaa'), fx()), 'applied');
  at('unchanged');
  check(await shipHost(job('web'), settings('20261201T000001Z-bbbbbb'), fx()), 'unchanged');
  at('committed');
  await (await session()).run(verifyCall(paths, '20261201T000000Z-aaaaaa'));
  await new Promise((r) => setTimeout(r, 1100)); // backups are named by the second
  at('second-ship');
  check(await shipHost(job('db'), settings('20261201T000002Z-cccccc'), fx()), 'applied');

  // A ship whose confirmation never connects: the switch stays armed, holds the lock, then fires.
  const lost = {
    connects: 0,
    connect(t) {
      return ++this.connects === 2 ? Promise.reject(new Error('connect ECONNREFUSED')) : transport.connect(t);
    },
  };
  await new Promise((r) => setTimeout(r, 1100));
  at('lost-confirmation');
  const pending = shipHost(job('web'), settings('20261201T000003Z-dddddd', 3), fx(lost));
  await new Promise((r) => setTimeout(r, 1000));
  at('armed');
  await (await session()).run(verifyCall(paths, '20261201T000003Z-dddddd'));
  at('locked');
  check(await shipHost(job('worker'), settings('20261201T000004Z-eeeeee'), fx()), 'failed');
  at('lost-confirmation');
  check(await pending, 'rolled-back');

  at('kernel-rejects');
  const bad = {
    ...job('web'),
    v4: Buffer.from(
      rendered('web', 'iptables.up.rules')
        .toString()
        .replace('COMMIT', '-A FWGEN-INPUT -m nosuchmatch -j ACCEPT\nCOMMIT'),
    ),
  };
  check(await shipHost(bad, settings('20261201T000005Z-ffffff'), fx()), 'failed');

  at('never-armed');
  await (await session()).run(commitCall(paths, '20261201T000006Z-000000', true, '-', '{}'));

  at('listed');
  const backups = await listBackups(await session(), paths);
  at('to-first-backup');
  const oldest = backups.at(-1).ts;
  check(
    await shipHost(
      { ...job('web'), kind: 'rollback', to: oldest, ipv6: true },
      { ...settings('20261201T000007Z-111111'), force: true },
      fx(),
    ),
    'applied',
  );

  at('host');
  await (await session()).run(factsCall(paths, TOOLS));
  mkdirSync(ETC, { recursive: true, mode: 0o755 });
  // iptables-save and friends are /etc/alternatives links.
  execFileSync('cp', ['-a', '/etc/alternatives', `${ETC}/alternatives`]);
  mkdirSync(STUB, { recursive: true, mode: 0o755 });
  writeFileSync(`${STUB}/ifup`, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  at('unsupported');
  await (await session()).run(bootHookCall(paths));
  at('installed');
  await (await session()).run(bootHookCall(paths));
  at('present');
  await (await session()).run(bootHookCall(paths));
  at('boot-recorded');
  await (await session()).run(readCall(paths, true));
  at('removed');
  await (await session()).run(bootRemoveCall(paths));

  await recordAgent();

  if (ONLY) for (const step of ONLY) rmSync(join(OUT, step), { recursive: true, force: true });
  else rmSync(OUT, { recursive: true, force: true });
  const seen = new Map();
  for (const { label: l, call, result } of recorded) {
    if (ONLY && !ONLY.includes(call.name)) continue;
    const key = `${call.name}/${l}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    const file = join(OUT, call.name, `${l}${n > 1 ? `-${n}` : ''}.json`);
    mkdirSync(dirname(file), { recursive: true });
    const expected = PARSERS[call.name](result, call.args);
    const fixture = { step: call.name, args: call.args, ...result, expected };
    writeFileSync(file, `${JSON.stringify(fixture, null, 2)}\n`);
    process.stdout.write(`${file.slice(ROOT.length + 1)}\n`);
  }
} finally {
  if (nginx?.exitCode === null) nginx.kill('SIGTERM');
  execFileSync('ip', ['netns', 'del', NS]);
  rmSync(DIR, { recursive: true, force: true });
}

/**
 * The pull agent's steps: install (then again, unchanged), polls against a real nginx in the
 * namespace serving a signed release (applied, then a 304: unchanged, then the origin stopped: kept),
 * uninstall (then again: absent), and a poll with no agent.
 */
async function recordAgent() {
  const tree = `${DIR}/tree`;
  const key = `${DIR}/release`;
  mkdirSync(`${tree}/blobs`, { recursive: true });
  mkdirSync(`${tree}/roles/web`, { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'recorder', '-f', key]);
  const blob = rendered('web', 'iptables.up.rules');
  const sha = createHash('sha256').update(blob).digest('hex');
  writeFileSync(`${tree}/blobs/${sha}`, blob);
  const now = Math.floor(Date.now() / 1000);
  const manifest = `${tree}/roles/web/manifest`;
  writeFileSync(
    manifest,
    formatManifest({
      format: 1,
      role: 'web',
      serial: 1796515200,
      created: now,
      expires: now + 7 * 86400,
      commit: '-',
      inventory: 'inventory/inventory.yaml',
      preserve: ['DOCKER*', 'f2b-*'],
      files: [{ name: 'iptables.up.rules', sha256: sha, size: blob.length }],
    }),
  );
  execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-n', 'fwgen', '-f', key, manifest]);
  startNginx(tree);
  const text = (name, t) => ({ name, bytes: Buffer.from(t, 'utf8') });
  const parts = [
    ...agentScriptParts(),
    text(
      'config',
      `fwgen-agent 1\nversion 0.0.0\nhost h1\nrole web\nrules6 ${paths.rules6}\norigin http://127.0.0.1:8080/fleet/\nevery 60\ntimeout 30\nkeep 10\ntextfile /nonexistent\n`,
    ),
    text('allowed_signers', allowedSigners([readFileSync(`${key}.pub`, 'utf8')])),
    text('pinned4', ':FWGEN-AGENT - [0:0]\n-A INPUT -m comment --comment "fwgen agent pinned" -j FWGEN-AGENT\n'),
    text('pinned6', ':FWGEN-AGENT - [0:0]\n'),
  ];
  const stdin = Buffer.concat(parts.map((p) => p.bytes));
  await waitListening();
  at('installed');
  await (await session()).run(agentInstallCall(paths, 60, parts), stdin);
  at('unchanged');
  await (await session()).run(agentInstallCall(paths, 60, parts), stdin);
  at('applied');
  await (await session()).run(agentPollCall(paths));
  at('unchanged');
  await (await session()).run(agentPollCall(paths));
  nginx.kill('SIGTERM');
  await new Promise((r) => nginx.once('exit', r));
  at('kept-unreachable');
  await (await session()).run(agentPollCall(paths));
  at('uninstalled');
  await (await session()).run(agentUninstallCall(paths));
  at('absent');
  await (await session()).run(agentUninstallCall(paths));
  at('not-installed');
  await (await session()).run(agentPollCall(paths));
}

function startNginx(tree) {
  const dir = `${DIR}/nginx`;
  mkdirSync(`${dir}/tmp`, { recursive: true });
  const conf = `worker_processes 1; user root; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path ${dir}/tmp/b; proxy_temp_path ${dir}/tmp/p;
  fastcgi_temp_path ${dir}/tmp/f; uwsgi_temp_path ${dir}/tmp/u; scgi_temp_path ${dir}/tmp/s;
  server { listen 127.0.0.1:8080; location /fleet/ { alias ${tree}/; } } }
`;
  writeFileSync(`${dir}/nginx.conf`, conf);
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? 'nginx';
  execFileSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
  nginx = spawn(
    'ip',
    ['netns', 'exec', NS, bin, '-e', 'stderr', '-p', dir, '-c', `${dir}/nginx.conf`, '-g', 'daemon off;'],
    {
      stdio: 'ignore',
    },
  );
}

async function waitListening() {
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('ip', ['netns', 'exec', NS, 'curl', '-s', '-o', '/dev/null', 'http://127.0.0.1:8080/'], {
        stdio: 'ignore',
      });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
