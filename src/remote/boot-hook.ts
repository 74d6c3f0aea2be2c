import { lastErrorLine, step, type RemoteCall, type RemotePaths } from './scripts.js';
import type { Session } from './transport.js';

/**
 * Where fwgen's own boot hook goes: the Debian ifupdown hook, or a systemd unit where ifupdown is absent
 * (remote/boot.sh `BOOT_HOOK` and `BOOT_UNIT`: the same paths, where the shell writes and compares them).
 */
export const BOOT_HOOK_PATH = '/etc/network/if-pre-up.d/fwgen-iptables';
export const BOOT_UNIT_PATH = '/etc/systemd/system/fwgen-iptables.service';

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
   * fwgen's own hook or unit, differing from what this version writes (`fwgen ship --persist` rewrites it);
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
 * (`inactive`), for a person to decide.
 */
export interface BootHookResult {
  readonly status: 'installed' | 'updated' | 'present' | 'conflict' | 'inactive';
  readonly mechanism: BootMechanism;
}

/** Reads what remote/boot-hook.sh printed; undefined when it printed no status (the script failed). */
export function parseBootHookResult(stdout: string): BootHookResult | undefined {
  const status = /^status=(installed|updated|present|conflict|inactive)$/m.exec(stdout)?.[1] as
    BootHookResult['status'] | undefined;
  if (!status) return undefined;
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
  return mechanism ? { status, mechanism } : undefined;
}

/** One line for a person: what the boot hook step did, and what is left to do. */
export function describeBootHookResult(r: BootHookResult, rules: string): string {
  const m = r.mechanism;
  switch (r.status) {
    case 'installed':
      return m.state === 'ok'
        ? `boot hook installed: ${m.path}`
        : `boot hook installed: ${m.path}, but ${whyInactive(m)}`;
    case 'updated':
      return m.state === 'ok'
        ? `boot hook updated: ${m.path} (it differed from what this fwgen writes)`
        : `boot hook updated: ${m.path} (it differed from what this fwgen writes), but ${whyInactive(m)}`;
    case 'present':
      return `boot: ${m.path} already loads ${rules}`;
    case 'conflict':
      return `boot: left alone: ${m.path} (${m.kind}) loads other iptables rules at boot, not ${rules}`;
    case 'inactive':
      return `boot: left alone: ${m.path} loads ${rules} at boot, but ${whyInactive(m)}`;
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

/** `ship --persist`: installs a boot hook where nothing loads the rules at boot, or rewrites fwgen's own. */
export function bootHookCall(paths: RemotePaths): RemoteCall {
  return step('boot-hook', 'boot-hook.sh', [paths.rules, paths.rules6]);
}

/** `ship --persist`: runs remote/boot-hook.sh on an open session and says what it did, in a few words. */
export async function installBootHook(session: Session, paths: RemotePaths): Promise<string> {
  const r = await session.run(bootHookCall(paths));
  const res = parseBootHookResult(r.stdout);
  return res
    ? describeBootHookResult(res, paths.rules)
    : `boot hook failed: ${lastErrorLine(r.stderr) ?? `exit ${r.code}`}`;
}
