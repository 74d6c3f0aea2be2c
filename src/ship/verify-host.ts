import { createHash } from 'node:crypto';
import { parseStatus, prologue, type ScriptVars } from './remote-scripts.js';
import type { Effects, HostJob, HostResult, RunSettings } from './ship-host.js';

/** Checks over a new connection that a host's rules file and live rules are the ones shipped. */
export async function verifyHost(job: HostJob, s: RunSettings, fx: Effects): Promise<string | undefined> {
  const vars: ScriptVars = { paths: job.paths, id: s.id, ipv6: job.v6 !== undefined };
  const want4 = sha256(job.v4);
  const want6 = job.v6 ? sha256(job.v6) : '';
  try {
    const session = await fx.transport.connect({ name: job.host.name, ssh: job.host.ssh, acceptNew: false, timeoutMs: s.connectTimeoutMs });
    try {
      const r = await session.run(`${prologue(vars, { WANT4: want4, WANT6: want6 })}
sum() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
[ "$(sum "$RULES")" = "$WANT4" ] || { echo "status=file-differs"; exit 0; }
live_matches iptables-save "$RULES" || { echo "status=live-differs"; exit 0; }
if [ "$HAS6" = 1 ]; then
  [ "$(sum "$RULES6")" = "$WANT6" ] || { echo "status=file-differs"; exit 0; }
  live_matches ip6tables-save "$RULES6" || { echo "status=live-differs"; exit 0; }
fi
echo "status=in-sync"
`);
      const status = parseStatus(r.stdout).status;
      return status === 'in-sync' ? undefined : `check after the wave: ${status === 'file-differs' ? 'the rules file is not the one shipped' : status === 'live-differs' ? 'the live rules differ from the rules file' : `unexpected answer (${r.stderr.trim() || r.code})`}`;
    } finally {
      session.close();
    }
  } catch (err) {
    return `check after the wave: new SSH connection failed (${(err as Error).message})`;
  }
}

/** Turns a host that failed its post-wave check into a failure. */
export function failVerification(r: HostResult, reason: string): HostResult {
  return { ...r, outcome: 'failed', reason };
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
