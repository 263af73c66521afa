import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../server/config/load.js';
import { reencrypt } from '../server/secrets/reencrypt.js';
import { sealedBoxFor } from '../server/secrets/system-secret.js';
import { openStorage, sqliteFile } from '../server/storage/open.js';
import { backupSqlite, type BackupReport } from '../server/storage/sqlite/backup.js';
import { migrateSqliteToPostgres, type MigrateReport } from '../server/storage/transfer/copy.js';
import { TransferRefusedError, VerificationFailedError, type TableCheck } from '../server/storage/transfer/errors.js';
import { UsageError } from './connection.js';

// `talos-gate db migrate`, `db backup` and `db reencrypt`: the gate's database moved to PostgreSQL,
// copied while the gate runs, or its sealed values moved to the first system secret (server/storage/transfer/, server/storage/sqlite/backup.ts do the work). A refusal
// names the flag at fault and exits 2 (nothing was written); a copy whose verification found a
// difference exits 1 (rolled back).

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')}`.trimEnd()).join('\n');
}

function checks(report: TableCheck[]): string {
  return table([
    ['table', 'sqlite rows', 'postgres rows', 'sha256 (sqlite)', 'sha256 (postgres)', ''],
    ...report.map((t) => [t.table, String(t.sourceRows), String(t.targetRows), t.sourceSha256.slice(0, 16), t.targetSha256.slice(0, 16), t.ok ? 'ok' : 'DIFFERS']),
  ]);
}

function migrateSummary(r: MigrateReport): string {
  const rows = r.tables.reduce((n, t) => n + t.sourceRows, 0);
  return [
    `from  ${r.from.file} (SQLite, schema version ${r.from.schemaVersion})`,
    `to    ${r.to.url} (PostgreSQL, schema version ${r.to.schemaVersion}${r.to.migrationsApplied.length > 0 ? `, migrations ${r.to.migrationsApplied.join(', ')} applied now` : ', already up to date'})`,
    ...(r.replaced.length > 0 ? [`replaced what the target held: ${r.replaced.map((t) => `${t.table} ${t.rows}`).join(', ')}`] : []),
    '',
    checks(r.tables),
    '',
    `verified: ${r.tables.length} tables, ${rows} rows; the row counts and the SHA-256 of every table's rows (in primary-key order) are equal. Committed.`,
    '',
    'Next: keep the same config (admin_token, oidc, talos, secrets.system) and the same data_dir (the first',
    'start on PostgreSQL adopts its cookie secret, admin token and TLS CA), set database.url to the target,',
    'and start the gate.',
    '',
  ].join('\n');
}

function backupSummary(r: BackupReport): string {
  return [
    `backed up ${r.from}`,
    `to        ${r.to} (${r.bytes} bytes, schema version ${r.schemaVersion}, PRAGMA integrity_check ok)`,
    '',
    table([['table', 'rows'], ...r.tables.map((t) => [t.table, String(t.rows)])]),
    '',
  ].join('\n');
}

/** Refusals as usage errors naming the flag (exit 2); a failed verification prints its table (exit 1). */
async function reporting<T>(what: string, run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof TransferRefusedError) throw new UsageError(`${what}: ${e.message}`);
    if (e instanceof VerificationFailedError) {
      process.stderr.write(`talos-gate ${what}: ${e.message}\n\n${checks(e.report)}\n`);
      process.exitCode = 1;
      return undefined;
    }
    throw e;
  }
}

