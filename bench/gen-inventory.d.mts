/** Writes a generated benchmark inventory: N hosts in R roles (see gen-inventory.mjs). */
export function generateInventory(
  path: string,
  options?: { hosts?: number; roles?: number; seed?: number; sets?: 'none' | 'ipset' },
): void;
