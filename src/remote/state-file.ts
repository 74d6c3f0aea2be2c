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
}

/** The state file's text. */
export function formatState(record: StateRecord): string {
  return JSON.stringify(record);
}

/** What a status read needs of a state file: undefined when it is not one fwgen wrote. */
export type ShippedRecord = Pick<StateRecord, 'fwgen' | 'commit' | 'shippedAt' | 'shippedBy'> & {
  readonly restoredFrom?: string | null;
};

/** Parses a host's state file (host-supplied text: every field is checked for its type). */
export function parseState(json: string): ShippedRecord | undefined {
  try {
    const s = JSON.parse(json) as Record<string, unknown>;
    const str = (k: string): string | undefined => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
    const [fwgen, shippedAt, shippedBy] = [str('fwgen'), str('shippedAt'), str('shippedBy')];
    if (!fwgen || !shippedAt || !shippedBy) return undefined;
    return {
      fwgen,
      commit: str('commit') ?? null,
      shippedAt,
      shippedBy,
      ...(str('restoredFrom') ? { restoredFrom: str('restoredFrom') } : {}),
    };
  } catch {
    return undefined;
  }
}
