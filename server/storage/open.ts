// Which backend the gate runs on: SQLite in data_dir unless database.url names a PostgreSQL server.
import { join } from 'node:path';
import { ConfigError, ENV_PREFIX, type GateConfig } from '../config/load.js';
import { isUnavailable } from './postgres/errors.js';
import { openPostgresStorage } from './postgres/index.js';
import { MissingPrivilegesError } from './postgres/migrate.js';
import { parseDatabaseUrl, type DatabaseUrl } from './postgres/pool.js';
import { openSqliteStorage } from './sqlite/index.js';
import type { Storage } from './storage.js';
import type { SealedBox } from '../secrets/sealed-box.js';
import { sealedBoxFor } from '../secrets/system-secret.js';

export function sqliteFile(config: GateConfig): string {
  return join(config.data_dir, 'talos-gate.db');
}

/**
 * Opens the configured storage and brings its schema up to date. A PostgreSQL server that cannot be
 * used (unreachable, refusing the login, no such database, missing privileges, TLS failing) is a
 * ConfigError naming database.url, so the gate does not start.
 */
export async function openStorage(config: GateConfig, opts: { onIdleError?: (e: Error) => void; box?: SealedBox } = {}): Promise<Storage> {
  const cipher = opts.box ?? sealedBoxFor(config);
  if (config.database.url === undefined) return openSqliteStorage(sqliteFile(config), { cipher });
  const url = parseDatabaseUrl(config.database.url); // checked by loadConfig already
  try {
    return await openPostgresStorage(url, { cipher, poolSize: config.database.pool_size, ...(opts.onIdleError ? { onIdleError: opts.onIdleError } : {}) });
  } catch (e) {
    const from = process.env[`${ENV_PREFIX}DATABASE_URL`] !== undefined ? `environment variable ${ENV_PREFIX}DATABASE_URL` : config.source;
    throw new ConfigError(from, 'database.url', startupProblem(e, url));
  }
}

function codeOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** What went wrong at start, in words an operator can act on; the URL shown without its password. */
export function startupProblem(e: unknown, url: DatabaseUrl): string {
  const where = `${url.host}:${url.port}`;
  const who = url.user ?? process.env.PGUSER ?? 'the default user';
  const message = e instanceof AggregateError ? String((e.errors[0] as Error | undefined)?.message) : (e as Error).message;
  const code = codeOf(e);
  if (e instanceof MissingPrivilegesError) {
    return `PostgreSQL role ${who} ${e.message.replace(/^the database role /, '')}: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${who}`;
  }
  // SQLSTATEs: PostgreSQL docs appendix A
  if (code === '28P01' || code === '28000') return `PostgreSQL at ${where} refused the login of ${who}: ${message} (check the user and password: PGPASSWORD or the URL)`;
  if (code === '3D000') return `PostgreSQL at ${where} has no database ${url.database}: create it (CREATE DATABASE ${url.database} OWNER ${who})`;
  if (code === '42501') {
    // PostgreSQL 15 took CREATE on schema public away from PUBLIC: a new role may not make tables there
    return `PostgreSQL role ${who} may not create the gate's tables in ${url.database}: ${message} (the migrations need CREATE on schema public, e.g. make ${who} the database's owner, or migrate once as the owner)`;
  }
  if (/SSL|TLS|certificate|self.signed|UNABLE_TO_VERIFY|ERR_TLS|DEPTH_ZERO|altnames/i.test(`${message} ${code ?? ''}`)) {
    return `TLS to PostgreSQL at ${where} failed: ${message} (sslmode=${url.sslmode}${url.sslrootcert ? `, sslrootcert=${url.sslrootcert}` : ''})`;
  }
  if (isUnavailable(e)) return `cannot reach PostgreSQL at ${where}: ${message}${code && !message.includes(code) ? ` (${code})` : ''}`;
  return `PostgreSQL at ${where} (${url.redacted}): ${message}`;
}
