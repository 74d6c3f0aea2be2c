/**
 * A region of connections to one host: which remote addresses, on which services. Kept as a function
 * of the service, piecewise constant: segments `[bounds[i], bounds[i+1])` of the service numbers, each
 * with the set of remote addresses it holds. Segments share sets by reference, and every operation
 * computes each distinct pair of sets once, so a 10,000-address fleet set costs one merge per rule,
 * not one per port.
 */
import type { AddrSet } from './addresses.js';
import { equals, intersect, subtract, union } from './intervals.js';
import { SERVICE_END, type ServiceSet } from './services.js';

export interface Region {
  /** Starts at 0, ends at SERVICE_END; one more entry than `sets`. */
  readonly bounds: readonly number[];
  readonly sets: readonly AddrSet[];
}

const NONE: AddrSet = [];

/** The empty region. */
export const EMPTY_REGION: Region = { bounds: [0, SERVICE_END], sets: [NONE] };

/** The services of `svc`, each from the addresses of `addrs`. */
export function box(svc: ServiceSet, addrs: AddrSet): Region {
  const bounds: number[] = [0];
  const sets: AddrSet[] = [];
  for (let i = 0; i < svc.length; i += 2) {
    if (svc[i]! > bounds[bounds.length - 1]!) {
      sets.push(NONE);
      bounds.push(svc[i]!);
    }
    sets.push(addrs);
    bounds.push(svc[i + 1]!);
  }
  if (bounds[bounds.length - 1]! < SERVICE_END) {
    sets.push(NONE);
    bounds.push(SERVICE_END);
  }
  return normalize(bounds, sets);
}

/** Whether the region holds no connection. */
export function isEmptyRegion(r: Region): boolean {
  return r.sets.every((s) => s.length === 0);
}

type SetOp = (a: AddrSet, b: AddrSet) => AddrSet;

/** Applies `op` segment by segment over both regions' bounds; each distinct pair of sets once. */
export function combine(a: Region, b: Region, op: SetOp): Region {
  const memo = new Map<AddrSet, Map<AddrSet, AddrSet>>();
  const apply = (x: AddrSet, y: AddrSet): AddrSet => {
    let inner = memo.get(x);
    if (!inner) memo.set(x, (inner = new Map()));
    let r = inner.get(y);
    if (r === undefined) inner.set(y, (r = op(x, y)));
    return r;
  };
  const bounds: number[] = [0];
  const sets: AddrSet[] = [];
  let i = 0;
  let j = 0;
  while (i < a.sets.length && j < b.sets.length) {
    const end = Math.min(a.bounds[i + 1]!, b.bounds[j + 1]!);
    sets.push(apply(a.sets[i]!, b.sets[j]!));
    bounds.push(end);
    if (a.bounds[i + 1] === end) i++;
    if (b.bounds[j + 1] === end) j++;
  }
  return normalize(bounds, sets);
}

const unite: SetOp = (x, y) => (x.length === 0 ? y : y.length === 0 ? x : union(x, y));
const meet: SetOp = (x, y) => (x.length === 0 || y.length === 0 ? NONE : intersect(x, y));
const minus: SetOp = (x, y) => (x.length === 0 || y.length === 0 ? x : subtract(x, y));

export const unionRegion = (a: Region, b: Region): Region => combine(a, b, unite);
export const intersectRegion = (a: Region, b: Region): Region => combine(a, b, meet);
export const subtractRegion = (a: Region, b: Region): Region => combine(a, b, minus);

/** Splits a region by a box: the part inside it (`hit`) and the rest. `addrs` undefined: every address. */
export function splitRegion(r: Region, svc: ServiceSet, addrs: AddrSet | undefined): { hit: Region; rest: Region } {
  if (addrs === undefined) {
    const all = box(svc, FULL_MARK);
    return {
      hit: combine(r, all, (x, y) => (y === FULL_MARK ? x : NONE)),
      rest: combine(r, all, (x, y) => (y === FULL_MARK ? NONE : x)),
    };
  }
  const b = box(svc, addrs);
  return { hit: intersectRegion(r, b), rest: subtractRegion(r, b) };
}

/** A marker standing for "every address" inside splitRegion (never returned; no real set holds -1). */
const FULL_MARK: AddrSet = Object.freeze([-2, -1]);

/** The segments of a region that hold addresses, as `[lo, hi, set]`. */
export function segments(r: Region): [number, number, AddrSet][] {
  const out: [number, number, AddrSet][] = [];
  for (let i = 0; i < r.sets.length; i++) {
    if (r.sets[i]!.length > 0) out.push([r.bounds[i]!, r.bounds[i + 1]!, r.sets[i]!]);
  }
  return out;
}

/** The services whose set of addresses passes `test`. */
export function servicesWhere(r: Region, test: (set: AddrSet) => boolean): ServiceSet {
  const out: number[] = [];
  for (let i = 0; i < r.sets.length; i++) {
    if (!test(r.sets[i]!)) continue;
    const lo = r.bounds[i]!;
    const hi = r.bounds[i + 1]!;
    if (out.length > 0 && out[out.length - 1] === lo) out[out.length - 1] = hi;
    else out.push(lo, hi);
  }
  return out;
}

/** Merges neighbouring segments holding the same set. */
function normalize(bounds: number[], sets: AddrSet[]): Region {
  const b: number[] = [bounds[0]!];
  const s: AddrSet[] = [];
  for (let i = 0; i < sets.length; i++) {
    const last = s[s.length - 1];
    if (last !== undefined && (last === sets[i] || equals(last, sets[i]!))) b[b.length - 1] = bounds[i + 1]!;
    else {
      s.push(sets[i]!);
      b.push(bounds[i + 1]!);
    }
  }
  return { bounds: b, sets: s };
}
