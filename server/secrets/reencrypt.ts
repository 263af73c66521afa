// `talos-gate db reencrypt`: moves every sealed value to the first system secret, and seals the
// plaintext values kept from before secrets.system existed. Online: each value is replaced only if
// it is still what was read (compare and set), so a gate writing meanwhile wins and nothing newer is
// overwritten. Resumable: values already under the first secret are left alone, so a run cut short
// is simply run again. In batches, so neither backend holds a lock or a big result for long.
import { SEALED_COLUMNS } from '../storage/rows.js';
import type { SealedColumn, StorageTx } from '../storage/storage.js';
import { isSealed, keyIdOf, SealedValueError, type SealedBox } from './sealed-box.js';

/** Values read per batch: configs are up to 1 MiB (machine-config/limits.ts), so a batch stays well under 100 MiB. */
export const REENCRYPT_BATCH = 50;

export interface ColumnCounts {
  /** Values looked at. */
  scanned: number;
  /** Already under the first secret: left alone. */
  current: number;
  /** Moved from an older secret to the first. */
  resealed: number;
  /** Plaintext values sealed. */
  sealed: number;
  /** Written by the gate between this run's read and write: left as the gate wrote them. */
  changedMeanwhile: number;
  /** Values that do not open with any secret given (ids), left untouched. */
  unreadable: { id: string; problem: string }[];
}

export type ReencryptReport = Record<string, ColumnCounts>;

export async function reencrypt(
  storage: StorageTx,
  box: SealedBox,
  opts: { batch?: number; onBatch?: (column: SealedColumn, counts: ColumnCounts) => void } = {},
): Promise<ReencryptReport> {
  const batch = opts.batch ?? REENCRYPT_BATCH;
  const report: ReencryptReport = {};
  for (const column of SEALED_COLUMNS) {
    const counts: ColumnCounts = { scanned: 0, current: 0, resealed: 0, sealed: 0, changedMeanwhile: 0, unreadable: [] };
    report[`${column.table}.${column.column}`] = counts;
    for (let after: string | null = null; ; ) {
      const rows = await storage.scanSealedColumn(column, after, batch);
      for (const { id, value } of rows) {
        counts.scanned++;
        if (keyIdOf(value) === box.primaryKeyId) {
          counts.current++;
          continue;
        }
        const at = { table: column.table, column: column.column, rowId: id };
        let plaintext: string;
        try {
          plaintext = isSealed(value) ? box.open(value, at) : value;
        } catch (e) {
          if (!(e instanceof SealedValueError)) throw e;
          counts.unreadable.push({ id, problem: e.message });
          continue;
        }
        if (await storage.replaceSealedValue(column, id, value, box.seal(plaintext, at))) {
          if (isSealed(value)) counts.resealed++;
          else counts.sealed++;
        } else {
          counts.changedMeanwhile++;
        }
      }
      opts.onBatch?.(column, counts);
      if (rows.length < batch) break;
      after = (rows[rows.length - 1] as { id: string }).id;
    }
  }
  return report;
}
