import type { Family, ForwardMode, PortSpec } from '../inventory/model.js';

/** A fleet-trust source: one inventory address. */
export interface FleetSource {
  readonly cidr: string;
  readonly host: string;
  readonly role: string;
}

/** One resolved allow entry: a source network may reach one port. */
export interface AllowEntry {
  readonly cidr: string;
  /** What the source was written as: `web/web1` for a role, `web1` for a host, the CIDR itself. */
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
  readonly management: readonly string[];
  readonly sshPorts: readonly number[];
  /** Shared by every role of the family: the renderer renders it once. */
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
