import type Ipaddr from 'ipaddr.js';
import type { Host, Inventory } from '../inventory/model.js';
import { parseSets } from '../model/sets.js';
import type { Reach } from '../remote/reach.js';
import { requireCjs } from '../util/require-cjs.js';
import { checkRulesText, describeVerdict, type SshVerdict } from './lockout.js';
import { sshSourceFor, type SshSource } from './lockout-source.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/** A host and the rules it would get (a ship job is one). */
export interface LockoutSubject {
  readonly host: Host;
  readonly v4: Buffer;
  readonly v6?: Buffer;
  readonly sets?: Buffer;
}

/** The lockout check's answer: every host admits SSH from where it sees it come from, or why not. */
export type LockoutVerdict =
  { readonly ok: true } | { readonly ok: false; readonly problems: readonly string[]; readonly hint: string };

/**
 * Checks that each host's new rules admit SSH from where the host sees it come from (this machine,
 * `--from`/`ssh.source`, or the last jump host). Hosts of a role share one file: evaluated once per
 * role, family, source and port. A source that cannot be determined through a jump host is a problem
 * (the check is never skipped silently); a host this machine has no route to directly cannot be
 * connected to at all, so it cannot be locked out by this run and is left to the connection to report.
 */
export async function checkLockout(
  subjects: readonly LockoutSubject[],
  inv: Inventory,
  reaches: ReadonlyMap<string, Reach>,
  from?: string,
): Promise<LockoutVerdict> {
  const problems: string[] = [];
  let viaJump = false;
  let unknownSource = false;
  const verdicts = new Map<string, SshVerdict>();
  await Promise.all(
    subjects.map(async (job) => {
      const reach = reaches.get(job.host.name)!;
      const port = reach.target.port;
      let source: SshSource;
      try {
        source = await sshSourceFor(job.host, reach, inv, from);
      } catch (err) {
        if (reach.jumps.length === 0) return;
        unknownSource = true;
        const why = (err as Error)?.message ?? String(err);
        problems.push(
          `${job.host.name}: cannot tell which address the host sees SSH come from (the last jump host's address: ${why})`,
        );
        return;
      }
      const v6 = ipaddr.process(source.address).kind() === 'ipv6';
      const rules = v6 ? job.v6 : job.v4;
      if (!rules) return;
      const key = `${job.host.role}|${v6 ? 6 : 4}|${source.address}|${port}`;
      let verdict = verdicts.get(key);
      const sets = job.sets ? setMembers(job.sets) : undefined;
      const probe = { source: source.address, dport: port, ...(sets ? { sets } : {}) };
      if (!verdict) verdicts.set(key, (verdict = checkRulesText(rules.toString('utf8'), probe)));
      if (!verdict.admitted) {
        viaJump ||= reach.jumps.length > 0;
        const why = source.why === 'this machine' ? '' : ` (${source.why})`;
        const what = `the new rules would not admit SSH from ${source.address}${why} to port ${port}`;
        problems.push(`${job.host.name}: ${what} (decided by ${describeVerdict(verdict)})`);
      }
    }),
  );
  if (problems.length === 0) return { ok: true };
  const hint = unknownSource
    ? 'say the address the hosts see SSH come from with --from ADDR or ssh.source in the inventory; nothing was shipped'
    : viaJump
      ? "add the jump host's address to `management` (hosts behind a jump host see SSH come from it); nothing was shipped"
      : "add this machine's network to `management` (or ship from a management host; behind NAT, say the address with --from); nothing was shipped";
  return { ok: false, problems: problems.sort(), hint };
}

const membersCache = new WeakMap<Buffer, Map<string, readonly string[]>>();

/** The members of each set of a host's sets text (shared by the role's hosts). */
function setMembers(text: Buffer): Map<string, readonly string[]> {
  let m = membersCache.get(text);
  if (!m) membersCache.set(text, (m = new Map(parseSets(text.toString('utf8')).sets.map((s) => [s.name, s.members]))));
  return m;
}
