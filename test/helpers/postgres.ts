import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgresStorage, type PostgresStorage } from '../../server/storage/postgres/index.js';
import { parseDatabaseUrl } from '../../server/storage/postgres/pool.js';
import { sharedTestBox } from './sealing.js';

// The PostgreSQL server the tests use: TEST_POSTGRES_URL, a role allowed to CREATE
// DATABASE. `npm test` sets it (test/helpers/with-postgres.sh starts a throwaway cluster when it is
// unset); running a PostgreSQL test file alone needs it set, and without it the file fails: a
// backend that is never tested is not supported.

// Not TALOS_GATE_*: the gate refuses unknown TALOS_GATE_ variables, and the gates the tests spawn
// inherit the environment.
export const TEST_DATABASE_ENV = 'TEST_POSTGRES_URL';
export const TEST_DATABASE_CA_ENV = 'TEST_POSTGRES_CA';

/** The CA file of the test server's TLS certificate (with-postgres.sh makes one), for sslmode=verify-full. */
export function testServerCa(): string {
  const file = process.env[TEST_DATABASE_CA_ENV];
  if (!file) {
    throw new Error(
      `${TEST_DATABASE_CA_ENV} is not set: the TLS tests connect to the test server with sslmode=verify-full. ` +
        `test/helpers/with-postgres.sh sets it for its throwaway cluster; for a server of yours, set it to the CA file of the server's certificate`,
    );
  }
  return file;
}

export function testServerUrl(): string {
  const url = process.env[TEST_DATABASE_ENV];
  if (!url) {
    throw new Error(
      `${TEST_DATABASE_ENV} is not set: the PostgreSQL tests need a server. Run them with ` +
        `test/helpers/with-postgres.sh (a throwaway cluster; Debian: apt-get install -y postgresql), ` +
        `or set ${TEST_DATABASE_ENV}=postgres://user@host:port/postgres to a server where that role may CREATE DATABASE`,
    );
  }
  return url;
}

/** The server URL with another database name. */
export function withDatabase(serverUrl: string, database: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${database}`;
  return u.href;
}

/** Runs SQL on the server's own database (as the test role). */
export async function onServer<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: testServerUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A new, empty database on the test server; drop() removes it (closing whatever is still connected). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `talos_gate_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await onServer((c) => c.query(`CREATE DATABASE ${name}`));
  return {
    name,
    url: withDatabase(testServerUrl(), name),
    drop: () => onServer(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
}

/** A storage on a fresh database; closing it drops the database. */
export async function freshPostgresStorage(): Promise<PostgresStorage> {
  const db = await createTestDatabase();
  const s = await openPostgresStorage(parseDatabaseUrl(db.url), { cipher: sharedTestBox, poolSize: 4 });
  const close = s.close.bind(s);
  s.close = async () => {
    await close();
    await db.drop();
  };
  return s;
}
