import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startGate, type RunningGate } from '../../server/main.js';
import { adminRequest } from './admin-api.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

export interface TestGate {
  gate: RunningGate;
  url: string;
  ca: string;
  dir: string;
  configFile: string;
  adminToken: string;
  /** A JSON call to the admin API with the admin token. */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>; // any: tests read arbitrary response shapes
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** The storage backends a test can run a gate on. */
export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

/**
 * A real gate: YAML config file, SQLite file and self-signed TLS in a fresh temp folder, on a real
 * port. With backend postgres, its database.url is a fresh database on the test server
 * (test/helpers/postgres.ts), dropped when the gate closes.
 */
export async function startTestGate(overrides: Record<string, unknown> = {}, opts: { backend?: Backend } = {}): Promise<TestGate> {
  const database: TestDatabase | undefined = opts.backend === 'postgres' ? await createTestDatabase() : undefined;
  if (database) overrides = { database: { url: database.url }, ...overrides };
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-test-'));
  const port = await freePort();
  const config = {
    listen: `127.0.0.1:${port}`,
    data_dir: join(dir, 'data'),
    admin_token: randomBytes(24).toString('hex'),
    secrets: { system: [randomBytes(32).toString('hex')] },
    log_level: 'silent',
    device: { interval: '1s', code_ttl: '2m' },
    audit_log: join(dir, 'audit.jsonl'),
    ...overrides,
  };
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, stringify(config));
  let gate: RunningGate;
  try {
    gate = await startGate(configFile, {});
  } catch (e) {
    await database?.drop();
    throw e;
  }
  const ca = gate.tls?.caPem ?? '';
  const adminToken = gate.adminToken;
  const admin = (method: string, path: string, body?: unknown) => adminRequest(gate.url, adminToken, method, path, body, ca);
  return {
    gate,
    url: gate.url,
    ca,
    dir,
    configFile,
    adminToken,
    admin,
    async close() {
      await gate.close();
      await database?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
