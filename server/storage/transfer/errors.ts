// What `talos-gate db migrate` and `db backup` refuse, and why, in words that name the flag at fault.
// The CLI (cli/db.ts) maps these to exit codes in one place: a refusal is a usage problem (2), a
// verification that found a difference is a failed run (1).

/** The flags a refusal can be about. */
export type TransferFlag = '--from' | '--to' | '--replace' | '--config' | '--force';

/** Nothing was written: the input named by `flag` cannot be used as it is. */
export class TransferRefusedError extends Error {
  constructor(
    readonly flag: TransferFlag,
    readonly problem: string,
  ) {
    super(`${flag}: ${problem}`);
    this.name = 'TransferRefusedError';
  }
}

/** One table's comparison of what was read from the source with what the target holds. */
export interface TableCheck {
  table: string;
  sourceRows: number;
  targetRows: number;
  sourceSha256: string;
  targetSha256: string;
  ok: boolean;
}

/** The copy ran but what was read back differs from the source; the copy was rolled back. */
export class VerificationFailedError extends Error {
  constructor(readonly report: TableCheck[]) {
    super(`verification failed for ${report.filter((t) => !t.ok).map((t) => t.table).join(', ')}: the copy was rolled back, the target is as it was`);
    this.name = 'VerificationFailedError';
  }
}
