import { lastErrorLine, remoteFile, sha256, step, type RemoteCall, type RemotePaths } from './scripts.js';
import type { Session } from './transport.js';

/**
 * Where fwgen's own boot hook goes: the Debian ifupdown hook, or a systemd unit where ifupdown is absent
 * (remote/boot.sh `BOOT_HOOK` and `BOOT_UNIT`: the same paths, where the shell writes and compares them).
 */
export const BOOT_HOOK_PATH = '/etc/network/if-pre-up.d/fwgen-iptables';
export const BOOT_UNIT_PATH = '/etc/systemd/system/fwgen-iptables.service';

/** What runs fwgen's boot hook on a host (remote/boot.sh `boot_runner`); `none`: nothing fwgen knows. */
export type BootRunner = 'ifupdown' | 'systemd' | 'none';

/** Something on the host that loads iptables rules at boot. */
export interface BootMechanism {
  readonly kind: 'if-pre-up.d' | 'netfilter-persistent' | 'systemd';
  readonly path: string;
  /** It restores this inventory's rules file (not some other file). */
  readonly loadsRules: boolean;
  /**
   * Whether it will actually run: `ok`, or why not. ifupdown's run-parts skips hooks that are not
   * executable or whose name has a dot; an if-pre-up.d hook never runs without ifupdown at all.
   */
  readonly state: 'ok' | 'no-ifupdown' | 'not-executable' | 'bad-name' | 'disabled';
  /**
   * fwgen's own hook or unit, differing from what this version writes (`fwgen ship` rewrites it);
   * `no-sets`: the rules match ipsets and it does not restore them, so the rules fail to load at boot.
   * Only in doctor's facts (remote/boot.sh `detect_outdated`).
   */
  readonly outdated?: 'differs' | 'no-sets';
}

/** Parses the `boot=` lines of remote/boot.sh `detect_boot`, and the `boot_outdated=` lines of `detect_outdated`. */
export function parseBootMechanisms(stdout: string): BootMechanism[] {
  const out: BootMechanism[] = [];
  const outdated = new Map<string, NonNullable<BootMechanism['outdated']>>();
  for (const line of stdout.split('\n')) {
    const m =
      /^boot=(if-pre-up\.d|netfilter-persistent|systemd) ([01]) (ok|no-ifupdown|not-executable|bad-name|disabled) (.+)$/.exec(
        line,
      );
    if (m)
      out.push({
        kind: m[1] as BootMechanism['kind'],
        loadsRules: m[2] === '1',
        state: m[3] as BootMechanism['state'],
        path: m[4],
      });
    const o = /^boot_outdated=(differs|no-sets) (.+)$/.exec(line);
    if (o) outdated.set(o[2], o[1] as NonNullable<BootMechanism['outdated']>);
  }
  return out.map((m) => (outdated.has(m.path) ? { ...m, outdated: outdated.get(m.path) } : m));
}

/**
 * What the boot-hook step (remote/boot-hook.sh) did on a host: `installed` its hook; rewrote fwgen's own
 * hook or unit that an older fwgen wrote (`updated`); found one already loading the rules (`present`); or
 * left alone something that loads other rules at boot (`conflict`) or would load these but will not run
 * (`inactive`), for a person to decide; or found nothing that runs a boot hook (`unsupported`: neither
 * ifupdown nor systemd) and installed nothing.
 */
export interface BootHookResult {
  readonly status: 'installed' | 'updated' | 'present' | 'conflict' | 'inactive' | 'unsupported';
  /** The mechanism concerned; none when `unsupported`. */
  readonly mechanism?: BootMechanism;
  /** fwgen's own if-pre-up.d hook, removed because nothing on the host would run it. */
  readonly removed?: string;
}

/** Reads what remote/boot-hook.sh printed; undefined when it printed no status (the script failed). */
export function parseBootHookResult(stdout: string): BootHookResult | undefined {
  const status = /^status=(installed|updated|present|conflict|inactive|unsupported)$/m.exec(stdout)?.[1] as
    BootHookResult['status'] | undefined;
  if (!status) return undefined;
  const removed = /^removed=(\/\S+)$/m.exec(stdout)?.[1];
  const extra = removed ? { removed } : {};
  if (status === 'unsupported') return { status, ...extra };
  const found = parseBootMechanisms(stdout);
  const ours = (m: BootMechanism) => m.path === BOOT_HOOK_PATH || m.path === BOOT_UNIT_PATH;
  const pickers: Record<'present' | 'conflict' | 'inactive', (m: BootMechanism) => boolean> = {
    present: (m) => m.loadsRules && m.state === 'ok',
    conflict: (m) => !m.loadsRules,
    inactive: (m) => m.loadsRules,
  };
  // The installed or updated one is printed last, after the detection that ran before the script wrote.
  const mechanism =
    status === 'installed' || status === 'updated' ? found.filter(ours).at(-1) : found.find(pickers[status]);
  return mechanism ? { status, mechanism, ...extra } : undefined;
}

