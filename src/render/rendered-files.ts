import type { Family } from '../inventory/model.js';

/** File name of each family's rules file, as `iptables-restore`/`ip6tables-restore` expect them. */
export const RULES_FILE: Record<Family, string> = { ipv4: 'iptables.up.rules', ipv6: 'ip6tables.up.rules' };

/** Where the sets of ipset mode are rendered, once for every role: `ipset restore` format. */
export const SETS_FILE = 'sets/ipset.rules';
