// The start-up check: every sealed value in the database must be one these secrets can open, or the
// gate does not start, naming the rows. Only the first characters of each value are read (its key
// id: which secret sealed it), so the check costs a few bytes a row however big the configs are; a
// value altered past its key id is refused when it is read (SealedBox.open), never served.
import { SEALED_COLUMNS } from '../storage/rows.js';
import type { SealedColumn, StorageTx } from '../storage/storage.js';
import { isSealed, keyIdOf, SEALED_HEAD_CHARS, type SealedBox } from './sealed-box.js';

/** Rows read per statement while scanning a column. */
export const SCAN_BATCH = 1000;

/** How many row ids a message names per column before it says "and N more". */
const NAMED_ROWS = 10;

export interface UnreadableColumn {
  column: SealedColumn;
  /** Values in plaintext (from before sealing, or put there by hand). */
  plaintext: string[];
  /** Values sealed with a secret not given, by key id. */
  unknownKey: Map<string, string[]>;
}

export interface SealedCheck {
  /** Values scanned per column, "table.column" -> count. */
  counts: Record<string, number>;
  /** Values sealed per key id, over all columns. */
  byKey: Record<string, number>;
  unreadable: UnreadableColumn[];
}

/** Scans every sealed column (key ids only) and sorts what it finds. */
export async function checkSealedValues(storage: StorageTx, box: SealedBox): Promise<SealedCheck> {
  const out: SealedCheck = { counts: {}, byKey: {}, unreadable: [] };
  for (const column of SEALED_COLUMNS) {
    const bad: UnreadableColumn = { column, plaintext: [], unknownKey: new Map() };
    let n = 0;
    for (let after: string | null = null; ; ) {
      const rows = await storage.scanSealedColumn(column, after, SCAN_BATCH, SEALED_HEAD_CHARS);
      for (const r of rows) {
        n++;
        const keyId = keyIdOf(r.value);
        if (keyId === undefined) {
          // a head in the sealed format whose key id is cut or altered counts as unknown, not plaintext
          if (isSealed(r.value)) bad.unknownKey.set('?', [...(bad.unknownKey.get('?') ?? []), r.id]);
          else bad.plaintext.push(r.id);
          continue;
        }
        out.byKey[keyId] = (out.byKey[keyId] ?? 0) + 1;
        if (!box.canOpen(keyId)) bad.unknownKey.set(keyId, [...(bad.unknownKey.get(keyId) ?? []), r.id]);
      }
      if (rows.length < SCAN_BATCH) break;
      after = (rows[rows.length - 1] as { id: string }).id;
    }
    out.counts[`${column.table}.${column.column}`] = n;
    if (bad.plaintext.length > 0 || bad.unknownKey.size > 0) out.unreadable.push(bad);
  }
  return out;
}

function rowList(ids: string[]): string {
  const shown = ids.slice(0, NAMED_ROWS).join(', ');
  return ids.length > NAMED_ROWS ? `${shown} and ${ids.length - NAMED_ROWS} more` : shown;
}

/** What the check found wrong, one line per column and problem; empty when everything opens. */
export function describeUnreadable(check: SealedCheck): string[] {
  const lines: string[] = [];
  for (const u of check.unreadable) {
    const name = `${u.column.table}.${u.column.column}`;
    if (u.plaintext.length > 0) {
      lines.push(`${name}: ${u.plaintext.length} value(s) in plaintext, not sealed (rows ${rowList(u.plaintext)}): values from before secrets.system was set are sealed by \`talos-gate db reencrypt\` (run it once, then start the gate)`);
    }
    for (const [keyId, ids] of u.unknownKey) {
      lines.push(`${name}: ${ids.length} value(s) sealed with a system secret not in secrets.system (key id ${keyId}; rows ${rowList(ids)}): add that secret after the first one`);
    }
  }
  return lines;
}
