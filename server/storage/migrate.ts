import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads `NNN_name.sql` files in version order; anything else in the folder is an error. */
export function readMigrations(dir: string): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = /^(\d{3,})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) throw new Error(`migrations: ${file} is not named NNN_name.sql`);
    out.push({ version: Number(m[1]), name: m[2] as string, sql: readFileSync(join(dir, file), 'utf8') });
  }
  out.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations: expected version ${i + 1}, found ${m.version} (${m.name})`);
  });
  return out;
}

/**
 * Applies the migrations the database has not seen, all in one transaction, recording each
 * version. A database newer than this build is refused rather than guessed at.
 */
export function migrate(db: Database.Database, migrations: Migration[], now = Date.now()): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
  );
  const newest = Math.max(0, ...applied);
  if (newest > migrations.length) {
    throw new Error(`database schema version ${newest} is newer than this talos-gate (knows ${migrations.length})`);
  }
  const todo = migrations.filter((m) => !applied.has(m.version));
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (const m of todo) {
      db.exec(m.sql);
      record.run(m.version, m.name, now);
    }
  }).immediate();
  return todo.map((m) => m.version);
}
