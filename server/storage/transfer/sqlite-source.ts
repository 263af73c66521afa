// The SQLite database `db migrate` copies from, opened read-only and read in one transaction: in
// WAL mode (the gate's, server/storage/sqlite/index.ts) a read transaction sees one snapshot of the
// database from its first read to its end whatever a running gate commits meanwhile (SQLite docs
// "Write-Ahead Logging", section 2.2 "Concurrency"), so the copy is consistent without stopping the
// gate and without blocking it. Integers are read as BigInt (better-sqlite3's safeIntegers), so no
// value above 2^53 is rounded on the way.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { sqliteMigrationsDir } from '../../paths.js';
import { readMigrations } from '../migrate.js';
import { TransferRefusedError } from './errors.js';

export interface SourceColumn {
  name: string;
  /** 1-based position in the primary key, 0 when not part of it (PRAGMA table_info). */
  pk: number;
}

export interface SourceTable {
  name: string;
  columns: SourceColumn[];
}

export interface SqliteSource {
  file: string;
  db: Database.Database;
  schemaVersion: number;
  tables: SourceTable[];
  /** AUTOINCREMENT high-water marks (sqlite_sequence): an id given once is never given again. */
  sequences: Map<string, bigint>;
  close(): void;
}

/** Tables of the file that are SQLite's or the migration runner's own, not the gate's records. */
const NOT_RECORDS = new Set(['schema_migrations', 'sqlite_sequence', 'sqlite_stat1', 'sqlite_stat4']);

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

export function openSqliteSource(file: string): SqliteSource {
  if (!existsSync(file)) throw new TransferRefusedError('--from', `${file} does not exist`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new TransferRefusedError('--from', `${file} cannot be opened: ${(e as Error).message}`);
  }
  try {
    db.defaultSafeIntegers(true);
    // a busy gate holds the write lock for a moment at a time; a reader in WAL mode waits only for
    // a checkpoint's brief locks
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN'); // deferred: the snapshot is taken at the first read below and held to close()
    let names: string[];
    try {
      names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]);
    } catch (e) {
      throw new TransferRefusedError('--from', `${file} is not an SQLite database: ${(e as Error).message}`);
    }
    if (!names.includes('schema_migrations')) {
      throw new TransferRefusedError('--from', `${file} is not a talos-gate database (it has no schema_migrations table)`);
    }
    const version = Number(db.prepare('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck().get() as bigint);
    const known = readMigrations(sqliteMigrationsDir).length;
    if (version < known) {
      throw new TransferRefusedError(
        '--from',
        `${file} is at schema version ${version}, this talos-gate's is ${known}: start this talos-gate once on it (it migrates the file at start), stop it, then run db migrate again`,
      );
    }
    if (version > known) {
      throw new TransferRefusedError(
        '--from',
        `${file} is at schema version ${version}, newer than this talos-gate (${known}): run db migrate with the talos-gate version that wrote it, or upgrade`,
      );
    }
    const tables = names
      .filter((n) => !NOT_RECORDS.has(n))
      .map((name) => ({
        name,
        columns: (db.prepare(`PRAGMA table_info(${quote(name)})`).all() as { name: string; pk: bigint }[]).map((c) => ({ name: c.name, pk: Number(c.pk) })),
      }));
    const sequences = new Map<string, bigint>();
    if (names.includes('sqlite_sequence')) {
      for (const r of db.prepare('SELECT name, seq FROM sqlite_sequence').all() as { name: string; seq: bigint }[]) sequences.set(r.name, r.seq);
    }
    return {
      file,
      db,
      schemaVersion: version,
      tables,
      sequences,
      close: () => {
        if (db.inTransaction) db.exec('COMMIT');
        db.close();
      },
    };
  } catch (e) {
    db.close();
    throw e;
  }
}

/** The order rows are copied and checksummed in: the primary key, or every column for a table without one. */
export function orderColumns(t: SourceTable): string[] {
  const pk = t.columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  return (pk.length > 0 ? pk : t.columns).map((c) => c.name);
}

/** The table's rows, in order, as arrays of values in column order (a streaming iterator). */
export function readRows(source: SqliteSource, t: SourceTable): IterableIterator<unknown[]> {
  const cols = t.columns.map((c) => quote(c.name)).join(', ');
  // COLLATE BINARY: byte order of the UTF-8, which is the target's "C" collation (plan.ts)
  const order = orderColumns(t).map((c) => `${quote(c)} COLLATE BINARY`).join(', ');
  return source.db.prepare(`SELECT ${cols} FROM ${quote(t.name)} ORDER BY ${order}`).raw(true).iterate() as IterableIterator<unknown[]>;
}

export function countRows(source: SqliteSource, t: SourceTable): bigint {
  return source.db.prepare(`SELECT count(*) FROM ${quote(t.name)}`).pluck().get() as bigint;
}
