/** Process helpers shared by the daemon harnesses (docker-daemon.ts, fail2ban-daemon.ts). */
import { readFileSync } from 'node:fs';
import type { Lab } from './lab.js';

// $1 = log file, $2... = daemon argv; prints the daemon's pid. setsid: not in the caller's process group,
// so the daemon outlives the `lab.exec` that started it and is killed by pid (or by lab.destroy()).
const SPAWN_SH = 'log=$1; shift; setsid "$@" </dev/null >>"$log" 2>&1 & echo $!';

/** Start `argv` in the background inside lab host `host` (its namespaces), output appended to `log`; returns the pid. */
export async function spawnInHost(lab: Lab, host: string, log: string, argv: string[]): Promise<number> {
  const out = await lab.execOk(host, ['sh', '-c', SPAWN_SH, 'sh', log, ...argv], { timeoutMs: 10_000 });
  const pid = Number(out.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`daemon: no pid for ${argv[0]} on ${host}: ${out}`);
  return pid;
}

/** Whether process `pid` exists (the lab hosts share the test's pid namespace). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Send SIGTERM, wait up to `graceMs`, then SIGKILL; resolves once the process is gone. */
export async function terminatePid(pid: number, graceMs: number): Promise<void> {
  if (!pidAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  await waitPidGone(pid, graceMs);
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  await waitPidGone(pid, 5_000);
}

/** Wait until `pid` is gone or `timeoutMs` passed. */
export async function waitPidGone(pid: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (pidAlive(pid) && Date.now() < end) await sleep(25);
}

/** Poll `check` every `everyMs` until it returns true; throws `describe()`'s text after `timeoutMs`. */
export async function pollUntil(
  timeoutMs: number,
  check: () => Promise<boolean>,
  describe: () => Promise<string> | string,
  everyMs = 100,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(await describe());
    await sleep(everyMs);
  }
}

/** The last `chars` characters of a log file, for error messages. */
export function tailFile(file: string, chars = 3000): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '(no log)';
  }
}

/** Promise that resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
