import type Ipaddr from 'ipaddr.js';
import { requireCjs } from '../util/require-cjs.js';

const ipaddr = requireCjs('ipaddr.js') as typeof Ipaddr;

/** An inclusive port range; a known port is a range of one. */
export type PortRange = readonly [number, number];

/**
 * The ports an SSH client connects from. Clients bind an unprivileged ephemeral port, and NAT keeps a
 * port above 1023 above 1023, so a rule about a privileged port (`--dport 25` in OUTPUT) never meets
 * the replies, while one about 8080 may.
 */
export const CLIENT_PORTS: PortRange = [1024, 65535];

/** One end of a packet: `address` undefined is the host's own address (not known here, not loopback). */
export interface Endpoint {
  readonly address?: string;
  readonly port: PortRange;
}

/** A TCP packet of the SSH connection, as one chain sees it. */
export interface Packet {
  /** Which packets these are, for messages: the connection's first, the client's later ones, the replies. */
  readonly label: 'new connection' | 'client packets' | 'replies';
  readonly state: 'NEW' | 'ESTABLISHED';
  /** conntrack's direction: the client's packets are ORIGINAL, the server's REPLY. */
  readonly dir: 'ORIGINAL' | 'REPLY';
  readonly src: Endpoint;
  readonly dst: Endpoint;
  /** Which interface option means the network side: `-i` for packets coming in, `-o` for going out. */
  readonly iface: '-i' | '-o';
  /** ipset mode: the rendered members of each set, for `-m set --match-set NAME src|dst`. */
  readonly sets?: ReadonlyMap<string, readonly string[]>;
}

export type Match = 'yes' | 'no' | 'unknown';

/** Whether a rule's matches take a packet, and its target with the target's own options. */
export interface Matched {
  readonly match: Match;
  readonly target: string;
  readonly goto: boolean;
}

const LOOPBACK = /^(127\.|::1(\/|$))/;

/**
 * Evaluates a rule's matches against a packet. Only what is certain counts: an option this does not
 * understand makes the match `unknown` (an ACCEPT then does not count, a DROP is assumed to hit).
 */
export function matchRule(args: readonly string[], p: Packet): Matched {
  let match: Match = 'yes';
  let target = '';
  let goto = false;
  let inTarget = false;
  const worse = (m: Match): void => {
    if (m === 'no' || (m === 'unknown' && match === 'yes')) match = m;
  };
  for (let i = 0; i < args.length; i++) {
    // The target's own options (--reject-with, --to-ports, --notrack) follow it, up to the next short option.
    if (inTarget && args[i].startsWith('--')) {
      if (args[i + 1] !== undefined && !args[i + 1].startsWith('-') && args[i + 1] !== '!') i++;
      continue;
    }
    inTarget = false;
    const negate = args[i] === '!';
    if (negate) i++;
    const opt = args[i];
    const val = args[i + 1] ?? '';
    const flip = (m: Match): Match => (!negate || m === 'unknown' ? m : m === 'yes' ? 'no' : 'yes');
    switch (opt) {
      case '-j':
      case '-g':
        target = val;
        goto = opt === '-g';
        inTarget = true;
        i++;
        break;
      case '-s':
        worse(flip(addressIn(val, p.src)));
        i++;
        break;
      case '-d':
        worse(flip(addressIn(val, p.dst)));
        i++;
        break;
      case '-i':
      case '-o':
        // The SSH connection never crosses lo; which other interface it uses is not known here.
        worse(opt === p.iface && val === 'lo' && !negate ? 'no' : 'unknown');
        i++;
        break;
      case '-p':
        worse(flip(['tcp', '6', 'all', '0'].includes(val) ? 'yes' : 'no'));
        i++;
        break;
      case '-m':
        i++;
        break;
      case '--dport':
      case '--destination-port':
        worse(flip(portsIn([val], p.dst.port)));
        i++;
        break;
      case '--sport':
      case '--source-port':
        worse(flip(portsIn([val], p.src.port)));
        i++;
        break;
      case '--dports':
      case '--destination-ports':
        worse(flip(portsIn(val.split(','), p.dst.port)));
        i++;
        break;
      case '--sports':
      case '--source-ports':
        worse(flip(portsIn(val.split(','), p.src.port)));
        i++;
        break;
      case '--ports':
        worse(flip(either(portsIn(val.split(','), p.src.port), portsIn(val.split(','), p.dst.port))));
        i++;
        break;
      case '--ctstate':
      case '--state':
        worse(flip(val.split(',').includes(p.state) ? 'yes' : 'no'));
        i++;
        break;
      case '--ctdir':
        worse(flip(val === p.dir ? 'yes' : 'no'));
        i++;
        break;
      case '--match-set': {
        // Only a set whose members were rendered, matched against a known address, is understood.
        const members = p.sets?.get(val);
        const end = args[i + 2] === 'src' ? p.src : args[i + 2] === 'dst' ? p.dst : undefined;
        if (members === undefined || end === undefined) worse('unknown');
        else worse(flip(anyOf(members.map((m) => addressIn(m, end)))));
        i += 2;
        break;
      }
      case '--comment':
        i++;
        break;
      default:
        // Includes -m limit: a rate-limited rule takes some packets of a flow and not others.
        worse('unknown');
        if (args[i + 1] !== undefined && !args[i + 1].startsWith('-') && args[i + 1] !== '!') i++;
    }
  }
  return { match, target, goto };
}

function either(a: Match, b: Match): Match {
  if (a === 'yes' || b === 'yes') return 'yes';
  return a === 'no' && b === 'no' ? 'no' : 'unknown';
}

/** Whether an endpoint's address is in a CIDR: for the host's own address, only loopback is known (never). */
/** `yes` if any is, else `unknown` if any is, else `no`. */
function anyOf(matches: readonly Match[]): Match {
  return matches.includes('yes') ? 'yes' : matches.includes('unknown') ? 'unknown' : 'no';
}

function addressIn(cidr: string, end: Endpoint): Match {
  if (end.address === undefined) return LOOPBACK.test(cidr) ? 'no' : 'unknown';
  try {
    const addr = ipaddr.process(end.address);
    const full = addr.kind() === 'ipv4' ? 32 : 128;
    const [net, len] = cidr.includes('/') ? ipaddr.parseCIDR(cidr) : [ipaddr.parse(cidr), full];
    return addr.kind() === net.kind() && addr.match(net, len) ? 'yes' : 'no';
  } catch {
    return 'unknown';
  }
}

/** Whether a port list (`22`, `1000:2000`, multiport's `22,80:90`) holds every port of a range, none, or some. */
function portsIn(specs: readonly string[], [lo, hi]: PortRange): Match {
  let covered = false;
  let touched = false;
  for (const spec of specs) {
    // `N:` and `:N` are open ranges; a service name (`ssh`) is not resolved here.
    const [a, b = a] = spec.split(':');
    const from = a === '' ? 0 : Number(a);
    const to = b === '' ? 65535 : Number(b);
    if (!/^\d*$/.test(a) || !/^\d*$/.test(b)) return 'unknown';
    if (from <= lo && to >= hi) covered = true;
    if (from <= hi && to >= lo) touched = true;
  }
  return covered ? 'yes' : touched ? 'unknown' : 'no';
}
