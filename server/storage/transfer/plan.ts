// Which SQLite table goes into which PostgreSQL table, column by column, read from both schemas
// rather than from a list kept by hand: a table a later migration adds is copied without touching
// this file, as long as both backends have it with columns of types values.ts knows. Anything the
// copy could not carry over faithfully is refused before a row is written: a source table the
// target lacks, a column the target lacks, a target column that must be filled but has no source,
// a type values.ts does not know. Nothing is dropped silently.
import type { PoolClient } from 'pg';
import { TransferRefusedError } from './errors.js';
import { orderColumns, type SourceTable } from './sqlite-source.js';
import { isCopyable, type CopyableType } from './values.js';

export interface ColumnPlan {
  name: string;
  type: CopyableType;
  /** The type as written in a cast (format_type): `bigint`, `character varying(20)`. */
  castType: string;
}

export interface TablePlan {
  name: string;
  columns: ColumnPlan[];
  /** The columns rows are ordered by, on both sides, for the checksum. */
  order: ColumnPlan[];
  /** A GENERATED ALWAYS identity column given a value: the INSERT needs OVERRIDING SYSTEM VALUE. */
  overridesIdentity: boolean;
  /** Columns backed by a sequence (identity or serial) given values: the sequence is moved past them. */
  sequenced: string[];
  source: SourceTable;
}

interface TargetColumn {
  table: string;
  column: string;
  data_type: string;
  cast_type: string;
  not_null: boolean;
  has_default: boolean;
  identity: '' | 'a' | 'd';
  sequence: string | null;
}

export const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** The target's tables (in the connection's current schema) and their columns. */
async function targetColumns(client: PoolClient): Promise<TargetColumn[]> {
  const r = await client.query<TargetColumn>(
    `SELECT c.relname AS table, a.attname AS column,
            CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, NULL) ELSE format_type(a.atttypid, NULL) END AS data_type,
            format_type(a.atttypid, a.atttypmod) AS cast_type,
            a.attnotnull AS not_null, a.atthasdef AS has_default, a.attidentity AS identity,
            pg_get_serial_sequence(quote_ident(c.relname), a.attname) AS sequence
     FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     JOIN pg_type t ON t.oid = a.atttypid
     WHERE c.relkind IN ('r', 'p')
     ORDER BY c.relname, a.attnum`,
  );
  // the client's type parsers are all off (copy.ts): booleans arrive as their text, t or f
  return r.rows.map((row) => ({ ...row, not_null: String(row.not_null) === 't', has_default: String(row.has_default) === 't' }));
}

/** Foreign keys between the target's tables: [child, parent]. */
async function foreignKeys(client: PoolClient): Promise<[string, string][]> {
  const r = await client.query<{ child: string; parent: string }>(
    `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
     FROM pg_constraint WHERE contype = 'f' AND connamespace = current_schema()::regnamespace`,
  );
  return r.rows.map((x) => [x.child.replace(/^"|"$/g, ''), x.parent.replace(/^"|"$/g, '')]);
}

/** The target's tables other than the migration runner's: what "the target holds data" looks at. */
export async function targetTables(client: PoolClient): Promise<string[]> {
  const cols = await targetColumns(client);
  return [...new Set(cols.map((c) => c.table))].filter((t) => t !== 'schema_migrations');
}

/** Plans the copy of every source table; refuses what cannot be copied as it is. Parents come before children. */
export async function planCopy(client: PoolClient, sources: SourceTable[], targetLabel: string): Promise<TablePlan[]> {
  const cols = await targetColumns(client);
  const byTable = new Map<string, TargetColumn[]>();
  for (const c of cols) byTable.set(c.table, [...(byTable.get(c.table) ?? []), c]);
  const problems: string[] = [];
  const plans: TablePlan[] = [];
  for (const s of sources) {
    const target = byTable.get(s.name);
    if (!target) {
      problems.push(`table ${s.name} has no counterpart in ${targetLabel}'s schema: db migrate does not know where to copy it (drop it from the SQLite file if it is not the gate's, or use a talos-gate whose PostgreSQL schema has it)`);
      continue;
    }
    const columns: ColumnPlan[] = [];
    for (const sc of s.columns) {
      const tc = target.find((c) => c.column === sc.name);
      if (!tc) {
        problems.push(`column ${s.name}.${sc.name} has no counterpart in ${targetLabel}'s table ${s.name}`);
        continue;
      }
      if (!isCopyable(tc.data_type)) {
        problems.push(`column ${s.name}.${sc.name} is of PostgreSQL type ${tc.data_type}, which db migrate does not know how to fill from SQLite`);
        continue;
      }
      columns.push({ name: sc.name, type: tc.data_type, castType: tc.cast_type });
    }
    for (const tc of target) {
      if (s.columns.some((c) => c.name === tc.column)) continue;
      if (tc.not_null && !tc.has_default && tc.identity === '') {
        problems.push(`column ${s.name}.${tc.column} of ${targetLabel} must be filled but the SQLite table has no such column`);
      }
    }
    const given = target.filter((tc) => columns.some((c) => c.name === tc.column));
    plans.push({
      name: s.name,
      columns,
      order: orderColumns(s).map((n) => columns.find((c) => c.name === n)).filter((c): c is ColumnPlan => c !== undefined),
      overridesIdentity: given.some((tc) => tc.identity === 'a'),
      sequenced: given.filter((tc) => tc.sequence !== null).map((tc) => tc.column),
      source: s,
    });
  }
  if (problems.length > 0) throw new TransferRefusedError('--from', `cannot be copied as it is:\n  - ${problems.join('\n  - ')}`);
  return triggerInputsLast(parentsFirst(plans, await foreignKeys(client)));
}

/**
 * Tables whose rows steer the target's triggers: webhook_subscriptions decides what the trigger on
 * audit_events copies into webhook_outbox (migrations/postgres/002_webhooks.sql). Copied after
 * everything else, so the copied audit rows do not fire into the outbox a second time (the outbox
 * rows themselves are copied as they are); no privilege to disable triggers is needed.
 */
const TRIGGER_INPUTS = new Set(['webhook_subscriptions']);

function triggerInputsLast(plans: TablePlan[]): TablePlan[] {
  return [...plans.filter((p) => !TRIGGER_INPUTS.has(p.name)), ...plans.filter((p) => TRIGGER_INPUTS.has(p.name))];
}

/** Tables in an order where every referenced table comes before the tables referring to it. */
function parentsFirst(plans: TablePlan[], fks: [string, string][]): TablePlan[] {
  const out: TablePlan[] = [];
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const byName = new Map(plans.map((p) => [p.name, p]));
  const visit = (p: TablePlan) => {
    // a cycle of foreign keys (none in the gate's schema) would fail at the first insert, naming the key
    if (placed.has(p.name) || visiting.has(p.name)) return;
    visiting.add(p.name);
    for (const [child, parent] of fks) {
      const pp = byName.get(parent);
      if (child === p.name && parent !== p.name && pp) visit(pp);
    }
    visiting.delete(p.name);
    placed.add(p.name);
    out.push(p);
  };
  for (const p of [...plans].sort((a, b) => a.name.localeCompare(b.name))) visit(p);
  return out;
}
