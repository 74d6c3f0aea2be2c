import type { Family, ForwardMode, PortSpec } from '../inventory/model.js';

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
  /** Template file to render with. */
  readonly template: string;
}
