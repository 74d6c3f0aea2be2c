/**
 * `<rules_path>.fwgen-state.json`: what the last run that changed a host recorded there (the commit
 * step writes it, status reads it). One format, here.
 */
export interface StateRecord {
  /** fwgen's version. */
  readonly fwgen: string;
  readonly run: string;
  readonly role: string;
  readonly host: string;
  readonly inventory: string;
  /** Inventory git commit (`+dirty` when the inventory had uncommitted changes); null outside git. */
  readonly commit: string | null;
  readonly shippedAt: string;
  readonly shippedBy: string;
  /** The backup this run made of the previous rules (null: there was nothing to back up). */
  readonly backup: string | null;
  /** The backup a `fwgen rollback` restored, when the run was a rollback. */
  readonly restoredFrom: string | null;
  /**
   * A rollback: the ship whose rules the host runs again, as that ship recorded it (null when the
   * backup does not say: one made before fwgen kept state files with its backups, or before any ship).
   */
  readonly runs?: ShipOf | null;
  /** A rollback past fwgen's first ship: none of fwgen's chains are left; the host runs its previous firewall. */
  readonly fwgenRemoved?: boolean;
}

/** What a state file says of the ship that put the rules in place. */
export interface ShipOf {
  readonly fwgen: string;
  readonly commit: string | null;
  readonly shippedAt: string;
  readonly shippedBy: string;
}

/** The rollback a state file records. */
export interface RollbackRecord {
  /** The backup restored. */
  readonly to: string;
  /** When the rollback ran, and who ran it. */
  readonly at: string;
  readonly by: string;
  readonly fwgenRemoved: boolean;
}

/** The state file's text. */
export function formatState(record: StateRecord): string {
  return JSON.stringify(record);
}

/**
 * What a status read needs of a state file: undefined when it is not one fwgen wrote. The ship whose
 * rules the host runs (after a rollback, the ship it went back to; unknown fields as `-`), and the
 * rollback when the last run was one.
 */
export type ShippedRecord = ShipOf & {
  readonly restoredFrom?: string | null;
  readonly rollback?: RollbackRecord;
};

/** Parses a host's state file (host-supplied text: every field is checked for its type). */
export function parseState(json: string): ShippedRecord | undefined {
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const own = shipOf(s);
  if (!own) return undefined;
  const to = typeof s.restoredFrom === 'string' ? s.restoredFrom : undefined;
  if (!to) return own;
  const fwgenRemoved = s.fwgenRemoved === true;
  const runs = typeof s.runs === 'object' && s.runs !== null ? shipOf(s.runs as Record<string, unknown>) : undefined;
  return {
    fwgen: runs?.fwgen ?? own.fwgen,
    commit: fwgenRemoved ? null : (runs?.commit ?? null),
    shippedAt: runs?.shippedAt ?? '-',
    shippedBy: runs?.shippedBy ?? '-',
    restoredFrom: to,
    rollback: { to, at: own.shippedAt, by: own.shippedBy, fwgenRemoved },
  };
}

function shipOf(s: Record<string, unknown>): ShipOf | undefined {
  const str = (k: string): string | undefined => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
  const [fwgen, shippedAt, shippedBy] = [str('fwgen'), str('shippedAt'), str('shippedBy')];
  if (!fwgen || !shippedAt || !shippedBy) return undefined;
  return { fwgen, commit: str('commit') ?? null, shippedAt, shippedBy };
}

/**
 * What a rollback to a backup restores, from the state file the backup kept (what ran before the run
 * that made it): the ship it records, or, when that was a rollback too, what that one restored.
 */
export function shipBefore(backupState: string | undefined): ShipOf | null {
  if (backupState === undefined) return null;
  try {
    const s = JSON.parse(backupState) as Record<string, unknown>;
    if (typeof s.restoredFrom !== 'string') return shipOf(s) ?? null;
    if (s.fwgenRemoved === true) return null;
    return typeof s.runs === 'object' && s.runs !== null ? (shipOf(s.runs as Record<string, unknown>) ?? null) : null;
  } catch {
    return null;
  }
}
