import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/**
 * A port free on 127.0.0.1 now, for a server started a moment later (often a child process, seconds
 * later). Taken below the kernel's ephemeral range (ip_local_port_range): a port the kernel hands
 * out itself (port 0 listeners, the source port of every outgoing connection of the tests running
 * beside this one) could be taken again in that window, and a gate then failed with EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const first = 10_000;
  const last = (low ?? 32_768) - 1;
  for (let attempt = 0; attempt < 50 && last > first; attempt++) {
    const port = first + Math.floor(Math.random() * (last - first));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${first} and ${last}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
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
