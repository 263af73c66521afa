// `talos-gate db migrate`: a gate's SQLite database copied into PostgreSQL, whole or not at all.
//
// 1. The source is read in one SQLite read transaction (sqlite-source.ts): one snapshot, even
//    while a gate runs on the file.
// 2. The target's schema is brought up to date by the gate's own runner (postgres/migrate.ts).
// 3. One PostgreSQL transaction: the target's tables locked against writers, refused when any
//    holds a row (unless --replace, which empties them first), every source table copied in
//    batches of at most 1,000 rows (memory stays bounded: rows stream from SQLite), each value
//    converted to its column's type (values.ts), sequences moved past the ids copied.
// 4. Verification, still in that transaction: every table's row count and a SHA-256 over its rows
//    in primary-key order (each row the JSON array of its values' canonical text, values.ts) read
//    back from PostgreSQL and compared with what was read from SQLite. Any difference rolls the
//    whole copy back, so a target is never left half copied or copied wrong.
import { createHash, type Hash } from 'node:crypto';
import pg, { type CustomTypesConfig, type Pool, type PoolClient } from 'pg';
import { postgresMigrationsDir } from '../../paths.js';
import { readMigrations } from '../migrate.js';
import { startupProblem } from '../open.js';
import { migratePostgres } from '../postgres/migrate.js';
import { parseDatabaseUrl, poolConfig, type DatabaseUrl } from '../postgres/pool.js';
import { TransferRefusedError, VerificationFailedError, type TableCheck } from './errors.js';
import { planCopy, quote, targetTables, type TablePlan } from './plan.js';
import { countRows, openSqliteSource, readRows, type SqliteSource } from './sqlite-source.js';
import { canonicalFromPostgres, convert, ValueError } from './values.js';

/** Rows per INSERT (and per FETCH when verifying), fewer for wide tables: PostgreSQL takes at most 65,535 parameters a statement. */
const BATCH_ROWS = 1000;
const MAX_PARAMS = 65_535;

export type TableReport = TableCheck;

export interface MigrateReport {
  from: { file: string; schemaVersion: number };
  to: { url: string; schemaVersion: number; migrationsApplied: number[] };
  /** The target's tables emptied first (--replace), with the rows they held. */
  replaced: { table: string; rows: number }[];
  tables: TableReport[];
}

export interface MigrateOptions {
  from: string;
  to: string;
  /** Empty the target's tables first instead of refusing a target that holds data. */
  replace?: boolean;
  batchRows?: number;
  /** Called as each table is copied, before the verification. */
  onCopied?: (table: string, rows: number) => void;
}

/** Every value as PostgreSQL's text output: the canonical form values.ts compares. */
const AS_TEXT: CustomTypesConfig = {
  getTypeParser: (() => (v: string) => v) as CustomTypesConfig['getTypeParser'], // why: pg types the lookup as an overload set
};

