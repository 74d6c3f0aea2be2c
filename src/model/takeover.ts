import { parseRule } from './parse.js';
import { commentOf, targetOf, type Rule } from './ruleset.js';

/** What a ship takes over: the firewall tools whose rules it removes from the built-in chains, and how many. */
export interface Takeover {
  /** `ufw`, `Shorewall`, `firewalld`, `csf`, `Docker`, ... or `hand-written rules`. */
  readonly from: readonly string[];
  readonly removed: number;
}

/** Chain names, LOG prefixes and comments by which a tool's rules are known. */
const TOOLS: readonly { readonly name: string; readonly chain?: RegExp; readonly text?: RegExp }[] = [
  { name: 'ufw', chain: /^ufw6?-/ },
  {
    name: 'Shorewall',
    chain:
      /^(net|fw|loc|dmz|lan|wan)[-2](net|fw|loc|dmz|lan|wan|all)$|^(Reject|Drop|Broadcast|logflags|tcpflags|smurfs|dynamic)$/,
    text: /Shorewall:/,
  },
  { name: 'firewalld', chain: /^(INPUT|FORWARD|OUTPUT)_(direct|ZONES|POLICIES)|^(IN|FWDI|FWDO)_[a-z]/ },
  { name: 'csf', chain: /^(LOCALINPUT|LOCALOUTPUT|ALLOWIN|ALLOWOUT|DENYIN|DENYOUT|LOGDROPIN|INVALID)$/ },
  { name: 'Docker', chain: /^DOCKER/ },
  { name: 'fail2ban', chain: /^(f2b-|fail2ban-)/ },
  { name: 'libvirt', chain: /^LIBVIRT_/, text: /virbr\d/ },
  { name: 'Proxmox VE', chain: /^PVEFW-/ },
  { name: 'OpenWrt fw3', chain: /^(zone|delegate)_/, text: /!fw3/ },
  { name: 'FireHOL', chain: /^(in|out)_[A-Za-z0-9]+($|_)/ },
  { name: 'APF', chain: /^(TALLOW|TDENY|TGALLOW|TGDENY|REFRESH_TEMP|RESET|PROHIBIT|IN_SANITY|OUT_SANITY)$/ },
  { name: 'Firewall Builder', chain: /^(In_|Out_)?RULE_\d+$/, text: /RULE \d+ -- / },
  {
    name: "Arno's iptables-firewall",
    chain: /^(BASE|EXT|INT|POST|DMZ)_(INPUT|FORWARD|OUTPUT)_CHAIN$|^(VALID|SPOOF|RESERVED_NET)_CHK$/,
    text: /AIF:/,
  },
  { name: 'system-config-firewall', chain: /^RH-Firewall-1-INPUT$/ },
  { name: 'mailcow', chain: /^MAILCOW$/ },
];

/** Names the tools behind the leftovers a change removes (each given as its `-A CHAIN ...` line). */
export function describeTakeover(removed: readonly string[]): Takeover | undefined {
  if (removed.length === 0) return undefined;
  // A tool's rules that name no chain of it (ufw's and Shorewall's `-i lo -j ACCEPT`) count as its own.
  const known = new Set(removed.map((line) => toolOf(parseRule(line))).filter((t): t is string => t !== undefined));
  const from = TOOLS.map((t) => t.name).filter((n) => known.has(n));
  return { from: from.length > 0 ? from : ['hand-written rules'], removed: removed.length };
}

function toolOf(rule: Rule | undefined): string | undefined {
  if (!rule) return undefined;
  const target = targetOf(rule)?.target ?? '';
  const text = [commentOf(rule) ?? '', ...rule.args].join(' ');
  return TOOLS.find((t) => (t.chain && t.chain.test(target)) || (t.text && t.text.test(text)))?.name;
}

/** The short line a dry run and an applied row carry: what it takes over and how to get it back. */
export function takeoverLine(t: Takeover, host: string, done: boolean): string {
  return `${done ? 'took' : 'takes'} over from ${t.from.join(', ')}: ${t.removed} rule(s) removed, kept in the backup; \`fwgen rollback --host ${host}\` restores them`;
}
