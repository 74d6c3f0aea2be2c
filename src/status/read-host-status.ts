import { EXIT, parseStatus, prologue, type RemotePaths } from '../ship/remote-scripts.js';
import { TransportError, type Session } from '../ship/transport.js';

/** What a status read needs to know about the host: where the rules live, and whether IPv6 is managed. */
export interface StatusVars {
  readonly paths: RemotePaths;
  readonly ipv6: boolean;
}

/** Everything one status read brings back from a host; `undefined` means the file does not exist. */
export interface RemoteStatus {
  /** `<rules_path>.fwgen-state.json`, as the commit step wrote it. */
  readonly stateJson?: string;
  readonly file4?: string;
  /** `iptables-save -t filter`. */
  readonly live4: string;
  readonly file6?: string;
  /** `ip6tables-save -t filter`, when the inventory has IPv6. */
  readonly live6?: string;
  /** Backups kept (`<rules_path>.bak.*.live`). */
  readonly backups: number;
  /** A dead-man switch is armed (`<rules_path>.fwgen-armed.*`): a ship is in flight, or was cut off. */
  readonly armed: boolean;
  /** A ship holds the lock. */
  readonly locked: boolean;
}

/** A status read: what the host holds, or why it could not be read. */
export type RemoteRead = { readonly ok: true; readonly status: RemoteStatus } | { readonly ok: false; readonly reason: string };

/**
 * Prints, each as a byte-count line then the bytes (`-1` when absent): the state file, the IPv4 rules
 * file, the live IPv4 filter table, and with IPv6 the same two for IPv6; then a `status=read` line
 * with the backup count and whether a ship is in flight. Reads only; changes nothing on the host.
 */
export function statusScript(v: StatusVars): string {
  return `${prologue({ paths: v.paths, id: 'status', ipv6: v.ipv6 })}
T=$(mktemp) || fail 1 "mktemp failed"
trap 'rm -f "$T" "$T.err"' EXIT
section() { if [ -f "$1" ]; then wc -c < "$1"; cat "$1"; else echo -1; fi; }
live() {
  command -v "$1" >/dev/null 2>&1 || fail ${EXIT.missingTool} "$1 not found on the host (install iptables)"
  "$1" -t filter > "$T" 2> "$T.err" || fail 1 "$1 failed: $(head -c 400 "$T.err" | tr '\\n' ' ')"
  section "$T"
}
section "$STATE"
section "$RULES"
live iptables-save
if [ "$HAS6" = 1 ]; then section "$RULES6"; live ip6tables-save; fi
backups=$(ls -1 "$RULES".bak.*.live 2>/dev/null | wc -l)
armed=$(ls -1d "$RULES".fwgen-armed.* 2>/dev/null | wc -l)
if [ -d "$LOCK" ]; then locked=1; else locked=0; fi
echo "status=read backups=$backups armed=$armed locked=$locked"
`;
}

/** Reads a host's fwgen state, rules files and live filter tables in one command; never throws for a host's failure. */
export async function readHostStatus(session: Session, v: StatusVars): Promise<RemoteRead> {
  let r;
  try {
    r = await session.run(statusScript(v));
  } catch (err) {
    return { ok: false, reason: err instanceof TransportError ? err.message : `connection lost: ${(err as Error)?.message ?? String(err)}` };
  }
  if (r.code !== 0) {
    const msg = r.stderr.trim().split('\n').filter(Boolean).pop()?.replace(/^fwgen: /, '');
    return { ok: false, reason: `could not read the rules: ${msg || `status script exited with ${r.code}`}` };
  }
  return parseStatusOutput(r.stdout, v.ipv6);
}

/** Splits the status script's output into its sections. */
export function parseStatusOutput(stdout: string, ipv6: boolean): RemoteRead {
  const { sections, rest } = splitSections(Buffer.from(stdout, 'utf8'), ipv6 ? 5 : 3);
  const tail = parseStatus(rest);
  if (tail.status !== 'read' || sections.length !== (ipv6 ? 5 : 3)) return { ok: false, reason: 'could not read the rules: the status output was cut short' };
  const [stateJson, file4, live4, file6, live6] = sections;
  return {
    ok: true,
    status: {
      stateJson,
      file4,
      live4: live4 ?? '',
      ...(ipv6 ? { file6, live6: live6 ?? '' } : {}),
      backups: Number(tail.backups) || 0,
      armed: Number(tail.armed) > 0,
      locked: tail.locked === '1',
    },
  };
}

function splitSections(out: Buffer, count: number): { sections: (string | undefined)[]; rest: string } {
  const sections: (string | undefined)[] = [];
  let rest = out;
  while (sections.length < count) {
    const nl = rest.indexOf(10);
    const size = nl < 0 ? NaN : Number(rest.subarray(0, nl).toString().trim());
    if (!Number.isInteger(size) || rest.length < nl + 1 + Math.max(size, 0)) break;
    rest = rest.subarray(nl + 1);
    sections.push(size < 0 ? undefined : rest.subarray(0, size).toString('utf8'));
    rest = rest.subarray(Math.max(size, 0));
  }
  return { sections, rest: rest.toString('utf8') };
}
