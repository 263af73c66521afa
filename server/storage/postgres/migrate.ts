// Brings a PostgreSQL database's schema up to date, once however many gate processes start together:
// the first to take the advisory lock applies what is missing in one transaction (PostgreSQL's DDL
// is transactional: a failing migration leaves the schema as it was), the others wait for the lock,
// then find nothing to do. A role that may only read and write (the schema migrated by its owner)
// runs the gate as long as nothing is left to apply.
import type { Pool } from 'pg';
import type { Migration } from '../migrate.js';

/** The session-level advisory lock of migrations: any fixed key, advisory locks are per database (docs 9.27.10). */
const MIGRATION_LOCK = 7_446_173_001;

/** The tables the gate reads and writes, whose privileges are checked at start. */
const TABLES = ['nodes', 'device_requests', 'node_tokens', 'audit_events', 'certificates', 'blocked_subjects', 'web_sessions', 'code_entry_failures', 'operator_grants', 'refresh_tokens', 'webhook_subscriptions', 'webhook_outbox', 'webhook_failure_windows', 'instance_secrets', 'gate_signing_keys'];

export class MissingPrivilegesError extends Error {
  readonly code = '42501'; // insufficient_privilege, as the server says it
  constructor(readonly tables: string[]) {
    super(`the database role lacks SELECT, INSERT, UPDATE or DELETE on ${tables.join(', ')}`);
    this.name = 'MissingPrivilegesError';
  }
}

export async function migratePostgres(pool: Pool, migrations: Migration[], now = Date.now()): Promise<number[]> {
  const client = await pool.connect();
  let applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      applied = await applyMissing(client, migrations, now);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
    const missing = await client.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c
       WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)
         AND NOT (has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT')
                  AND has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE'))`,
      [TABLES],
    );
    if (missing.rows.length > 0) throw new MissingPrivilegesError(missing.rows.map((r) => r.relname));
  } finally {
    client.release();
  }
  return applied;
}

async function applyMissing(client: import('pg').PoolClient, migrations: Migration[], now: number): Promise<number[]> {
  // CREATE TABLE IF NOT EXISTS needs CREATE on the schema even when the table is there; a role
  // without it (a schema migrated by its owner) must still start, so the table is looked for first
  const exists = await client.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (exists.rows[0]?.t == null) {
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  }
  const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
  const newest = Math.max(0, ...done);
  if (newest > migrations.length) {
    throw new Error(`database schema version ${newest} is newer than this talos-gate (knows ${migrations.length})`);
  }
  const todo = migrations.filter((m) => !done.has(m.version));
  if (todo.length === 0) return [];
  await client.query('BEGIN');
  try {
    for (const m of todo) {
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, now]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  return todo.map((m) => m.version);
}