export async function migrateSqliteToPostgres(opts: MigrateOptions): Promise<MigrateReport> {
  let url: DatabaseUrl;
  try {
    url = parseDatabaseUrl(opts.to);
  } catch (e) {
    throw new TransferRefusedError('--to', (e as Error).message);
  }
  const source = openSqliteSource(opts.from);
  try {
    const { migrationsApplied, schemaVersion } = await migrateTarget(url);
    const pool = new pg.Pool({ ...poolConfig(url, 1), types: AS_TEXT });
    pool.on('error', () => undefined); // an idle client's failure surfaces at its next query
    try {
      const client = await connect(pool, url);
      try {
        const { replaced, tables } = await copyInTransaction(client, source, url, opts);
        return {
          from: { file: source.file, schemaVersion: source.schemaVersion },
          to: { url: url.redacted, schemaVersion, migrationsApplied },
          replaced,
          tables,
        };
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
  } finally {
    source.close();
  }
}

async function connect(pool: Pool, url: DatabaseUrl): Promise<PoolClient> {
  try {
    return await pool.connect();
  } catch (e) {
    throw new TransferRefusedError('--to', startupProblem(e, url));
  }
}

/** The gate's own migrations on the target, with the pool settings the gate uses (its type parsers). */
async function migrateTarget(url: DatabaseUrl): Promise<{ migrationsApplied: number[]; schemaVersion: number }> {
  const migrations = readMigrations(postgresMigrationsDir);
  const pool = new pg.Pool(poolConfig(url, 1));
  pool.on('error', () => undefined);
  try {
    const migrationsApplied = await migratePostgres(pool, migrations);
    return { migrationsApplied, schemaVersion: migrations.length };
  } catch (e) {
    throw new TransferRefusedError('--to', startupProblem(e, url));
  } finally {
    await pool.end();
  }
}

async function copyInTransaction(client: PoolClient, source: SqliteSource, url: DatabaseUrl, opts: MigrateOptions): Promise<{ replaced: MigrateReport['replaced']; tables: TableReport[] }> {
  await client.query('BEGIN');
  try {
    // text the way it is stored must be UTF-8 (SQLite's), and byte order is what "C" sorts by
    const encoding = (await client.query<{ server_encoding: string }>('SHOW server_encoding')).rows[0]?.server_encoding;
    if (encoding !== 'UTF8') throw new TransferRefusedError('--to', `database ${url.database} is encoded ${encoding}: the gate's text is UTF-8 (CREATE DATABASE … ENCODING 'UTF8')`);
    await client.query("SET LOCAL bytea_output = 'hex'");
    const plans = await planCopy(client, source.tables, url.redacted);
    const replaced = await claimTarget(client, url, opts.replace === true);
    const reads: { plan: TablePlan; rows: number; sha256: string }[] = [];
    for (const plan of plans) {
      const read = await copyTable(client, source, plan, Math.max(1, Math.min(opts.batchRows ?? BATCH_ROWS, Math.floor(MAX_PARAMS / Math.max(1, plan.columns.length)))));
      await moveSequences(client, source, plan);
      opts.onCopied?.(plan.name, read.rows);
      reads.push({ plan, ...read });
    }
    const tables: TableReport[] = [];
    for (const r of reads) {
      const back = await readBack(client, r.plan, opts.batchRows ?? BATCH_ROWS);
      tables.push({ table: r.plan.name, sourceRows: r.rows, targetRows: back.rows, sourceSha256: r.sha256, targetSha256: back.sha256, ok: r.rows === back.rows && r.sha256 === back.sha256 });
    }
    if (tables.some((t) => !t.ok)) throw new VerificationFailedError(tables);
    await client.query('COMMIT');
    return { replaced, tables };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/**
 * Locks every table of the target against writers for the copy (a gate started on the target
 * meanwhile waits), then refuses a target holding any row, or, with replace, empties it.
 */
async function claimTarget(client: PoolClient, url: DatabaseUrl, replace: boolean): Promise<MigrateReport['replaced']> {
  const tables = await targetTables(client);
  if (tables.length === 0) return [];
  const list = tables.map(quote).join(', ');
  await client.query("SET LOCAL lock_timeout = '10s'");
  try {
    await client.query(`LOCK TABLE ${list} IN EXCLUSIVE MODE`);
  } catch (e) {
    if ((e as { code?: string }).code !== '55P03') throw e; // lock_not_available
    throw new TransferRefusedError('--to', `database ${url.database} is in use (its tables stayed locked for 10 s): stop the gates that use it`);
  }
  const held: { table: string; rows: number }[] = [];
  for (const t of tables) {
    const r = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quote(t)}`);
    const n = Number(r.rows[0]?.n ?? 0);
    if (n > 0) held.push({ table: t, rows: n });
  }
  if (held.length === 0) return [];
  if (!replace) {
    throw new TransferRefusedError(
      '--to',
      `database ${url.database} already holds data (${held.map((h) => `${h.table}: ${h.rows}`).join(', ')}): db migrate copies into an empty database only. ` +
        'Give it a new database, or pass --replace to delete what it holds first',
    );
  }
  try {
    await client.query(`TRUNCATE ${list} RESTART IDENTITY CASCADE`);
  } catch (e) {
    throw new TransferRefusedError('--replace', `the target's tables cannot be emptied: ${(e as Error).message} (TRUNCATE needs the tables' owner or the TRUNCATE privilege)`);
  }
  return held;
}

function rowLabel(plan: TablePlan, row: unknown[]): string {
  const key = plan.order.map((c) => `${c.name}=${String(row[plan.columns.indexOf(c)])}`).join(', ');
  return `the row ${key}`;
}

async function copyTable(client: PoolClient, source: SqliteSource, plan: TablePlan, batchRows: number): Promise<{ rows: number; sha256: string }> {
  const hash = createHash('sha256');
  const expected = Number(countRows(source, plan.source)); // before the iterator: it holds the connection
  const columns = plan.columns.map((c) => quote(c.name)).join(', ');
  const prefix = `INSERT INTO ${quote(plan.name)} (${columns})${plan.overridesIdentity ? ' OVERRIDING SYSTEM VALUE' : ''} VALUES `;
  let params: (string | Buffer | null)[] = [];
  let tuples: string[] = [];
  let rows = 0;
  const flush = async () => {
    if (tuples.length === 0) return;
    try {
      await client.query(prefix + tuples.join(', '), params);
    } catch (e) {
      const pe = e as { message: string; detail?: string };
      throw new TransferRefusedError('--from', `table ${plan.name}: PostgreSQL refused a row: ${pe.message}${pe.detail ? ` (${pe.detail})` : ''}`);
    }
    params = [];
    tuples = [];
  };
  for (const row of readRows(source, plan.source)) {
    const canon: (string | null)[] = [];
    const marks: string[] = [];
    plan.columns.forEach((c, i) => {
      let v;
      try {
        v = convert(row[i], c.type);
      } catch (e) {
        if (!(e instanceof ValueError)) throw e;
        throw new TransferRefusedError('--from', `${plan.name}.${c.name} in ${rowLabel(plan, row)} ${e.message}`);
      }
      params.push(v.param);
      canon.push(v.canonical);
      marks.push(`$${params.length}::${c.castType}`);
    });
    hashRow(hash, canon);
    tuples.push(`(${marks.join(', ')})`);
    rows += 1;
    if (tuples.length >= batchRows) await flush();
  }
  await flush();
  if (rows !== expected) throw new Error(`${plan.name}: counted ${expected} rows but read ${rows} in the same snapshot`);
  return { rows, sha256: hash.digest('hex') };
}

function hashRow(hash: Hash, canonical: (string | null)[]): void {
  hash.update(JSON.stringify(canonical));
  hash.update('\n');
}

/**
 * Identity and serial columns given explicit ids: their sequence moves past the highest, and past
 * SQLite's AUTOINCREMENT mark (an id given once and deleted is not given again, as in SQLite).
 */
async function moveSequences(client: PoolClient, source: SqliteSource, plan: TablePlan): Promise<void> {
  for (const column of plan.sequenced) {
    const isRowid = plan.source.columns.filter((c) => c.pk > 0).length === 1 && plan.source.columns.find((c) => c.pk === 1)?.name === column;
    const mark = isRowid ? (source.sequences.get(plan.name) ?? 0n) : 0n;
    await client.query(
      `SELECT setval(pg_get_serial_sequence($1, $2), v) FROM (SELECT GREATEST((SELECT max(${quote(column)}) FROM ${quote(plan.name)}), $3::bigint) AS v) m WHERE v >= 1`,
      [quote(plan.name), column, mark.toString()],
    );
  }
}

/** Rows and checksum of the copied table as PostgreSQL now holds it, read through a cursor in the copy's order. */
async function readBack(client: PoolClient, plan: TablePlan, batchRows: number): Promise<{ rows: number; sha256: string }> {
  const hash = createHash('sha256');
  const textual = new Set(['text', 'character varying', 'character']);
  const order = plan.order.map((c) => `${quote(c.name)}${textual.has(c.type) ? ' COLLATE "C"' : ''} NULLS FIRST`).join(', ');
  await client.query(`DECLARE talos_gate_verify NO SCROLL CURSOR FOR SELECT ${plan.columns.map((c) => quote(c.name)).join(', ')} FROM ${quote(plan.name)} ORDER BY ${order}`);
  let rows = 0;
  for (;;) {
    const r = await client.query<unknown[]>({ text: `FETCH FORWARD ${batchRows} FROM talos_gate_verify`, rowMode: 'array' });
    for (const row of r.rows) {
      hashRow(hash, plan.columns.map((c, i) => canonicalFromPostgres(row[i] as string | null, c.type)));
      rows += 1;
    }
    if (r.rows.length < batchRows) break;
  }
  await client.query('CLOSE talos_gate_verify');
  return { rows, sha256: hash.digest('hex') };
}