/** One line for a person: what the boot hook step did, and what is left to do. */
export function describeBootHookResult(r: BootHookResult, rules: string): string {
  const m = r.mechanism;
  const removed = r.removed ? ` (removed ${r.removed}, which nothing on this host runs)` : '';
  if (!m)
    return `not loaded at boot: neither ifupdown nor systemd runs on this host, so nothing would run a boot hook${removed}; load ${rules} at boot another way, or install ifupdown`;
  switch (r.status) {
    case 'installed':
      return m.state === 'ok'
        ? `boot hook installed: ${m.path}${removed}`
        : `boot hook installed: ${m.path}, but ${whyInactive(m)}`;
    case 'updated':
      return m.state === 'ok'
        ? `boot hook updated: ${m.path} (it differed from what this fwgen writes)`
        : `boot hook updated: ${m.path} (it differed from what this fwgen writes), but ${whyInactive(m)}`;
    case 'present':
      return `boot: ${m.path} already loads ${rules}${removed}`;
    case 'conflict':
      return `boot: left alone: ${m.path} (${m.kind}) loads other iptables rules at boot, not ${rules}`;
    case 'inactive':
      return `boot: left alone: ${m.path} loads ${rules} at boot, but ${whyInactive(m)}`;
    case 'unsupported':
      return `not loaded at boot${removed}`;
  }
}

/** Why a boot mechanism will not run, in words. */
export function whyInactive(m: BootMechanism): string {
  switch (m.state) {
    case 'ok':
      return 'it runs';
    case 'no-ifupdown':
      return 'ifupdown is not installed, so if-pre-up.d hooks never run';
    case 'not-executable':
      return 'it is not executable, so run-parts skips it';
    case 'bad-name':
      return 'its name has characters other than letters, digits, _ and -, so run-parts skips it';
    case 'disabled':
      return 'it is not enabled';
  }
}

/**
 * This fwgen's boot-hook step, as a short digest of the shell that decides and writes the hook: the step
 * leaves it on the host (`<rules_path>.fwgen-boot`) where the rules load at boot, and ship skips the step
 * while the read step finds it. Another version's hook text means another digest: the step runs again.
 */
export const BOOT_MARKER: string = sha256(Buffer.from(remoteFile('boot.sh') + remoteFile('boot-hook.sh'))).slice(0, 16);

/** Ship's boot-hook step: installs a boot hook where nothing loads the rules at boot, or rewrites fwgen's own. */
export function bootHookCall(paths: RemotePaths, marker = BOOT_MARKER): RemoteCall {
  return step('boot-hook', 'boot-hook.sh', [paths.rules, paths.rules6, marker]);
}

/** What a host's boot-hook step came to, as a ship reports it. */
export interface BootReport {
  /**
   * The step's status, or `failed` when it printed none (it could not run, or could not write);
   * `removed`: `fwgen remove` took fwgen's boot hook (if any) off the host.
   */
  readonly status: BootHookResult['status'] | 'failed' | 'removed';
  /** The rules load at boot now (installed, updated or present, and the mechanism runs). */
  readonly ok: boolean;
  /** The hook, unit or other mechanism concerned; null when there is none. */
  readonly path: string | null;
  /** One line for a person. */
  readonly detail: string;
}

/** Pure: a boot-hook step's output as a report. */
export function bootReport(r: { code: number; stdout: string; stderr: string }, rules: string): BootReport {
  const res = parseBootHookResult(r.stdout);
  if (!res) {
    const why = lastErrorLine(r.stderr) ?? `exit ${r.code}`;
    return { status: 'failed', ok: false, path: null, detail: `boot hook step failed: ${why}` };
  }
  const loads = ['installed', 'updated', 'present'].includes(res.status) && res.mechanism?.state === 'ok';
  return {
    status: res.status,
    ok: loads,
    path: res.mechanism?.path ?? null,
    detail: describeBootHookResult(res, rules),
  };
}

/** Runs ship's boot-hook step on an open session and says what it came to. */
export async function runBootHook(session: Session, paths: RemotePaths): Promise<BootReport> {
  return bootReport(await session.run(bootHookCall(paths)), paths.rules);
}

/** `fwgen remove`: takes fwgen's own boot hook or unit, its marker and the state file off a host. */
export function bootRemoveCall(paths: RemotePaths): RemoteCall {
  return step('boot-remove', 'boot-remove.sh', [paths.rules, paths.rules6]);
}

/** Pure: what remote/boot-remove.sh printed: the files it removed, or undefined when it did not finish. */
export function parseBootRemove(stdout: string): { readonly removed: readonly string[] } | undefined {
  if (!/^status=removed$/m.test(stdout)) return undefined;
  return { removed: [...stdout.matchAll(/^removed=(\/\S+)$/gm)].map((m) => m[1]) };
}

/** Runs the boot-remove step on an open session; reported as a boot step (`removed`, or `failed`). */
export async function runBootRemove(session: Session, paths: RemotePaths): Promise<BootReport> {
  const r = await session.run(bootRemoveCall(paths));
  const res = parseBootRemove(r.stdout);
  if (!res) {
    const why = lastErrorLine(r.stderr) ?? `exit ${r.code}`;
    return { status: 'failed', ok: false, path: null, detail: `boot-remove step failed: ${why}` };
  }
  const hook = res.removed.find((p) => p === BOOT_HOOK_PATH || p === BOOT_UNIT_PATH) ?? null;
  const what = res.removed.length > 0 ? `removed ${res.removed.join(', ')}` : 'nothing of fwgen left for boot';
  return { status: 'removed', ok: true, path: hook, detail: `boot: ${what}` };
}
