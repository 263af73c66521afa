// `talos-gate db backup`: a consistent copy of the gate's SQLite database while the gate runs, by
// SQLite's online backup API (better-sqlite3's db.backup(), sqlite3_backup_step underneath). The API
// copies pages under a read lock per step and starts over when another process wrote between two
// steps, so what it finishes is one consistent state (SQLite docs "Online Backup API"). The first
// step moves 100 pages, the rest go in one step: a busy gate cannot keep a large backup restarting.
// The copy is written next to its destination under a temporary name, checked (PRAGMA
// integrity_check, the schema version), and only then renamed into place: a failed backup never
// leaves a half-written file under the name asked for, nor replaces a good one.
import { chmodSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { TransferRefusedError } from '../transfer/errors.js';

export interface BackupReport {
  from: string;
  to: string;
  bytes: number;
  schemaVersion: number;
  /** Rows per table of the copy, the migration runner's table left out. */
  tables: { table: string; rows: number }[];
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

export async function backupSqlite(from: string, to: string, opts: { force?: boolean } = {}): Promise<BackupReport> {
  if (!existsSync(from)) throw new TransferRefusedError('--config', `the gate's database ${from} does not exist (has the gate run with this data_dir?)`);
  if (existsSync(to)) {
    if (!opts.force) throw new TransferRefusedError('--to', `${to} exists: pass --force to replace it`);
    if (!statSync(to).isFile()) throw new TransferRefusedError('--to', `${to} is not a file`);
  }
  const dir = dirname(to);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new TransferRefusedError('--to', `folder ${dir} does not exist`);
  const partial = join(dir, `.${basename(to)}.partial-${process.pid}`);
  let source: Database.Database;
  try {
    source = new Database(from, { readonly: true, fileMustExist: true });
    source.pragma('busy_timeout = 5000');
  } catch (e) {
    throw new TransferRefusedError('--config', `the gate's database ${from} cannot be opened: ${(e as Error).message}`);
  }
  try {
    await source.backup(partial, { progress: ({ remainingPages }) => Math.max(remainingPages, 100) });
  } catch (e) {
    rmSync(partial, { force: true });
    throw new TransferRefusedError('--config', `the backup of ${from} failed: ${(e as Error).message}`);
  } finally {
    source.close();
  }
  try {
    chmodSync(partial, 0o600); // it holds what the gate's does: token hashes, sessions, IdP refresh tokens
    const report = check(partial);
    renameSync(partial, to);
    return { from, to, bytes: statSync(to).size, ...report };
  } catch (e) {
    rmSync(partial, { force: true });
    throw e;
  }
}

/** Opens the copy on its own and reads it whole: integrity_check, the schema version, every table's count. */
function check(file: string): Pick<BackupReport, 'schemaVersion' | 'tables'> {
  const db = new Database(file, { fileMustExist: true });
  try {
    const integrity = db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
    if (integrity.length !== 1 || integrity[0]?.integrity_check !== 'ok') {
      throw new Error(`the backup failed PRAGMA integrity_check: ${integrity.map((r) => r.integrity_check).join('; ')}`);
    }
    const schemaVersion = Number(db.prepare('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck().get());
    const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name").pluck().all() as string[];
    const tables = names.map((table) => ({ table, rows: Number(db.prepare(`SELECT count(*) FROM ${quote(table)}`).pluck().get()) }));
    return { schemaVersion, tables };
  } finally {
    db.close();
  }
}
