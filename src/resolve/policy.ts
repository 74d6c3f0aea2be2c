import type { Family, ForwardMode, PortSpec, SetsMode } from '../inventory/model.js';

/** A fleet-trust source: inventory addresses merged into one CIDR. */
export interface FleetSource {
  readonly cidr: string;
  /** Comment text: `web/web1` for one host, `12 hosts of db web` for a merged CIDR. */
  readonly label: string;
}

/** One resolved allow entry: a source network (merged per rule and port) may reach one port. */
export interface AllowEntry {
  readonly cidr: string;
  /**
   * What the source was written as: `web/web1` for a role, `web1` for a host, the CIDR itself; for a CIDR
   * merged from several sources, a count and where they came from: `5 hosts of web worker`.
   */
  readonly via: string;
  readonly label: string;
  readonly port: PortSpec;
}

/** A merged address list that becomes one ipset (`sets: ipset`), with what it stands for in comments. */
export interface AddressList {
  /** Merged CIDRs, sorted by address. */
  readonly cidrs: readonly string[];
  /** Comment text for the whole list: `web/web1`, `12 hosts of db web`. */
  readonly via: string;
}

/** One `allow` or `monitoring` rule's sources as a list (merged over the rule, not per port), and its ports. */
export interface AllowList extends AddressList {
  /** `allow#1` or `monitoring#1`. */
  readonly label: string;
  readonly ports: readonly PortSpec[];
}

/** The address lists of a role's rules in ipset mode; fleet, management and monitoring lists are shared by roles. */
export interface SetLists {
  readonly fleet: AddressList;
  readonly management: AddressList;
  readonly allow: readonly AllowList[];
}

/** Everything one role's rules file for one family needs, resolved, sorted and de-duplicated. */
export interface RolePolicy {
  readonly role: string;
  readonly family: Family;
  readonly hosts: readonly string[];
  readonly interface?: string;
  /** `127.0.0.0/8` or `::1/128`. */
  readonly loopback: string;
  /** Management networks, merged into the fewest CIDRs. */
  readonly management: readonly string[];
  readonly sshPorts: readonly number[];
  /** Shared by every role of the family: the renderer renders it once. Merged into the fewest CIDRs. */
  readonly fleet: readonly FleetSource[];
  readonly public: boolean;
  readonly publicPorts: readonly PortSpec[];
  readonly ports: readonly PortSpec[];
  readonly allow: readonly AllowEntry[];
  /** `reject`: fwgen's FORWARD chain rejects; `leave`: fwgen has no FORWARD chain and leaves FORWARD alone. */
  readonly forward: ForwardMode;
  /** `ipset`: rules match the address lists of `lists` as named sets. */
  readonly sets: SetsMode;
  /** The address lists as sets: present in ipset mode. */
  readonly lists?: SetLists;
  /** Template file to render with. */
  readonly template: string;
}
