/**
 * Sets of integers as sorted, disjoint, non-touching half-open ranges in one flat array:
 * `[lo0, hi0, lo1, hi1, ...]` with `lo0 < hi0 < lo1 < ...`. The same code serves addresses (numbers
 * for IPv4, bigints for IPv6: only comparisons are used) and services (protocol and port as one number).
 */

type Num = number | bigint;
type Ranges<T extends Num> = readonly T[];

const EMPTY: readonly never[] = [];

/** A set from ranges in any order, overlapping or touching. */
export function fromRanges<T extends Num>(ranges: readonly (readonly [T, T])[]): Ranges<T> {
  const sorted = ranges.filter(([lo, hi]) => lo < hi).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: T[] = [];
  for (const [lo, hi] of sorted) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1]!) {
      if (hi > out[n - 1]!) out[n - 1] = hi;
    } else out.push(lo, hi);
  }
  return out;
}

/** Whether `x` is in the set (binary search). */
export function contains<T extends Num>(set: Ranges<T>, x: T): boolean {
  let lo = 0;
  let hi = set.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (set[2 * mid + 1]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo < set.length / 2 && set[2 * lo]! <= x;
}

/** Index of the first range whose end is after `x`, from `start` on (galloping, then binary search). */
function seek<T extends Num>(set: Ranges<T>, x: T, start: number): number {
  const n = set.length / 2;
  let step = 1;
  let lo = start;
  let hi = start;
  while (hi < n && set[2 * hi + 1]! <= x) {
    lo = hi + 1;
    hi = start + step;
    step *= 2;
  }
  if (hi > n) hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (set[2 * mid + 1]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function push<T extends Num>(out: T[], lo: T, hi: T): void {
  if (!(lo < hi)) return;
  const n = out.length;
  if (n > 0 && out[n - 1]! >= lo) {
    if (hi > out[n - 1]!) out[n - 1] = hi;
  } else out.push(lo, hi);
}

/** The union of two sets. */
export function union<T extends Num>(a: Ranges<T>, b: Ranges<T>): Ranges<T> {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! <= b[j]!)) {
      push(out, a[i]!, a[i + 1]!);
      i += 2;
    } else {
      push(out, b[j]!, b[j + 1]!);
      j += 2;
    }
  }
  return out;
}

/** The intersection of two sets; fast when one is much smaller than the other. */
export function intersect<T extends Num>(a: Ranges<T>, b: Ranges<T>): Ranges<T> {
  if (a.length === 0 || b.length === 0) return EMPTY;
  if (a.length > b.length) [a, b] = [b, a];
  const out: T[] = [];
  let j = 0;
  for (let i = 0; i < a.length; i += 2) {
    const lo = a[i]!;
    const hi = a[i + 1]!;
    j = seek(b, lo, j);
    for (let k = j; k < b.length / 2 && b[2 * k]! < hi; k++) {
      const s = b[2 * k]! > lo ? b[2 * k]! : lo;
      const e = b[2 * k + 1]! < hi ? b[2 * k + 1]! : hi;
      if (s < e) out.push(s, e);
    }
  }
  return out;
}

/** `a` without `b`. */
export function subtract<T extends Num>(a: Ranges<T>, b: Ranges<T>): Ranges<T> {
  if (a.length === 0 || b.length === 0) return a;
  const out: T[] = [];
  let j = 0;
  for (let i = 0; i < a.length; i += 2) {
    let lo = a[i]!;
    const hi = a[i + 1]!;
    j = seek(b, lo, j);
    let k = j;
    while (k < b.length / 2 && b[2 * k]! < hi) {
      if (b[2 * k]! > lo) out.push(lo, b[2 * k]!);
      if (b[2 * k + 1]! > lo) lo = b[2 * k + 1]!;
      if (!(lo < hi)) break;
      k++;
    }
    if (lo < hi) out.push(lo, hi);
  }
  return out;
}

/** Whether two sets hold the same numbers. */
export function equals<T extends Num>(a: Ranges<T>, b: Ranges<T>): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
