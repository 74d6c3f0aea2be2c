/**
 * Services (a protocol and a port) as one number, so that sets of them are interval sets:
 * tcp port p is p, udp port p is 65536 + p. Only tcp and udp are modelled.
 */
import type { Proto } from '../inventory/model.js';
import { subtract } from './intervals.js';
import type { PortRange } from './rule-match.js';

export type { Proto };

/** A set of services: sorted half-open ranges, as in intervals.ts. */
export type ServiceSet = readonly number[];

export const UDP_BASE = 65536;
export const SERVICE_END = 2 * UDP_BASE;

/** Every tcp and udp port from 1 to 65535 (port 0 is no port a connection uses). */
export const ALL_SERVICES: ServiceSet = [1, UDP_BASE, UDP_BASE + 1, SERVICE_END];

/** Every service of a protocol, port 0 included (what `-p tcp` matches). */
export const PROTO_SERVICES: Readonly<Record<Proto, ServiceSet>> = {
  tcp: [0, UDP_BASE],
  udp: [UDP_BASE, SERVICE_END],
};

/** The number of a protocol's port. */
export function service(proto: Proto, port: number): number {
  return proto === 'tcp' ? port : UDP_BASE + port;
}

/** The protocol and port of a service number. */
export function serviceOf(n: number): { proto: Proto; port: number } {
  return n >= UDP_BASE ? { proto: 'udp', port: n - UDP_BASE } : { proto: 'tcp', port: n };
}

/** Ports (inclusive ranges) on both protocols, as services. */
export function portServices(ranges: readonly PortRange[]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of ranges) {
    out.push([a, b + 1], [UDP_BASE + a, UDP_BASE + b + 1]);
  }
  return out;
}

/** `tcp/5432`, `udp/161`, `tcp/8000-8100` for a half-open range of services of one protocol. */
export function formatServiceRange(lo: number, hi: number): string {
  const a = serviceOf(lo);
  const b = serviceOf(hi - 1);
  return a.port === b.port ? `${a.proto}/${a.port}` : `${a.proto}/${a.port}-${b.port}`;
}

/**
 * A set of services as the port texts a reader expects: `every port` for all of tcp and udp, else
 * `tcp/22`, `tcp/8000-8100`, `every tcp port`, ... (a range crossing from tcp to udp is split).
 */
export function describeServices(set: ServiceSet): string[] {
  if (covers(set, ALL_SERVICES)) return ['every port'];
  // A set with fewer gaps than ranges reads better as what it leaves out.
  const missing = subtract(ALL_SERVICES, set);
  if (missing.length < set.length && missing.length <= 8)
    return [`every port except ${listRanges(missing).join(', ')}`];
  return listRanges(set);
}

function listRanges(set: ServiceSet): string[] {
  const out: string[] = [];
  for (let i = 0; i < set.length; i += 2) {
    let lo = set[i]!;
    const hi = set[i + 1]!;
    if (lo < UDP_BASE && hi > UDP_BASE) {
      out.push(protoRange(lo, UDP_BASE));
      lo = UDP_BASE;
    }
    if (lo < hi) out.push(protoRange(lo, hi));
  }
  return out.filter((t) => t !== '');
}

/** Machine form of one protocol's range (JSON): `tcp/5432`, `tcp/1-65535`. */
export function serviceRanges(set: ServiceSet): string[] {
  const out: string[] = [];
  for (let i = 0; i < set.length; i += 2) {
    let lo = Math.max(set[i]!, 1);
    const hi = set[i + 1]!;
    if (lo < UDP_BASE && hi > UDP_BASE) {
      out.push(formatServiceRange(lo, UDP_BASE));
      lo = UDP_BASE + 1;
    }
    if (lo === UDP_BASE) lo++;
    if (lo < hi) out.push(formatServiceRange(lo, hi));
  }
  return out;
}

function protoRange(lo: number, hi: number): string {
  const base = lo >= UDP_BASE ? UDP_BASE : 0;
  const first = Math.max(lo - base, 1);
  const last = hi - 1 - base;
  if (last < first) return '';
  const proto = base === 0 ? 'tcp' : 'udp';
  if (first <= 1 && last >= 65535) return `every ${proto} port`;
  return first === last ? `${proto}/${first}` : `${proto}/${first}-${last}`;
}

function covers(set: ServiceSet, part: ServiceSet): boolean {
  for (let i = 0; i < part.length; i += 2) {
    const lo = part[i]!;
    const hi = part[i + 1]!;
    let ok = false;
    for (let j = 0; j < set.length && !ok; j += 2) ok = set[j]! <= lo && set[j + 1]! >= hi;
    if (!ok) return false;
  }
  return true;
}
