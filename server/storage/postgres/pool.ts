// database.url, read into node-postgres' pool settings: where the server is, who the gate is, and
// how TLS to it goes. The URL is libpq's (PostgreSQL docs 34.1.1, "Connection URIs"), so the one a
// DBA tests with psql is the one the gate takes; of its parameters the gate knows the TLS ones
// (sslmode, sslrootcert, sslcert, sslkey) and application_name, and refuses any other rather than
// ignore it. The password may be left out of the URL and given as PGPASSWORD, as for psql.
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import pg, { type CustomTypesConfig, type PoolConfig } from 'pg';

/** libpq's sslmode values the gate supports (PostgreSQL docs 34.19.1, "Protection Provided in Different Modes"). */
const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof SSL_MODES)[number];

const KNOWN_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'application_name'];

export interface DatabaseUrl {
  host: string;
  port: number;
  database: string;
  user: string | undefined;
  password: string | undefined;
  sslmode: SslMode;
  sslrootcert: string | undefined;
  sslcert: string | undefined;
  sslkey: string | undefined;
  applicationName: string;
  /** The URL without its password, for messages and logs. */
  redacted: string;
}

/** Reads database.url without touching the network or files; throws an Error saying what is wrong. */
export function parseDatabaseUrl(text: string): DatabaseUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('is not a URL (expected postgres://user:password@host:port/database?sslmode=verify-full)');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(`must start with postgres:// or postgresql:// (unset database.url for SQLite in data_dir), got ${url.protocol}//`);
  }
  if (!url.hostname) throw new Error('names no host (postgres://user:password@host:port/database)');
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) throw new Error('names no database: postgres://user:password@host:port/DATABASE');
  for (const key of url.searchParams.keys()) {
    if (!KNOWN_PARAMS.includes(key)) throw new Error(`parameter ${key} is not supported (known: ${KNOWN_PARAMS.join(', ')})`);
  }
  const mode = url.searchParams.get('sslmode') ?? 'disable';
  if (!(SSL_MODES as readonly string[]).includes(mode)) {
    // prefer/allow fall back to plain text when TLS fails: a gate either uses TLS or it does not
    throw new Error(`sslmode=${mode} is not supported: use disable, require, verify-ca or verify-full`);
  }
  const file = (key: string): string | undefined => {
    const v = url.searchParams.get(key) ?? undefined;
    if (v !== undefined && !isAbsolute(v)) throw new Error(`${key} must be an absolute path, got ${v}`);
    return v;
  };
  const sslrootcert = file('sslrootcert');
  const sslcert = file('sslcert');
  const sslkey = file('sslkey');
  if ((sslcert === undefined) !== (sslkey === undefined)) throw new Error('sslcert and sslkey go together');
  if (mode === 'disable' && (sslrootcert ?? sslcert) !== undefined) throw new Error('sslrootcert, sslcert and sslkey need sslmode=require, verify-ca or verify-full');
  const port = url.port ? Number(url.port) : 5432;
  const user = url.username ? decodeURIComponent(url.username) : undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const shown = new URL(url.href);
  shown.password = '';
  return {
    host,
    port,
    database,
    user,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    sslmode: mode as SslMode,
    sslrootcert,
    sslcert,
    sslkey,
    applicationName: url.searchParams.get('application_name') ?? 'talos-gate',
    redacted: shown.href,
  };
}

/** node-postgres' TLS options for an sslmode, reading the files it names. */
function tlsOptions(u: DatabaseUrl): ConnectionOptions | false {
  if (u.sslmode === 'disable') return false;
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new Error(`${key} ${path} cannot be read: ${(e as Error).message}`);
    }
  };
  const tls: ConnectionOptions = {
    // libpq's require encrypts without checking who answers; verify-ca checks the chain only;
    // verify-full the chain and the host name (PostgreSQL docs 34.19.1). Use verify-full.
    rejectUnauthorized: u.sslmode !== 'require',
    // without sslrootcert: Node's bundled CAs (a managed database with a public certificate)
    ...(u.sslrootcert ? { ca: read('sslrootcert', u.sslrootcert) } : {}),
    ...(u.sslcert && u.sslkey ? { cert: read('sslcert', u.sslcert), key: read('sslkey', u.sslkey) } : {}),
  };
  // verify-full: node-postgres checks the name against the host (SNI set for names, not for IPs)
  if (u.sslmode !== 'verify-full') tls.checkServerIdentity = () => undefined;
  return tls;
}

const INT8_OID = 20;
const BOOL_OID = 16;

/**
 * Rows in the shape server/storage/rows.ts maps (the shape SQLite gives): BIGINT as a number (every
 * BIGINT here is a millisecond time, an id or a count, far below 2^53), BOOLEAN as 0 or 1. Set on
 * this pool only, never on pg's global parsers.
 */
const types: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID) return (v: string) => Number(v);
    if (oid === BOOL_OID) return (v: string) => (v === 't' ? 1 : 0);
    return pg.types.getTypeParser(oid, format);
  }) as CustomTypesConfig['getTypeParser'], // why: pg types the parser lookup as an overload set
};

export function poolConfig(u: DatabaseUrl, poolSize: number): PoolConfig {
  return {
    host: u.host,
    port: u.port,
    database: u.database,
    ...(u.user !== undefined ? { user: u.user } : {}),
    ...(u.password !== undefined ? { password: u.password } : {}),
    ssl: tlsOptions(u),
    application_name: u.applicationName,
    types,
    max: poolSize,
    // a database that does not answer fails the request (503) instead of holding it: readyz and the
    // balancer see it within seconds
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    // TCP keepalive: a connection to a server that vanished (a failover, a cut network) is noticed
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}