export function dbCommands(program: Command): void {
  const db = program.command('db').description("the gate's database: move it to PostgreSQL, back it up, re-encrypt it");

  db.command('migrate')
    .description("copy a gate's SQLite database into PostgreSQL, verified table by table")
    .requiredOption('--from <file>', "the SQLite file (data_dir/talos-gate.db); a gate may keep running on it")
    .requiredOption('--to <url>', 'the PostgreSQL database: postgres://user@host:port/database?sslmode=verify-full (empty; migrated first)')
    .option('--replace', 'delete what the target holds first, instead of refusing a target that holds data')
    .addHelpText(
      'after',
      `
The source is read in one SQLite read transaction (one consistent state, even while a gate runs on
it; what the gate writes after that is not copied: stop it for the final copy). The copy runs in one
PostgreSQL transaction and is verified (row counts and SHA-256 per table) before it commits: a
failed or differing copy leaves the target as it was.
Exit codes: 0 copied and verified; 1 the verification found a difference (rolled back); 2 refused
(a flag's file, URL or database cannot be used; nothing written).`,
    )
    .action(async (o: { from: string; to: string; replace?: boolean }) => {
      const report = await reporting('db migrate', () =>
        migrateSqliteToPostgres({
          from: resolve(o.from),
          to: o.to,
          replace: o.replace === true,
          onCopied: (t, n) => process.stderr.write(`copied ${t}: ${n} rows\n`),
        }),
      );
      if (report) process.stdout.write(migrateSummary(report));
    });

  db.command('backup')
    .description("a consistent copy of the gate's SQLite database, taken while the gate runs")
    .requiredOption('--to <file>', 'where to write the copy (refused when it exists, unless --force)')
    .option('-c, --config <file>', 'the config the gate runs with (its data_dir; TALOS_GATE_* env vars apply as for serve)')
    .option('--force', 'replace --to when it exists')
    .addHelpText('after', '\nExit codes: 0 backed up and checked; 2 refused (nothing written).\nOn PostgreSQL (database.url set), back up with pg_dump or your database\'s snapshots.')
    .action(async (o: { to: string; config?: string; force?: boolean }) => {
      const config = loadConfig(o.config);
      if (config.database.url !== undefined) {
        throw new UsageError(
          `db backup: --config: ${config.source} keeps the gate's state in PostgreSQL (database.url): back it up with PostgreSQL's tools, e.g. pg_dump --format=custom --file=talos-gate.dump "$TALOS_GATE_DATABASE_URL", or your managed database's snapshots`,
        );
      }
      const report = await reporting('db backup', () => backupSqlite(sqliteFile(config), resolve(o.to), { force: o.force === true }));
      if (report) process.stdout.write(backupSummary(report));
    });

  db.command('reencrypt')
    .description('seal every stored secret with the first system secret (secrets.system), and seal plaintext values from before secrets.system; online and resumable')
    .option('-c, --config <file>', 'the config the gate runs with (TALOS_GATE_* env vars apply as for serve)')
    .option('--batch <n>', 'values read and written per batch', '50')
    .addHelpText(
      'after',
      `
Rotation: put the new secret first in secrets.system (keep the old after it), restart the gates,
run this, then drop the old secret. Safe while gates run; run it again if it was cut short.
Exit codes: 0 every value is under the first secret; 1 some values could not be opened (named);
2 config error.`,
    )
    .action(async (o: { config?: string; batch: string }) => {
      const config = loadConfig(o.config);
      const box = sealedBoxFor(config);
      const batch = Number(o.batch);
      if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) throw new UsageError('--batch must be a whole number from 1 to 10000');
      const storage = await openStorage(config, { box });
      try {
        const report = await reencrypt(storage, box, { batch });
        let unreadable = 0;
        for (const [name, c] of Object.entries(report)) {
          process.stdout.write(
            `${name}: ${c.scanned} scanned, ${c.current} already current, ${c.resealed} re-sealed, ${c.sealed} plaintext sealed, ${c.changedMeanwhile} changed meanwhile, ${c.unreadable.length} unreadable\n`,
          );
          for (const u of c.unreadable) process.stderr.write(`  ${u.problem}\n`);
          unreadable += c.unreadable.length;
        }
        process.stdout.write(`all values are sealed with key id ${box.primaryKeyId}${unreadable ? `, except ${unreadable} that could not be opened` : ''}\n`);
        if (unreadable > 0) process.exitCode = 1;
      } finally {
        await storage.close();
      }
    });
}
