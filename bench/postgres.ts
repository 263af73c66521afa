import { randomBytes } from 'node:crypto';
import pg from 'pg';

// A database of its own for each gate the bench starts on PostgreSQL, made on the server
// --database names (a role that may CREATE DATABASE) and dropped after, so runs never see each
// other's rows.

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

async function onServer(serverUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: serverUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function benchDatabase(serverUrl: string, label: string): Promise<BenchDatabase> {
  const name = `talos_gate_bench_${label}_${randomBytes(4).toString('hex')}`;
  await onServer(serverUrl, `CREATE DATABASE ${name}`);
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.href,
    drop: () => onServer(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
